"""Serving under load: the project as `make run` starts it (gunicorn.conf.py), driven by wrk.

    .venv/bin/python benchmarks/bench_serving.py                    # constant, decode, SQLite, Cassandra
    .venv/bin/python benchmarks/bench_serving.py --duration 10 --warmup 5 --targets constant,sqlite
    .venv/bin/python benchmarks/bench_serving.py --mode chaos       # 5 min, a worker killed and one recycled
    .venv/bin/python benchmarks/bench_serving.py --mode mixed       # drawings with photos beside, 1 and 4 threads

`load` mode starts, one after the other, a Flask endpoint that answers a constant (the ceiling of
gunicorn + Flask on this machine, same gunicorn.conf.py), a Flask endpoint that only receives the drawing and
decodes it as mnist_web does (the floor under the service), mnist_web on SQLite, and mnist_web on a
real Cassandra 5.0 node (scripts/services.py, on free loopback ports). Each is driven by `wrk`
(keep-alive, 16 connections) POSTing canvas data URLs to /predict/ (drawings of MNIST test digits by
mnist_web.canvas): a warm-up, then the measured run; SQLite also at 4 connections. The Cassandra node
gets a longer warm-up first (--cassandra-warmup): a freshly started JVM compiles Cassandra's write path
during its first minutes under load (measured here: its CPU per write fell from 6.3 to 2.1 ms over 100 s),
while a service's database has been running for long. It prints req/s, p50, p99, errors, the ratios to
the constant endpoint, the CPU milliseconds gunicorn spent per request (and the Cassandra node), the time
from starting gunicorn to a 200 from /readyz, and the RSS of each worker.

`chaos` mode runs mnist_web on SQLite under the same load for 5 minutes; a third of the way in one
worker is SIGKILLed, two thirds in another is recycled (SIGTERM: it finishes its requests and gunicorn
starts a replacement). It prints the slowest request, the errors, and the records stored against the
answers wrk read: stored - answered lies between 0 and the connections when none is lost (the requests in
flight when wrk stops are stored but never counted; tests/test_serving.py checks each record exactly).
`--via proxy` runs it through the deployed stack (`make run-proxy`: nginx,
which passes the requests a killed worker held on to another worker) instead of gunicorn alone.

`mixed` mode runs mnist_web on SQLite with each request-thread count of --mixed-threads in turn: wrk posts
canvas drawings over --low-connections connections while one client beside it posts paper photos in number
mode (mnist_web.numbers), pausing PHOTO_PAUSE_S between them. It prints the drawings' req/s, p50, p99 and
slowest request and the photos' count and median: what a long request does to the short ones behind it.

`--targets redis` (not in the default set) runs mnist_web on a redis-server of its own the same way.

Needs `wrk` (Debian package) and, for Cassandra, a JDK 17 and the jars `make cassandra-jars` fetches; for
Redis, Debian's redis-server.
"""

import argparse
import base64
import contextlib
import http.client
import itertools
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from support import harness  # noqa: E402  (tests/support: the one way to run a server process)
from support.ports import free_port  # noqa: E402

MNIST_APP = "mnist_web:create_app()"
PHOTO_PAUSE_S = 0.2  # mixed mode: the photo client's pause between photos
CONSTANT_APP = "bench_serving:constant_app()"  # imported by gunicorn from benchmarks/
DECODE_APP = "bench_serving:decode_app()"
# glibc's malloc raises its mmap threshold when a large block is freed, which loading a model does: mnist_web's
# workers then reuse their request buffers (0 page faults a request). A bare decoding app would instead map and
# unmap each one (281 page faults a request here) and measure the kernel; these settings give it the same state.
DECODE_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"

