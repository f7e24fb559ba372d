"""The service on a real Cassandra: records land in record_data, and an outage loses or duplicates nothing."""

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mnist_web import create_app
from mnist_web.store.cassandra import CassandraStore
from support.servers import cassandra_url, fresh_keyspace

CQLSH = Path(sys.executable).parent / "cqlsh"


def make_app(server, tmp_path):
    """The app on a fresh keyspace of `server`, spooling to tmp_path."""
    keyspace = fresh_keyspace()
    app = create_app(
        {
            "TESTING": True,
            "MNIST_DATABASE_URL": cassandra_url(server, keyspace, reconnect_max_delay=2),
            "MNIST_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
        }
    )
    return app, keyspace


def cqlsh(server, query):
    """Rows of `query` as cqlsh prints them, each a list of stripped cell strings."""
    if not CQLSH.exists():
        pytest.fail(f"cqlsh is not installed in the virtualenv ({CQLSH}): pip install cqlsh")
    result = subprocess.run(
        [str(CQLSH), server.host, str(server.port), "-e", query], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "|" in line]
    return [[cell.strip() for cell in line.split("|")] for line in lines[1:]]  # lines[0] is the header


def post_digit(client, png):
    """POST one PNG as a raw body; returns the response."""
    return client.post("/api/v1/predictions", data=png, content_type="image/png")


def test_predictions_are_rows_that_cqlsh_reads(cassandra_server, tmp_path, drawing):
    app, keyspace = make_app(cassandra_server, tmp_path)
    try:
        client = app.test_client()
        answers = {}
        for index in range(5):
            response = post_digit(client, drawing(index))
            assert response.status_code == 201, response.get_data(as_text=True)
            body = response.get_json()
            answers[body["id"]] = body["digit"]

        # The query the README shows.
        rows = cqlsh(cassandra_server, f"SELECT date, result FROM {keyspace}.record_data LIMIT 10;")
        assert sorted(int(result) for _, result in rows) == sorted(answers.values())
        assert all(date.startswith(time.strftime("%Y-", time.gmtime())) for date, _ in rows)

        rows = cqlsh(cassandra_server, f"SELECT id, result FROM {keyspace}.record_data;")
        assert {rid: int(result) for rid, result in rows} == answers
    finally:
        app.extensions["mnist_web.store"].close()


def test_outage_mid_burst_every_answered_prediction_is_stored_once(restartable_cassandra, tmp_path, drawing):
    server = restartable_cassandra
    app, keyspace = make_app(server, tmp_path)
    total, threads_n, before_stop = 60, 3, 20
    pngs = [drawing(i % 20, seed=i) for i in range(total)]
    lock = threading.Lock()
    issued = {"n": 0}
    responses = []
    stopped = threading.Event()
    errors = []

    def worker():
        client = app.test_client()
        try:
            while True:
                with lock:
                    n = issued["n"]
                    if n >= total:
                        return
                    issued["n"] += 1
                if n >= 40:  # the last third is sent while the database is certainly down
                    stopped.wait(120)
                response = post_digit(client, pngs[n])
                with lock:
                    responses.append((response.status_code, response.get_json()))
                time.sleep(0.05)
        except Exception as exc:  # reported below
            errors.append(exc)

    try:
        holder = app.extensions["mnist_web.store"]
        threads = [threading.Thread(target=worker) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(responses) < before_stop and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop()  # requests 20..39 race the shutdown
        stopped.set()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors
        assert len(responses) == total
        codes = Counter(code for code, _ in responses)
        assert codes == {201: total}, codes
        spooled = holder.store().depth
        assert spooled > 0  # at least the requests sent while it was down

        server.start()
        deadline = time.monotonic() + 180
        while holder.store().depth and time.monotonic() < deadline:
            time.sleep(0.5)
        assert holder.store().depth == 0, "the spool did not drain within 180 s"

        answered = {body["id"]: body["digit"] for code, body in responses if code == 201}
        check = CassandraStore.from_url(cassandra_url(server, keyspace), timeout=10)
        try:
            session, _ = check._statements()
            rows = list(session.execute(f"SELECT id, result FROM {keyspace}.record_data", timeout=60))
        finally:
            check.close()
        ids = Counter(str(row.id) for row in rows)
        assert all(count == 1 for count in ids.values())
        assert {str(row.id): row.result for row in rows} == answered
        assert len(rows) == len(answered) == total
    finally:
        app.extensions["mnist_web.store"].close()
        if not server.is_running():
            server.start()
