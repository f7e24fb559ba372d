"""Serving with real gunicorn processes (the project's gunicorn.conf.py): readiness, workers, races, bad JSON.

(a) a worker answers nothing, /readyz included, before it has loaded its model and opened its store;
(b) 16 concurrent first requests on a fresh store, two workers: all 201, each record stored once;
(c) a worker SIGKILLed during a burst: every answered (201) prediction is in the store exactly once,
    only requests that worker held fail, and gunicorn replaces it;
(d) a JSON body nested thousands of levels deep is a 400 JSON error on every JSON endpoint;
(e) keep-alive connections are spread evenly over the workers, also onto a worker started later.
Correctness only: timings belong in benchmarks/bench_serving.py.
"""

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import sqlite3
import threading
import time

import pytest
from test_delivery import digit_pngs
from test_store_contract import make_record

from mnist_web.db import StoreHolder
from mnist_web.gunicorn_worker import ConnectionBoard
from mnist_web.store.base import new_record_id
from mnist_web.store.sqlite import SqliteStore
from support.harness import GunicornServer, http, log_tail
from support.servers import cassandra_url, fresh_keyspace

NESTED = "[" * 5000 + "]" * 5000


@pytest.fixture
def serve(tmp_path):
    """serve(**options) -> a started GunicornServer, stopped after the test."""
    started = []

    def make(**options):
        server = GunicornServer(tmp_path, **options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def pngs():
    return [png for png, _ in digit_pngs(8)]


def post_png(base, png, timeout=60):
    """(status, parsed JSON or raw body) of one POST /api/v1/predictions, on a new connection."""
    status, _, body = http(
        "POST", f"{base}/api/v1/predictions", body=png, headers={"Content-Type": "image/png"}, timeout=timeout
    )
    with contextlib.suppress(ValueError):
        body = json.loads(body)
    return status, body


def stored_id_counts(database):
    """{record id: how many rows} straight from the SQLite file."""
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        return dict(conn.execute("SELECT id, COUNT(*) FROM record_data GROUP BY id").fetchall())


def test_no_answer_before_the_model_is_loaded(serve):
    """Every /readyz answer, from the first one on, says ready; by then the workers logged loading the model."""
    server = serve()
    answers = []
    deadline = time.monotonic() + 120
    while len(answers) < 20 and time.monotonic() < deadline:
        assert server.process.poll() is None, log_tail(server.log_path)
        with contextlib.suppress(OSError):
            status, _, body = http("GET", f"{server.base}/readyz", timeout=30)
            answers.append((status, json.loads(body), server.log_path.read_text(errors="replace")))
        time.sleep(0.02)
    assert answers, f"never answered:\n{log_tail(server.log_path)}"
    first_status, first_detail, log_then = answers[0]
    assert "model cnn-" in log_then and "worker ready" in log_then, log_then[-3000:]
    for status, detail, _ in answers:
        assert status == 200 and detail["model"]["ready"] and detail["store"]["ready"], detail
    # Each worker prepared itself before serving: one model load and one "ready" per worker.
    log = server.log_path.read_text(errors="replace")
    assert log.count("worker ready") == log.count("model cnn-") == 2, log[-3000:]


@pytest.mark.parametrize("backend", ["sqlite", "cassandra"])
def test_concurrent_first_requests_on_a_fresh_store_all_succeed(serve, pngs, backend, request):
    database_url = None
    if backend == "cassandra":
        server_db = request.getfixturevalue("cassandra_server")
        database_url = cassandra_url(server_db, fresh_keyspace(), consistency="ONE")
    server = serve(database_url=database_url).wait_ready()
    barrier = threading.Barrier(16)

    def first_request(index):
        barrier.wait(timeout=60)
        return post_png(server.base, pngs[index % len(pngs)])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(first_request, range(16)))
    assert [status for status, _ in answers] == [201] * 16, [body for _, body in answers]
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 16
    for record_id in ids:  # every record is there (read back through the service)
        status, _, body = http("GET", f"{server.base}/api/v1/predictions/{record_id}", timeout=30)
        assert status == 200, body
    if backend == "sqlite":
        assert stored_id_counts(server.database) == {record_id: 1 for record_id in ids}