# wrk's Lua side: cycle through the bodies; print one JSON line of figures at the end.
LUA_TEMPLATE = """
local bodies = {BODIES}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/predict/", {["Content-Type"] = "text/plain"}, bodies[(counter % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _baseline_app(name, read_body):
    """A Flask app whose POST /predict/ hands the body to `read_body` and answers the same small JSON with what that
    returns added, and whose /readyz is ready at once."""
    from flask import Flask, jsonify, request

    app = Flask(name)

    @app.post("/predict/")
    def predict():
        response = jsonify(digit=7, confidence=1.0, **read_body(request.get_data()))
        response.status_code = 201
        return response

    @app.get("/readyz")
    def readyz():
        return jsonify(status="ready")

    return app


def constant_app():
    """A Flask app that answers every POST /predict/ with the same small JSON (the load ceiling)."""
    return _baseline_app("constant", lambda body: {})


def decode_app():
    """A Flask app that decodes each POST /predict/ data URL as mnist_web does (the data URL, size and integrity
    checks, the PNG, grey at working size), then answers the same small JSON: the floor under the service, with no
    model, no answer built and no record."""
    import cv2

    from mnist_web.concurrency import serving_plan
    from mnist_web.preprocessing import decode_upright

    cv2.setNumThreads(serving_plan()["opencv"])  # as mnist_web's workers do (serving.prepare_worker)

    def decode(body):
        gray, _, _ = decode_upright(body)
        return {"height": int(gray.shape[0])}

    return _baseline_app("decode", decode)


def canvas_data_urls(count, seed=20240501):
    """`count` canvas drawings of MNIST test digits, as the page's data URLs."""
    import numpy as np

    from mnist_web.canvas import encode_png, render_drawing
    from mnist_web.datasets import load_mnist

    (_, _), (images, _) = load_mnist()
    rng = np.random.default_rng(seed)
    return [
        "data:image/png;base64," + base64.b64encode(encode_png(render_drawing(images[i], rng), "white")).decode()
        for i in range(count)
    ]


def write_lua(folder, bodies):
    """The wrk script, in this run's own folder."""
    path = Path(folder) / "post_canvas.lua"
    path.write_text(LUA_TEMPLATE.replace("{BODIES}", "{" + ",\n".join(json.dumps(b) for b in bodies) + "}"))
    return path


def rss_mb(pid):
    """Resident memory of a process in MiB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Gunicorn:
    """One gunicorn started with the project's gunicorn.conf.py on a free port."""

    def __init__(self, app, folder, env=None):
        self.app = app
        self.host = "127.0.0.1"
        self.port = free_port()
        self.folder = Path(folder)
        self.log_path = self.folder / f"gunicorn-{self.port}.log"
        self.env = {
            **os.environ,
            "HOST": self.host,
            "PORT": str(self.port),
            "PROMETHEUS_MULTIPROC_DIR": str(self.folder / f"metrics-{self.port}"),
            **(env or {}),
        }
        self.process = None
        self.ready_s = None
        self.command = harness.gunicorn_argv(
            "--pythonpath", str(REPO / "benchmarks"), app=app, config=REPO / "gunicorn.conf.py"
        )

    @property
    def base(self):
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout=180):
        """Start gunicorn and wait for /readyz to answer 200; records the seconds it took."""
        started = time.monotonic()
        self.process = harness.start(self.command, self.env, self.log_path)
        harness.wait_http(f"{self.base}/readyz", self.process, self.log_path, timeout, interval=0.1)
        self.ready_s = time.monotonic() - started
        return self

    def workers(self):
        """The worker pids now."""
        return harness.child_pids(self.process.pid)

    def stop(self):
        """Graceful stop (SIGTERM to the master), bounded; then SIGKILL the group."""
        harness.stop(self.process)


class ProxiedStack(Gunicorn):
    """`make run-proxy`'s stack (scripts/run_proxy.py: nginx -> gunicorn on a unix socket) on a free port."""

    def __init__(self, folder, env=None):
        super().__init__(MNIST_APP, folder, env)
        self.log_path = self.folder / f"proxy-{self.port}.log"
        self.env.update(
            NGINX_PREFIX=str(self.folder / f"nginx-{self.port}"),
            NGINX_ACCESS_LOG="off",
            # One load generator on one address: the per-client limits would throttle the benchmark.
            NGINX_RATE_LIMIT="1000000r/s",
            NGINX_RATE_BURST="1000000",
            NGINX_CONN_PER_CLIENT="10000",
        )
        self.command = [sys.executable, str(REPO / "scripts" / "run_proxy.py")]

    def workers(self):
        """The worker pids of the gunicorn behind nginx."""
        for pid in harness.child_pids(self.process.pid):
            with contextlib.suppress(OSError):
                if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return harness.child_pids(pid)
        return []


