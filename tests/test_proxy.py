"""The served stack against hostile clients, over real sockets: nginx in front (`make run-proxy`'s
scripts/run_proxy.py) and gunicorn on its own (gunicorn.conf.py), with the SQLite store.

Covers slow clients (slowloris through nginx), broken framing (chunked bodies too large or
malformed), gunicorn's and nginx's own error answers (JSON with the security headers), rate
limiting, static files served by nginx, and dead workers' metric files.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_web.limits import MAX_UPLOAD_BYTES
from support.harness import ServerExited, child_pids, log_tail, running, server_unavailable, wait_http
from support.ports import free_port

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz  # noqa: E402  (benchmarks/fuzz.py: the request generator the 100,000-request run uses)

VENV_BIN = Path(sys.executable).parent
SECURITY_HEADER = "X-Content-Type-Options"


@contextlib.contextmanager
def _serving(argv, env, log_path, port, ready_path="/readyz", deadline_s=120):
    with running(argv, env, log_path, stop_timeout=45) as process:
        try:
            wait_http(f"http://127.0.0.1:{port}{ready_path}", process, log_path, deadline_s, interval=0.5)
        except ServerExited as exc:
            server_unavailable(str(exc))
        yield process


def _env(tmp, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "NGINX_", "MNIST_", "PROMETHEUS_"))}
    env.update(
        HOST="127.0.0.1",
        TF_CPP_MIN_LOG_LEVEL="2",
        MNIST_DATABASE_URL=f"sqlite:///{tmp}/records.sqlite3",
        MNIST_SPOOL_PATH=f"{tmp}/spool.sqlite3",
        GUNICORN_ACCESS_LOG="",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """`make run-proxy`'s stack (nginx -> gunicorn on a unix socket) on a free port; yields the port."""
    if not (os.environ.get("NGINX_BIN") or shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        server_unavailable("nginx is not installed (scripts/install_system_deps.sh installs nginx-light)")
    tmp = tmp_path_factory.mktemp("proxy")
    port = free_port()
    env = _env(tmp, PORT=str(port), NGINX_PREFIX=str(tmp / "nginx"), NGINX_ACCESS_LOG="off", WEB_CONCURRENCY="1")
    with _serving([sys.executable, "scripts/run_proxy.py"], env, tmp / "proxy.log", port):
        yield port


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """gunicorn alone with gunicorn.conf.py (two workers) on a free port; yields (port, metrics folder)."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = _env(tmp, PORT=str(port), WEB_CONCURRENCY="2")
    argv = [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "mnist_web:create_app()"]
    with _serving(argv, env, tmp / "gunicorn.log", port):
        yield port, tmp / "metrics"


@pytest.fixture(params=["nginx", "gunicorn"])
def port(request):
    """The port of the stack behind nginx, then of gunicorn alone: the same answers are due from both."""
    if request.param == "nginx":
        return request.getfixturevalue("proxied")
    return request.getfixturevalue("direct")[0]


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers, body) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def raw(port, data, timeout=30):
    """Send raw bytes; return (status, headers dict, body) of the first response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.headers, response.read()


def assert_json_error(status, headers, body, expected_status, code=None):
    assert status == expected_status, (status, body[:300])
    assert headers["Content-Type"].startswith("application/json"), headers
    assert headers[SECURITY_HEADER] == "nosniff", headers
    payload = json.loads(body)
    assert set(payload) == {"error", "message"}, payload
    if code:
        assert payload["error"] == code, payload


def chunked_head(path, content_type="image/png"):
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (
        path.encode(),
        content_type.encode(),
    )


def chunked(body, piece=64 * 1024):
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece]) for i in range(0, len(body), piece)
    )
    return out + b"0\r\n\r\n"


def canvas_png():
    from mnist_web.canvas import encode_png, render_drawing
    from mnist_web.datasets import load_mnist

    images, _ = load_mnist()[1]
    import numpy as np

    return encode_png(render_drawing(images[0], np.random.default_rng(0)), "white")


# ---- framing ---------------------------------------------------------------------------------------


