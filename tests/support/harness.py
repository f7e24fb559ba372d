"""The one way tests (and benchmarks) run a server process, talk HTTP to it, and give up on it.

A server runs in its own session (a Ctrl-C or a kill of its group stays with it) with stdout and
stderr in a log file; `wait_http` polls a URL until it answers 200, bounded; `stop` sends SIGTERM
(graceful), waits, then SIGKILLs the group. `server_unavailable` is the skip-or-fail rule.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
GUNICORN_APP = "mnist_web:create_app()"


class ServerExited(RuntimeError):
    """The server process exited before it answered."""


class ServerNotReady(RuntimeError):
    """The server did not answer in time."""


def in_ci():
    """True under CI=true, where a missing server fails the run instead of skipping tests."""
    return os.environ.get("CI", "").lower() == "true"


def server_unavailable(message):
    """Fail (CI=true) or skip (elsewhere) because a server, tool or data set could not be had."""
    import pytest

    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def log_tail(path, limit=4000):
    """The end of a log file (empty if there is none), for failure messages."""
    path = Path(path)
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def http(method, url, body=None, headers=None, timeout=30):
    """(status, headers, body bytes); HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def gunicorn_argv(*options, app=GUNICORN_APP, config="gunicorn.conf.py"):
    """gunicorn with the project's config; command-line options win over the config file."""
    gunicorn = VENV_BIN / "gunicorn"
    command = [str(gunicorn)] if gunicorn.exists() else [sys.executable, "-m", "gunicorn"]
    return [*command, "-c", str(config), *options, app]


def start(argv, env, log_path, cwd=REPO):
    """Start argv in its own session with its output in log_path; the Popen."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def child_pids(pid):
    """The ids of a process's children, sorted (gunicorn's master -> its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def stop(process, timeout=40):
    """SIGTERM (a graceful stop), wait up to timeout seconds, then SIGKILL the process group."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def running(argv, env, log_path, cwd=REPO, stop_timeout=40):
    """Run argv for the duration of the block (yields the Popen), then stop it."""
    process = start(argv, env, log_path, cwd)
    try:
        yield process
    finally:
        stop(process, stop_timeout)


def wait_http(url, process, log_path, deadline_s, what="readiness", interval=0.25):
    """Poll url until it answers 200 (returns the body); ServerExited or ServerNotReady otherwise."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerExited(f"{process.args[0]} exited ({process.returncode}) before {what}:\n{log_tail(log_path)}")
        try:
            status, _, body = http("GET", url, timeout=10)
            last = (status, body[:300])
            if status == 200:
                return body
        except OSError as error:  # URLError, refused, reset, timeout: not up yet
            last = repr(error)
        time.sleep(interval)
    raise ServerNotReady(f"{what}: {url} not 200 within {deadline_s}s (last: {last})\n{log_tail(log_path)}")


class GunicornServer:
    """gunicorn -c gunicorn.conf.py "mnist_web:create_app()" on a free port, with its own store, spool and log."""

    def __init__(self, tmp_path, database_url=None, workers=2, threads=2, env=None):
        from .ports import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tmp_path) / f"gunicorn-{self.port}.log"
        self.database = Path(tmp_path) / "records.sqlite3"
        self.spool_path = Path(tmp_path) / f"spool-{self.port}.sqlite3"
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "MNIST_DATABASE_URL": database_url or f"sqlite:///{self.database}",
            "MNIST_SPOOL_PATH": str(self.spool_path),
            "PROMETHEUS_MULTIPROC_DIR": str(Path(tmp_path) / f"metrics-{self.port}"),
            **(env or {}),
        }
        self.process = None

    def start(self):
        """Start gunicorn (returns at once)."""
        self.process = start(gunicorn_argv(), self.env, self.log_path)
        return self

    def wait_ready(self, deadline_s=120):
        """Poll /readyz until 200; ServerExited / ServerNotReady if gunicorn dies or never gets there."""
        wait_http(f"{self.base}/readyz", self.process, self.log_path, deadline_s, interval=0.1)
        return self

    def workers(self):
        """The worker pids."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False)
        return sorted(int(pid) for pid in out.stdout.split())

    def stop(self):
        """Graceful stop, bounded; then kill the process group."""
        stop(self.process)
