"""Serving with real gunicorn processes (the project's gunicorn.conf.py): readiness, workers, races, bad JSON.

(a) a worker answers nothing, /readyz included, before it has loaded its model and opened its store;
(b) 16 concurrent first requests on a fresh store, two workers: all 201, each record stored once;
(c) a worker SIGKILLed during a burst: every answered (201) prediction is in the store exactly once,
    only requests that worker held fail, and gunicorn replaces it;
(d) a JSON body nested thousands of levels deep is a 400 JSON error on every JSON endpoint.
Correctness only: timings belong in benchmarks/bench_serving.py.
"""

import concurrent.futures
import contextlib
import json
import os
import signal
import sqlite3
import threading
import time

import pytest
from test_delivery import digit_pngs
from test_store_contract import make_record

from mnist_web.db import StoreHolder
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
