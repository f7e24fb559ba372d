"""Serve the whole stack through nginx: `PORT=N make run-proxy` -> http://127.0.0.1:N.

gunicorn (gunicorn.conf.py, bound to a unix socket) runs behind nginx, which buffers whole requests
with read timeouts, enforces the body limit, rate-limits each client, serves /static/ and answers
its own errors as JSON. nginx runs as the invoking user with every file (rendered configuration,
pid, temp folders, the socket) under instance/nginx-<port>/ (ignored by git).

Environment (all optional; README.md "Behind nginx" explains each):
  HOST (127.0.0.1), PORT (5000), MNIST_MAX_UPLOAD_BYTES (16 MiB, mnist_web/limits.py), NGINX_RATE_LIMIT (10r/s),
  NGINX_RATE_BURST (20), NGINX_CONN_PER_CLIENT (100), NGINX_CLIENT_TIMEOUT (10 s),
  NGINX_UPSTREAM_TIMEOUT (60 s), NGINX_WORKER_PROCESSES (1), NGINX_ACCESS_LOG (/dev/stdout; "off"),
  NGINX_PREFIX (instance/nginx-<port>), NGINX_BIN (nginx on PATH or /usr/sbin/nginx).
"""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from string import Template

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from mnist_web.limits import MAX_UPLOAD_BYTES  # noqa: E402  (the app's default body limit, defined once)

TEMPLATES = REPO_ROOT / "deploy" / "nginx"
DEFAULTS = {
    "NGINX_RATE_LIMIT": "10r/s",
    "NGINX_RATE_BURST": "20",
    "NGINX_CONN_PER_CLIENT": "100",
    "NGINX_CLIENT_TIMEOUT": "10",
    "NGINX_UPSTREAM_TIMEOUT": "60",
    "NGINX_WORKER_PROCESSES": "1",
    "NGINX_ACCESS_LOG": "/dev/stdout",
}


def nginx_binary():
    """The nginx executable: NGINX_BIN, else nginx on PATH, else Debian's /usr/sbin/nginx."""
    found = os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        sys.exit("nginx is not installed: run `make system-deps` (Debian package nginx-light)")
    return found


def settings(env):
    """Every placeholder's value for this run, from the environment and the defaults."""
    host, port = env.get("HOST") or "127.0.0.1", int(env.get("PORT") or 5000)
    prefix = Path(env.get("NGINX_PREFIX") or REPO_ROOT / "instance" / f"nginx-{port}").resolve()
    values = {name: env.get(name) or default for name, default in DEFAULTS.items()}
    values.update(
        NGINX_PREFIX=str(prefix),
        NGINX_LISTEN=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        NGINX_UPSTREAM=f"unix:{prefix}/gunicorn.sock",
        NGINX_STATIC_ROOT=str(REPO_ROOT / "static"),
        NGINX_MAX_BODY_BYTES=env.get("MNIST_MAX_UPLOAD_BYTES") or str(MAX_UPLOAD_BYTES),
    )
    return values


def render(template_path, values):
    """Fill a template's ${NGINX_*} placeholders (nginx's own $variables are left alone)."""
    text = Template(template_path.read_text()).safe_substitute(values)
    left = sorted(set(re.findall(r"\$\{(NGINX_\w+)\}", text)))
    if left:
        sys.exit(f"{template_path.name}: no value for {', '.join(left)}")
    return text


def user_directive():
    """Run the workers as the invoking user (the `user` directive only matters when that is root)."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"


def prepare(values):
    """Write the rendered configuration under the prefix; return the main file's path."""
    prefix = Path(values["NGINX_PREFIX"])
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "mnist_web.conf").write_text(render(TEMPLATES / "mnist_web.conf.template", values))
    main = prefix / "nginx.conf"
    main.write_text(user_directive() + render(TEMPLATES / "nginx.conf.template", values))
    socket_path = prefix / "gunicorn.sock"
    if socket_path.exists():
        socket_path.unlink()
    return main


def stop(processes):
    """SIGTERM every child still running, then wait for them (gunicorn finishes its requests)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


def main():
    """Start gunicorn on a unix socket and nginx in front of it; stop both when either ends."""
    values = settings(os.environ)
    nginx = nginx_binary()
    conf = prepare(values)
    prefix = values["NGINX_PREFIX"]
    subprocess.run([nginx, "-t", "-q", "-p", prefix, "-c", str(conf), "-e", "stderr"], check=True)
    python_bin = Path(sys.executable).parent
    gunicorn_env = {**os.environ, "MNIST_PROXY_COUNT": "1"}  # nginx sets X-Forwarded-For
    bind = f"unix:{prefix}/gunicorn.sock"
    processes = [
        subprocess.Popen(
            [str(python_bin / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", bind, "mnist_web:create_app()"],
            cwd=REPO_ROOT,
            env=gunicorn_env,
        ),
        subprocess.Popen([nginx, "-p", prefix, "-c", str(conf), "-e", "stderr"], cwd=REPO_ROOT),
    ]
    print(f"serving http://{values['NGINX_LISTEN']} (nginx) -> {bind} (gunicorn)", flush=True)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        status = next(p.returncode for p in processes if p.poll() is not None) or 1
    except KeyboardInterrupt:
        pass
    finally:
        stop(processes)
    return status


if __name__ == "__main__":
    sys.exit(main())
