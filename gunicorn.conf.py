"""Gunicorn settings for mnist_web; every value comes from the environment, with a default.

Run with:  gunicorn -c gunicorn.conf.py "mnist_web:create_app()"
(`make run`, the Dockerfile's ENTRYPOINT and tests/test_delivery.py all use exactly this.)

| variable                     | default     | meaning                                                  |
| ---------------------------- | ----------- | -------------------------------------------------------- |
| HOST                         | 127.0.0.1   | address to bind (the Docker image sets 0.0.0.0)          |
| PORT                         | 5000        | port to bind                                             |
| WEB_CONCURRENCY              | usable CPUs | worker processes (each loads its own model)              |
| GUNICORN_THREADS             | 4           | request threads per worker                               |
| MNIST_TF_INTRA_OP_THREADS    | 1           | TensorFlow intra-op threads per worker                   |
| MNIST_TF_INTER_OP_THREADS    | 1           | TensorFlow inter-op threads per worker                   |
| MNIST_ONNX_THREADS           | 1           | ONNX Runtime intra-op threads per worker                 |
| MNIST_OPENCV_THREADS         | 1           | OpenCV threads per worker (decode, resize, labelling)    |
| GUNICORN_TIMEOUT             | 30          | seconds a silent worker lives before it is killed        |
| GUNICORN_GRACEFUL_TIMEOUT    | 30          | seconds workers get to finish requests on shutdown       |
| GUNICORN_KEEPALIVE           | 5           | seconds an idle keep-alive connection stays open         |
| GUNICORN_MAX_REQUESTS        | 0           | requests after which a worker is recycled (0: never)     |
| GUNICORN_MAX_REQUESTS_JITTER | 0           | random extra requests so workers do not recycle together |
| GUNICORN_LOG_LEVEL           | info        | error-log level (the app's own LOG_LEVEL is separate)    |
| GUNICORN_ACCESS_LOG          | -           | access-log file; "-" is stdout, "" turns it off          |
| FORWARDED_ALLOW_IPS          | 127.0.0.1   | proxies whose X-Forwarded-* headers are trusted          |

"Usable CPUs" is the affinity mask capped by a cgroup CPU quota (mnist_web/concurrency.py), not
the host's core count. Measured on 2 CPUs (README, Benchmarks): one worker per CPU, 4 threads each
(one computes while the others wait on the socket or the database), 1 TensorFlow, ONNX Runtime and OpenCV thread per
worker (one 28x28 image or one canvas is too small to split across cores; the workers are the parallelism).

The app creates its model and database sessions lazily, so `preload_app` stays False: a Cassandra
session or a TensorFlow runtime made before fork() would be shared, broken, by every worker. Each
worker loads and warms its model and opens its store in `post_worker_init`, after the fork and before
it accepts a connection, so no request ever waits for a model load and /readyz answers only then.
Workers are not recycled (no leak measured; a recycled worker costs a model load). For a rolling
restart send TTIN (one more worker, ready before it accepts), then TTOU (the oldest one leaves);
HUP replaces all workers at once.
"""

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_web.concurrency import serving_plan  # noqa: E402  (imports nothing heavy: no TensorFlow here)


def _env_int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_str(name, default):
    value = os.environ.get(name)
    return default if value is None else value


def _bind_address(host, port):
    # An IPv6 literal needs brackets: [::]:5000
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


# --- Where to listen ---------------------------------------------------------------------------
bind = [_bind_address(_env_str("HOST", "127.0.0.1") or "127.0.0.1", _env_int("PORT", 5000))]

# --- Workers -----------------------------------------------------------------------------------
_plan = serving_plan()  # WEB_CONCURRENCY, GUNICORN_THREADS, or sized from the usable CPUs
workers = _plan["workers"]
# gthread, with gunicorn's own 400/414/431 answers as JSON with the security headers, and keep-alive
# connections spread evenly over the workers (pre_fork and child_exit below keep its board).
worker_class = "mnist_web.gunicorn_worker.ServingThreadWorker"
threads = _plan["threads"]
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# No recycling by default: RSS stays flat under load (README, Benchmarks) and each recycle costs a
# model load. If a leak ever calls for it, set both: the jitter staggers the workers' restarts.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# Model and DB sessions are made lazily after fork(): never load the app in the master.
preload_app = False
# The worker heartbeat file: tmpfs where there is one (a container's overlay fs can stall it).
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# --- Request limits (the body limit is the app's MAX_CONTENT_LENGTH) ------------------------------
limit_request_line = 4094  # longest request line (method + URL + version), bytes
limit_request_fields = 100  # most header fields
limit_request_field_size = 8190  # longest header field, bytes

# --- Proxies -----------------------------------------------------------------------------------
forwarded_allow_ips = _env_str("FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Logging: both to the container's stdout/stderr --------------------------------------------
accesslog = _env_str("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = _env_str("GUNICORN_LOG_LEVEL", "info")
# Combined log format plus the request's duration in milliseconds.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
capture_output = False
proc_name = "mnist_web"

# --- Prometheus: one /metrics for all workers ----------------------------------------------------
# Each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up
# (prometheus_client's multiprocess mode); otherwise a scrape would see only the worker it hit.


def on_starting(server):
    """Give the workers a fresh, empty metrics folder (they inherit the variable at fork)."""
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="mnist_web-metrics-")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def pre_fork(server, worker):
    """Give the worker about to be forked its slot on the connection board (in the master)."""
    from mnist_web.gunicorn_worker import connection_board

    worker.connection_slot = connection_board().claim()


def post_worker_init(worker):
    """Load the model and open the store in this worker before it accepts its first connection."""
    from mnist_web.serving import prepare_worker

    prepare_worker(worker.wsgi, notify=worker.notify)


def child_exit(server, worker):
    """Free a dead worker's board slot; drop its live gauges and metric files, so that files do not pile up."""
    from prometheus_client import multiprocess

    from mnist_web.gunicorn_worker import connection_board

    connection_board().release(getattr(worker, "connection_slot", None))

    multiprocess.mark_process_dead(worker.pid)
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(f"_{worker.pid}.db"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
