"""Gunicorn settings for mnist_web; every value comes from the environment, with a default.

Run with:  gunicorn -c gunicorn.conf.py "mnist_web:create_app()"
(`make run`, the Dockerfile's ENTRYPOINT and tests/test_delivery.py all use exactly this.)

| variable                     | default     | meaning                                                  |
| ---------------------------- | ----------- | -------------------------------------------------------- |
| HOST                         | 127.0.0.1   | address to bind (the Docker image sets 0.0.0.0)          |
| PORT                         | 5000        | port to bind                                             |
| WEB_CONCURRENCY              | 2           | worker processes (each loads its own model)              |
| GUNICORN_THREADS             | 4           | threads per worker (gthread)                             |
| GUNICORN_TIMEOUT             | 30          | seconds a silent worker lives before it is killed        |
| GUNICORN_GRACEFUL_TIMEOUT    | 30          | seconds workers get to finish requests on shutdown       |
| GUNICORN_KEEPALIVE           | 5           | seconds an idle keep-alive connection stays open         |
| GUNICORN_MAX_REQUESTS        | 1000        | requests after which a worker is recycled (0: never)     |
| GUNICORN_MAX_REQUESTS_JITTER | 100         | random extra requests so workers do not recycle together |
| GUNICORN_LOG_LEVEL           | info        | error-log level (the app's own LOG_LEVEL is separate)    |
| GUNICORN_ACCESS_LOG          | -           | access-log file; "-" is stdout, "" turns it off          |
| FORWARDED_ALLOW_IPS          | 127.0.0.1   | proxies whose X-Forwarded-* headers are trusted          |

The app creates its model and database sessions lazily, in each worker after the fork, so
`preload_app` stays False: a Cassandra session or a TensorFlow runtime made before fork()
would be shared, broken, by every worker.
"""

import contextlib
import os


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
workers = _env_int("WEB_CONCURRENCY", 2)
# gthread, with gunicorn's own 400/414/431 answers as JSON with the security headers.
worker_class = "mnist_web.gunicorn_worker.JsonErrorThreadWorker"
threads = _env_int("GUNICORN_THREADS", 4)
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then (bounds slow leaks); the jitter spreads the restarts out.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100)
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


def child_exit(server, worker):
    """Drop a dead worker's live gauges and its metric files, so that files do not pile up."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(f"_{worker.pid}.db"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