def test_chunked_body_over_the_limit_is_413_not_truncated(port):
    png = canvas_png()
    body = png + b"\x00" * (MAX_UPLOAD_BYTES + 1000 - len(png))
    head = (
        b"POST /api/v1/predictions HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert_json_error(*raw(port, head + chunked(body)), 413)
    before = json.loads(request(port, "GET", "/api/v1/stats")[2])["total"]
    canvas = b"data:image/png;base64," + __import__("base64").b64encode(png) + b" " * MAX_UPLOAD_BYTES
    assert_json_error(*raw(port, chunked_head("/predict/", "text/plain") + chunked(canvas)), 413)
    assert json.loads(request(port, "GET", "/api/v1/stats")[2])["total"] == before  # nothing was stored


def test_a_12_megapixel_phone_photo_passes_the_body_limit(port, mnist_test):
    from test_numbers_api import phone_photo

    from mnist_web.numbers import paper_photos

    images, labels = mnist_test
    jpeg = phone_photo(next(paper_photos(images, labels, 1, seed=1314, lengths=(2, 4)))[0])
    assert len(jpeg) > 5 * 1024 * 1024  # past the old limit
    status, _, body = request(port, "POST", "/api/v1/predictions?mode=number", jpeg, {"Content-Type": "image/jpeg"})
    assert status == 201, body[:300]
    assert json.loads(body)["mode"] == "number"


def test_chunked_body_within_the_limit_is_accepted(port):
    head = (
        b"POST /api/v1/predictions HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, _, body = raw(port, head + chunked(canvas_png(), piece=1000))
    assert status == 201, body


@pytest.mark.parametrize(
    "framing",
    [b"ZZZ\r\nabc\r\n0\r\n\r\n", b"5\r\nabc\r\n0\r\n\r\n", b"3\r\nabcXY0\r\n\r\n", b"-1\r\nabc\r\n0\r\n\r\n"],
)
@pytest.mark.parametrize("path", ["/predict/", "/api/v1/predictions"])
def test_malformed_chunking_is_400_json(port, framing, path):
    head = (
        b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n" % path.encode()
    )
    assert_json_error(*raw(port, head + framing, timeout=30), 400)


# ---- fuzzing ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_images():
    return fuzz.sample_images()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_fuzzed_requests_never_get_a_5xx(port, fuzz_images, rng):
    """Every endpoint, method, content type and framing fuzz.random_request makes: never a 5xx, never a hang.

    A server that answers an oversized head and closes may reset the connection before the client has
    read the answer (TCP discards it): "closed without an answer" is a refusal, not a failure.
    """
    data, method = fuzz.random_request(rng, fuzz_images)
    outcome = fuzz.send("127.0.0.1", port, data, method)
    assert outcome == "closed without an answer" or (isinstance(outcome, int) and outcome < 500), (outcome, data[:300])


# ---- the servers' own error answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, status",
    [
        (b"GARBAGE\r\n\r\n", (400,)),
        (b"POST /predict/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", (400,)),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", (414,)),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", (400, 431)),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", (400, 431)),
        (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", (400,)),
    ],
)
def test_protocol_errors_are_json_with_security_headers(port, data, status):
    got = raw(port, data)
    assert got[0] in status, got
    assert_json_error(*got, got[0])


@pytest.mark.parametrize("query", ["limit=%C2%B2", "limit=%D9%A1", "limit=%EF%BC%95", "cursor=ABC"])
def test_non_ascii_numbers_are_400_over_http(port, query):
    assert_json_error(*request(port, "GET", f"/api/v1/predictions?{query}"), 400, "bad_request")


# ---- nginx only ------------------------------------------------------------------------------------


def test_nginx_serves_static_files_itself(proxied):
    status, headers, body = request(proxied, "GET", "/static/css/app.css")
    assert status == 200 and body
    assert headers["Server"] == "nginx" and "max-age=3600" in headers["Cache-Control"]
    assert "Content-Security-Policy" not in headers  # the app adds that header to everything it serves


def test_nginx_rate_limits_each_client_with_a_json_429(proxied):
    statuses = []
    for _ in range(60):
        status, headers, body = request(proxied, "GET", "/healthz")
        statuses.append(status)
        if status == 429:
            assert_json_error(status, headers, body, 429, "too_many_requests")
    assert 200 in statuses and 429 in statuses
    time.sleep(3)  # let the bucket refill for the next tests


def test_slowloris_does_not_starve_predictions(proxied):
    """200 connections dribble headers for 40 s; predictions posted meanwhile each answer within 1 s."""
    png = canvas_png()
    request(proxied, "POST", "/api/v1/predictions", png, {"Content-Type": "image/png"})  # warm up the model
    stop = threading.Event()
    counts = {"open": 0, "reconnects": 0}

    def connect():
        sock = socket.create_connection(("127.0.0.1", proxied), timeout=5)
        sock.sendall(b"POST /api/v1/predictions HTTP/1.1\r\nHost: t\r\n")
        sock.setblocking(False)
        return sock

    def dribble():
        sockets = [connect() for _ in range(200)]
        counts["open"] = len(sockets)
        while not stop.wait(1.0):
            for i, sock in enumerate(sockets):
                try:
                    sock.send(b"X-S: 1\r\n")
                except OSError:  # nginx gave up on it (client_header_timeout): open another
                    sock.close()
                    with contextlib.suppress(OSError):
                        sockets[i] = connect()
                        counts["reconnects"] += 1
        for sock in sockets:
            sock.close()

    attacker = threading.Thread(target=dribble, daemon=True)
    attacker.start()
    latencies = []
    try:
        time.sleep(2)
        assert counts["open"] == 200
        ends = time.monotonic() + 40
        while time.monotonic() < ends:
            started = time.monotonic()
            status, _, body = request(proxied, "POST", "/api/v1/predictions", png, {"Content-Type": "image/png"}, 10)
            latencies.append(time.monotonic() - started)
            assert status == 201, body
            time.sleep(0.5)
    finally:
        stop.set()
        attacker.join(timeout=30)
    print(
        f"slowloris: {len(latencies)} predictions during 200 slow connections ({counts['reconnects']} reconnects): "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    assert len(latencies) >= 30
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert counts["reconnects"] >= 200  # nginx timed the slow clients out, and they came back


def test_posts_held_by_a_killed_worker_are_retried_into_one_record(tmp_path, drawing):
    """Workers SIGKILLed under load: nginx passes their requests on, every POST gets a 201, and the retried
    ones are stored once (the record id comes from nginx's request id), so records == answers exactly."""
    if not (os.environ.get("NGINX_BIN") or shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        server_unavailable("nginx is not installed (scripts/install_system_deps.sh installs nginx-light)")
    port = free_port()
    env = _env(
        tmp_path,
        PORT=str(port),
        NGINX_PREFIX=str(tmp_path / "nginx"),
        NGINX_ACCESS_LOG="off",
        WEB_CONCURRENCY="2",
        NGINX_RATE_LIMIT="10000r/s",
        NGINX_RATE_BURST="10000",
    )
    bodies = [drawing(i) for i in range(8)]
    answers, failures, stop = [], [], threading.Event()

    def post_until_stopped(worker):
        for n in range(10_000):  # bounded; stopped long before
            if stop.is_set():
                return
            try:
                status, _, body = request(
                    port, "POST", "/api/v1/predictions", bodies[(worker + n) % 8], {"Content-Type": "image/png"}
                )
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                continue
            if status == 201:
                answers.append(json.loads(body)["id"])
            else:
                failures.append((status, body[:200]))

    with _serving([sys.executable, "scripts/run_proxy.py"], env, tmp_path / "proxy.log", port) as proxy:
        (master,) = [pid for pid in child_pids(proxy.pid) if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        clients = [threading.Thread(target=post_until_stopped, args=(i,)) for i in range(6)]
        for thread in clients:
            thread.start()
        cut_off = 0
        try:
            for kill in range(10):  # until some kill has cut POSTs off mid-request (nginx logs each)
                time.sleep(2.0)
                # The oldest worker: it is serving (a replacement may still be loading its model).
                os.kill(min(child_pids(master)), signal.SIGKILL)
                time.sleep(1.0)
                cut_off = log_tail(tmp_path / "proxy.log", 10**7).count("from upstream, client")
                if cut_off and kill >= 1:
                    break
            time.sleep(2)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
    assert cut_off, "no kill caught a request in flight"
    assert not failures, failures[:5]
    assert len(answers) > 50
    rows = sqlite3.connect(tmp_path / "records.sqlite3").execute("SELECT id FROM record_data").fetchall()
    assert len(set(answers)) == len(answers)
    assert sorted(r[0] for r in rows) == sorted(answers)  # every answer stored once, nothing else


# ---- gunicorn only ---------------------------------------------------------------------------------


def test_dead_workers_metric_files_are_removed(direct):
    port, folder = direct
    for _ in range(4):
        request(port, "GET", "/healthz")

    def worker_pids():
        return {int(name.rsplit("_", 1)[1][:-3]) for name in os.listdir(folder) if name.endswith(".db")}

    pids = worker_pids()
    assert len(pids) >= 1
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victim in worker_pids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert victim not in worker_pids(), sorted(os.listdir(folder))
    assert request(port, "GET", "/metrics")[0] == 200


def test_metrics_scrapes_stay_200_while_workers_die(direct):
    """A dead worker's files vanish (child_exit) while /metrics reads them: the scrape lists again, never 500."""
    port, folder = direct
    statuses, stop = [], threading.Event()

    def scrape():
        while not stop.is_set():
            # A scrape the killed worker was answering is cut off: that is the kill, not an answer.
            with contextlib.suppress(OSError, http.client.HTTPException):
                statuses.append(request(port, "GET", "/metrics", timeout=10)[0])

    scrapers = [threading.Thread(target=scrape) for _ in range(4)]
    for thread in scrapers:
        thread.start()
    try:
        for _ in range(3):
            pids = {int(name.rsplit("_", 1)[1][:-3]) for name in os.listdir(folder) if name.endswith(".db")}
            victim = max(pids)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while any(name.endswith(f"_{victim}.db") for name in os.listdir(folder)) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2)  # the new worker boots and starts answering
    finally:
        stop.set()
        for thread in scrapers:
            thread.join(timeout=30)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