def test_a_worker_killed_during_a_burst_loses_no_answered_prediction(serve, pngs):
    server = serve().wait_ready()
    answered, failed = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(index):
        sent = 0
        while not stop.is_set() and sent < 200:  # bounded
            sent += 1
            try:
                status, body = post_png(server.base, pngs[(index + sent) % len(pngs)], timeout=60)
            except OSError as exc:  # the connection the killed worker held
                status, body = None, repr(exc)
            with lock:
                (answered if status == 201 else failed).append(body["id"] if status == 201 else (status, body))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(client, i) for i in range(8)]
        deadline = time.monotonic() + 120
        while len(answered) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = len(answered)
        while len(answered) < killed_at + 80 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for future in clients:
            future.result(timeout=120)

    assert len(answered) >= killed_at + 80, f"the service stopped answering after the kill:\n{failed}"
    # Only what the killed worker held can fail: at most one request per client connection.
    assert len(failed) <= 8, failed
    assert all(status is None for status, _ in failed), failed  # never an error answer, only lost connections
    stored = stored_id_counts(server.database)
    assert {record_id: stored.get(record_id) for record_id in answered} == {record_id: 1 for record_id in answered}
    # gunicorn replaced the worker: two workers again, the victim gone, and the service answers.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (len(server.workers()) != 2 or victim in server.workers()):
        time.sleep(0.2)
    assert len(server.workers()) == 2 and victim not in server.workers()
    server.wait_ready()
    assert post_png(server.base, pngs[0])[0] == 201


def test_deeply_nested_json_is_a_400_on_every_json_endpoint(serve, pngs):
    server = serve(workers=1).wait_ready()
    status, created = post_png(server.base, pngs[0])
    assert status == 201
    json_endpoints = [
        ("POST", "/api/v1/predictions"),
        ("PUT", f"/api/v1/predictions/{created['id']}/label"),
        ("PUT", f"/api/v1/predictions/{new_record_id()}/label"),
    ]
    for method, path in json_endpoints:
        for body in (NESTED, '{"image": ' + NESTED + "}", '{"label": ' + NESTED + "}"):
            status, headers, answer = http(
                method, server.base + path, body=body.encode(), headers={"Content-Type": "application/json"}
            )
            assert status == 400, (method, path, status, answer[:300])
            assert headers["Content-Type"] == "application/json"
            assert json.loads(answer)["error"] == "bad_request", answer[:300]
    # The label was not touched, and the worker still serves.
    status, _, body = http("GET", f"{server.base}/api/v1/predictions/{created['id']}")
    assert status == 200 and json.loads(body)["label"] is None
    assert "RecursionError" not in server.log_path.read_text(errors="replace")


class SlowSchemaStore(SqliteStore):
    """A real SQLite store whose schema takes half a second to create (as a remote database's may)."""

    def init_schema(self):
        time.sleep(0.5)
        super().init_schema()


def test_threads_of_one_process_wait_for_the_schema(tmp_path):
    """In-process: 8 threads' first writes on a fresh store all wait for the one that creates the schema."""
    holder = StoreHolder({"MNIST_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"}, str(tmp_path))
    holder._open = lambda: SlowSchemaStore(tmp_path / "fresh.sqlite3")
    records = [make_record() for _ in range(8)]
    barrier = threading.Barrier(len(records))

    def first_write(record):
        barrier.wait(timeout=30)
        holder.store().add(record)

    try:
        with concurrent.futures.ThreadPoolExecutor(len(records)) as pool:
            list(pool.map(first_write, records))  # raises StoreUnavailable ("no such table") on a race
        assert stored_id_counts(tmp_path / "fresh.sqlite3") == {str(record.id): 1 for record in records}
    finally:
        holder.close()