def run_wrk(base, script, connections, seconds, threads=2):
    """Run wrk once; returns the figures its Lua done() printed."""
    timeout_s = max(5, int(seconds))
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    found = json.loads(line.split(" ", 1)[1])
    found["rps"] = found["requests"] / (found["duration_us"] / 1e6)
    found["errors"] = sum(found[k] for k in ("connect", "read", "write", "status", "timeout"))
    return found


def cpu_seconds(pids):
    """User + system CPU seconds the processes have used so far (from /proc/<pid>/stat)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, TypeError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(server, script, connections, warmup, duration, others=()):
    """A warm-up run (discarded) then the measured one, with the CPU milliseconds per request it took.

    `cpu_ms`: gunicorn's master and workers; `others_cpu_ms`: the processes in `others` (a database node).
    CPU per request is steadier than req/s on a shared machine: it does not count the time others take.
    """
    if warmup > 0:
        run_wrk(server.base, script, connections, warmup)
    pids = [server.process.pid, *server.workers()]
    before = cpu_seconds(pids), cpu_seconds(others)
    figures = run_wrk(server.base, script, connections, duration)
    requests = max(figures["requests"], 1)
    figures["cpu_ms"] = (cpu_seconds(pids) - before[0]) * 1000 / requests
    figures["others_cpu_ms"] = (cpu_seconds(others) - before[1]) * 1000 / requests
    return figures


def worker_rss(server):
    """'pid: MiB' of every worker."""
    return ", ".join(f"{rss_mb(pid):.0f}" for pid in server.workers() if rss_mb(pid) is not None)


@contextlib.contextmanager
def cassandra_node(folder):
    """A real Cassandra 5.0 node on free loopback ports for the run (scripts/services.py)."""
    from svc_cassandra import CassandraServer

    server = CassandraServer(
        base_dir=Path(folder) / "cassandra",
        port=free_port(),
        storage_port=free_port(),
        jmx_port=free_port(),
        heap=os.environ.get("CASSANDRA_HEAP", "512M"),
        keyspace="bench",
    )
    try:
        seconds = server.start(wait=False).wait_ready(float(os.environ.get("CASSANDRA_START_TIMEOUT", 300)))
        print(f"cassandra up on {server.url} after {seconds:.0f} s", flush=True)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_server(folder):
    """Debian's redis-server on a free loopback port for the run (scripts/svc_redis.py)."""
    from svc_redis import RedisServer

    server = RedisServer(base_dir=Path(folder) / "redis", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fmt_ms(us):
    return f"{us / 1000:.1f}"


def print_row(name, figures, baseline, server):
    ratio = figures["rps"] / baseline["rps"] if baseline else float("nan")
    tail = figures["p99_us"] / max(figures["p50_us"], 1)
    print(
        f"{name:<26} {figures['rps']:>8.0f} {fmt_ms(figures['p50_us']):>8} {fmt_ms(figures['p99_us']):>9}"
        f" {tail:>8.2f} {figures['errors']:>6} {ratio:>9.3f} {figures['cpu_ms']:>10.2f} {server.ready_s:>8.1f}"
        f"   {worker_rss(server)}",
        flush=True,
    )


def extra_env(args):
    """The --env NAME=VALUE settings as a dict."""
    return dict(item.split("=", 1) for item in args.env)


def load_mode(args, folder, script):
    targets = args.targets.split(",")
    env = extra_env(args)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    print(f"warm-up {args.warmup} s, measured {args.duration} s; extra env: {env or '-'}")
    header = f"{'target':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>9} {'p99/p50':>8} {'errors':>6}"
    print(header + f" {'vs const':>9} {'cpu ms/req':>10} {'ready s':>8}   worker RSS MiB", flush=True)
    baseline = None
    runs = []
    if "constant" in targets:
        runs.append(("constant endpoint", CONSTANT_APP, {}, [args.connections]))
    if "decode" in targets:
        runs.append(("decode endpoint", DECODE_APP, {"GLIBC_TUNABLES": DECODE_MALLOC}, [args.connections]))
    if "sqlite" in targets:
        sqlite_env = {"MNIST_DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3"}
        runs.append(("mnist_web sqlite", MNIST_APP, sqlite_env, [args.connections, args.low_connections]))
    for name, app, app_env, connection_counts in runs:
        server = Gunicorn(app, folder, {**env, **app_env}).start()
        try:
            for connections in connection_counts:
                figures = measure(server, script, connections, args.warmup, args.duration)
                if app == CONSTANT_APP:
                    baseline = figures
                print_row(f"{name}, {connections} conns", figures, baseline, server)
        finally:
            server.stop()
    if "redis" in targets:
        with redis_server(folder) as redis:
            figures = store_run(args, folder, script, env, baseline, "redis", redis.url, redis.pid)
            print(f"  redis-server's CPU per request: {figures['others_cpu_ms']:.2f} ms")
    if "cassandra" in targets:
        with cassandra_node(folder) as node:
            url = f"cassandra://{node.host}:{node.port}/bench"
            # The JVM's compiler first (see the module's docstring).
            figures = store_run(args, folder, script, env, baseline, "cassandra", url, node.pid, args.cassandra_warmup)
            print(f"  the Cassandra node's CPU per request: {figures['others_cpu_ms']:.2f} ms")
            with contextlib.closing(sqlite3.connect(f"{folder}/spool-cassandra.sqlite3")) as spool:
                left = spool.execute("SELECT COUNT(*) FROM spool").fetchone()[0]
            print(f"  records left in the spool after the run: {left}")


def store_run(args, folder, script, env, baseline, name, url, store_pid, store_warmup=0):
    """mnist_web on a store server at --connections (after store_warmup s of load): its printed row's figures."""
    store_env = {"MNIST_DATABASE_URL": url, "MNIST_SPOOL_PATH": f"{folder}/spool-{name}.sqlite3"}
    server = Gunicorn(MNIST_APP, folder, {**env, **store_env}).start()
    try:
        if store_warmup > 0:
            run_wrk(server.base, script, args.connections, store_warmup)
        figures = measure(server, script, args.connections, args.warmup, args.duration, [store_pid])
        print_row(f"mnist_web {name}, {args.connections} conns", figures, baseline, server)
        return figures
    finally:
        server.stop()


def chaos_mode(args, folder, script):
    env = extra_env(args)
    database = Path(folder) / "chaos.sqlite3"
    env["MNIST_DATABASE_URL"] = f"sqlite:///{database}"
    server = (ProxiedStack(folder, env) if args.via == "proxy" else Gunicorn(MNIST_APP, folder, env)).start()
    print(
        f"load: {os.getloadavg()[0]:.2f} (1 min); {'nginx -> gunicorn' if args.via == 'proxy' else 'gunicorn alone'}; "
        f"ready after {server.ready_s:.1f} s; workers {server.workers()}"
    )
    try:
        run_wrk(server.base, script, args.connections, args.warmup) if args.warmup else None
        before = settled_count(database)
        result = {}
        thread = threading.Thread(
            target=lambda: result.update(run_wrk(server.base, script, args.connections, args.chaos_duration))
        )
        thread.start()
        time.sleep(args.chaos_duration / 3)
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        print(f"{args.chaos_duration / 3:.0f} s: SIGKILL worker {victim}", flush=True)
        time.sleep(args.chaos_duration / 3)
        recycled = [pid for pid in server.workers() if pid != victim][0]
        os.kill(recycled, signal.SIGTERM)
        print(f"{2 * args.chaos_duration / 3:.0f} s: SIGTERM (recycle) worker {recycled}", flush=True)
        thread.join()
        after = settled_count(database)
        unanswered = after - before - result["requests"]
        print(
            f"{args.chaos_duration} s at {args.connections} conns: {result['rps']:.0f} req/s, "
            f"p50 {fmt_ms(result['p50_us'])} ms, p99 {fmt_ms(result['p99_us'])} ms, "
            f"slowest {fmt_ms(result['max_us'])} ms; errors {result['errors']} "
            f"(connect {result['connect']}, read {result['read']}, write {result['write']}, "
            f"non-2xx {result['status']}, timeout {result['timeout']}); "
            f"requests {result['requests']}, records stored {after - before}; workers now {server.workers()}"
        )
        # wrk counts only the answers it read: the requests in flight when it stops are stored but not counted.
        verdict = "consistent with every answer stored" if 0 <= unanswered <= args.connections else "MISMATCH"
        print(f"stored - answered = {unanswered} (0..{args.connections}: requests in flight at wrk's stop): {verdict}")
    finally:
        server.stop()


def settled_count(database, quiet_s=1.0, tries=20):
    """The records in a SQLite file once no request still in flight adds one (unchanged for quiet_s; bounded)."""
    count = None
    for _ in range(tries):
        with contextlib.closing(sqlite3.connect(database)) as conn:
            now = conn.execute("SELECT COUNT(*) FROM record_data").fetchone()[0]
        if now == count:
            break
        count = now
        time.sleep(quiet_s)
    return count


def photo_bodies(count, seed=20240502):
    """`count` generated paper photos of 1-6 MNIST test digits, as JPEG bytes."""
    from mnist_web.datasets import load_mnist
    from mnist_web.numbers import paper_photos

    (_, _), (images, labels) = load_mnist()
    return [jpeg for jpeg, _ in paper_photos(images, labels, count, seed)]


def post_photos(server, photos, stop, latencies_ms):
    """Post the photos in number mode, one at a time with a pause, until `stop`; append each latency."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    for i in itertools.count():
        if stop.is_set():
            break
        started = time.perf_counter()
        connection.request(
            "POST",
            "/api/v1/predictions?mode=number",
            body=photos[i % len(photos)],
            headers={"Content-Type": "image/jpeg"},
        )
        response = connection.getresponse()
        response.read()
        if response.status == 201:
            latencies_ms.append((time.perf_counter() - started) * 1000)
        stop.wait(PHOTO_PAUSE_S)
    connection.close()


def mixed_mode(args, folder, script):
    env = extra_env(args)
    photos = photo_bodies(6)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); photos of {', '.join(f'{len(p) // 1024}' for p in photos)} KiB")
    for threads in args.mixed_threads.split(","):
        run_env = {
            **env,
            "GUNICORN_THREADS": threads,
            "MNIST_DATABASE_URL": f"sqlite:///{folder}/mixed-{threads}.sqlite3",
        }
        server = Gunicorn(MNIST_APP, folder, run_env).start()
        stop, latencies = threading.Event(), []
        photo_client = threading.Thread(target=post_photos, args=(server, photos, stop, latencies))
        try:
            if args.warmup > 0:
                run_wrk(server.base, script, args.low_connections, args.warmup)
            photo_client.start()
            figures = run_wrk(server.base, script, args.low_connections, args.duration)
        finally:
            stop.set()
            if photo_client.is_alive():
                photo_client.join(timeout=90)
            server.stop()
        median = f"{statistics.median(latencies):.0f} ms" if latencies else "-"
        print(
            f"{threads} thread(s) a worker: drawings {figures['rps']:.0f} req/s, p50 {fmt_ms(figures['p50_us'])} ms, "
            f"p99 {fmt_ms(figures['p99_us'])} ms, slowest {fmt_ms(figures['max_us'])} ms, errors {figures['errors']}; "
            f"photos {len(latencies)}, median {median}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["load", "chaos", "mixed"], default="load")
    parser.add_argument(
        "--targets", default="constant,decode,sqlite,cassandra", help="load mode: which to run (also: redis)"
    )
    parser.add_argument("--duration", type=int, default=30, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=30, help="seconds of load before each measured run")
    parser.add_argument(
        "--cassandra-warmup", type=int, default=90, help="seconds of load on a fresh Cassandra node before its warm-up"
    )
    parser.add_argument("--chaos-duration", type=int, default=300, help="chaos mode: seconds of load")
    parser.add_argument(
        "--via",
        choices=["direct", "proxy"],
        default="direct",
        help="chaos mode: wrk -> gunicorn, or wrk -> nginx -> gunicorn (make run-proxy)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--low-connections", type=int, default=4, help="the second SQLite run (for p99)")
    parser.add_argument("--bodies", type=int, default=50, help="distinct canvas drawings posted")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for gunicorn (repeatable)")
    parser.add_argument("--mixed-threads", default="1,4", help="mixed mode: GUNICORN_THREADS values to compare")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk, or scripts/install_system_deps.sh)")
    folder = tempfile.mkdtemp(prefix="bench_serving-")
    try:
        script = write_lua(folder, canvas_data_urls(args.bodies))
        {"load": load_mode, "chaos": chaos_mode, "mixed": mixed_mode}[args.mode](args, folder, script)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