def _server_sockets(server, wanted):
    """The server port's sockets (as /proc fd link targets) whose (state, remote port) `wanted` accepts."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port, remote_port = (int(field.rsplit(":", 1)[1], 16) for field in fields[1:3])
                if local_port == server.port and wanted(fields[3], remote_port):
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _held_per_worker(server, inodes):
    """{worker pid: how many of these sockets it holds}, read from /proc."""
    held = {}
    for pid in server.workers():
        with contextlib.suppress(FileNotFoundError):
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            held[pid] = sum(link in inodes for link in links)
    return held


def _established_per_worker(server):
    """{worker pid: established connections it holds on the server's port}."""
    return _held_per_worker(server, _server_sockets(server, lambda state, _: state == "01"))  # 01: ESTABLISHED


def _wait_until_accepted(server, sock, deadline_s=30):
    """Wait until a worker holds the server's end of the client socket `sock` (bounded)."""
    client_port = sock.getsockname()[1]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if any(_held_per_worker(server, _server_sockets(server, lambda _, port: port == client_port)).values()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no worker accepted the connection from port {client_port} in {deadline_s} s")


def _wait_for_ready_workers(server, count, deadline_s=120):
    """Wait until `count` workers have logged that they are ready (each then accepts connections)."""
    deadline = time.monotonic() + deadline_s
    while server.log_path.read_text().count("worker ready") < count:
        assert time.monotonic() < deadline, log_tail(server.log_path)
        time.sleep(0.1)


def _keepalive_get(sock):
    """GET /healthz on an open connection: (status, whether the server closes the connection after it)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without an answer"
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers.get("connection", "").lower() == "close"


def test_keepalive_connections_are_spread_evenly_over_the_workers(serve):
    """16 connections opened at once end up 8 and 8 on two workers (the kernel alone splits them at random)."""
    server = serve(workers=2, threads=2).wait_ready()
    _wait_for_ready_workers(server, 2)
    for _ in range(3):  # three bursts, each on fresh connections
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(16)]
        try:
            assert [_keepalive_get(sock)[0] for sock in socks] == [200] * 16
            held = _established_per_worker(server)
            assert sum(held.values()) == 16 and max(held.values()) - min(held.values()) <= 1, held
        finally:
            for sock in socks:
                sock.close()
        deadline = time.monotonic() + 30
        while sum(_established_per_worker(server).values()) and time.monotonic() < deadline:
            time.sleep(0.05)  # the workers see the closes before the next burst


def test_a_new_worker_gets_its_share_of_existing_keepalive_connections(serve):
    """Connections held by one worker are moved to a worker started later: told to close, they come back."""
    # A long keep-alive: the idle connections must outlast the new worker's start on a busy machine.
    server = serve(workers=1, threads=2, env={"GUNICORN_KEEPALIVE": "120"}).wait_ready()
    _wait_for_ready_workers(server, 1)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(8)]
    try:
        assert [_keepalive_get(sock)[0] for sock in socks] == [200] * 8
        assert sorted(_established_per_worker(server).values()) == [8]
        os.kill(server.process.pid, signal.SIGTTIN)  # one more worker
        _wait_for_ready_workers(server, 2)
        reconnected = 0
        for _ in range(5):  # rounds of one request per connection, reconnecting where told to close
            for index, sock in enumerate(socks):
                status, closes = _keepalive_get(sock)
                assert status == 200
                if closes:
                    sock.close()
                    socks[index] = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                    reconnected += 1
                    # A busy machine may leave it in the listen backlog for a while; until a worker accepts it,
                    # no worker counts it, and the next request would move one too many.
                    _wait_until_accepted(server, socks[index])
        held = _established_per_worker(server)
        assert sorted(held.values()) == [4, 4], held
        assert reconnected == 4  # exactly the share moved, no connection closed for nothing
    finally:
        for sock in socks:
            sock.close()


def test_connection_board_is_shared_with_forked_workers_and_frees_slots():
    board = ConnectionBoard(slots=4)
    first, second = board.claim(), board.claim()
    assert (first, second) == (0, 1)
    assert board.fewest_others(first) is None  # the second one is not accepting yet
    pid = os.fork()
    if pid == 0:  # a worker: publishes its count in the shared memory, then leaves at once
        board.publish(second, 3)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert board.fewest_others(first) == 3
    board.publish(first, 2)
    assert board.fewest_others(second) == 2
    board.release(second)  # gunicorn's child_exit
    assert board.fewest_others(first) is None
    assert board.claim() == second  # the lowest free slot is used again
    assert [board.claim(), board.claim()] == [2, 3] and board.claim() is None  # full: that worker just accepts
