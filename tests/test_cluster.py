"""The real app (gunicorn, two workers, the spool) on a real 3-node Cassandra cluster, RF=3, LOCAL_QUORUM.

One scenario, in order, on one keyspace:
(1) a node is SIGKILLed in the middle of a burst of predictions: every request is answered 201 and
    nothing goes to the spool (two replicas of three still acknowledge every write);
(2) with that node down (seen DN by the others): history, get-by-id and labelling work;
(3) a second node is SIGKILLed in the middle of a burst (quorum lost): every prediction is still
    answered 201, and every one sent after the kill waits in the spool;
(4) both nodes back: the spool drains, and every answered prediction is exactly one row read at
    CONSISTENCY ALL, with its digit and (for the labelled one) its label.
The cluster is `make test`'s (MNIST_TEST_CLUSTER_URL) or the fixture's own (tests/support/servers.py).
"""

import collections
import concurrent.futures
import contextlib
import json
import sqlite3
import threading
import time

import pytest
from test_delivery import digit_pngs

from support.harness import GunicornServer, http, log_tail
from support.servers import drop_keyspace, fresh_keyspace

BURST_THREADS = 6
BURST_SIZE = 90  # predictions per burst; the kill comes a third of the way in
DRAIN_TIMEOUT = 180  # seconds for the spool to empty once the nodes are back


@pytest.fixture(scope="module")
def keyspace(cassandra_cluster):
    """A fresh keyspace for this module, dropped afterwards (the cluster may outlive the session)."""
    name = fresh_keyspace()
    yield name
    with contextlib.suppress(Exception):  # cleanup only; the cluster may be half down after a failure
        drop_keyspace(cassandra_cluster, name)


@pytest.fixture(scope="module")
def served(cassandra_cluster, keyspace, tmp_path_factory):
    """gunicorn (2 workers x 4 threads) with the cluster as its store; yields the GunicornServer."""
    cluster = cassandra_cluster
    url = (
        f"cassandra://{','.join(cluster.hosts)}:{cluster.port}/{keyspace}?replication_factor=3&consistency=LOCAL_QUORUM"
    )
    server = GunicornServer(tmp_path_factory.mktemp("cluster-app"), database_url=url, workers=2, threads=4).start()
    try:
        server.wait_ready(180)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pngs():
    return digit_pngs(10)


def spooled_ever(server):
    """How many records the app ever put in its spool (SQLite's AUTOINCREMENT high-water mark)."""
    if not server.spool_path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(server.spool_path, timeout=30)) as conn:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
    return row[0] if row else 0


def spooled_ids(server):
    """The ids waiting in the spool now."""
    with contextlib.closing(sqlite3.connect(server.spool_path, timeout=30)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM spool")}


def burst(server, pngs, count, during=None, late_min=20):
    """POST predictions from BURST_THREADS threads; call during() (once) when a third of `count` are answered.

    Sends `count` predictions, and more if needed until `late_min` were sent after during() returned
    (bounded: 4 x count at most). Returns [(status, answer JSON or body, sent after during())].
    """
    answers = []
    lock = threading.Lock()
    state = {"sent": 0, "late": 0, "fired": False}
    done_firing = threading.Event()

    def take():
        with lock:
            enough = state["sent"] >= count and (during is None or state["late"] >= late_min)
            if enough or state["sent"] >= 4 * count:
                return None
            late = done_firing.is_set()
            state["sent"] += 1
            state["late"] += late
            return state["sent"], late

    def worker():
        while (item := take()) is not None:
            i, late = item
            png, _ = pngs[i % len(pngs)]
            status, _, body = http(
                "POST", f"{server.base}/api/v1/predictions", body=png, headers={"Content-Type": "image/png"}, timeout=60
            )
            with contextlib.suppress(ValueError):
                body = json.loads(body)
            with lock:
                answers.append((status, body, late))
                trigger = during is not None and not state["fired"] and len(answers) >= count // 3
                state["fired"] |= trigger
            if trigger:
                try:
                    during()
                finally:
                    done_firing.set()

    with concurrent.futures.ThreadPoolExecutor(BURST_THREADS) as pool:
        for future in [pool.submit(worker) for _ in range(BURST_THREADS)]:
            future.result()
    if during is not None:
        assert done_firing.is_set() and state["late"] >= late_min, state
    return answers


def assert_all_created(answers, server):
    failed = [(status, body) for status, body, _ in answers if status != 201]
    assert not failed, f"{len(failed)} of {len(answers)} predictions failed: {failed[:3]}\n{log_tail(server.log_path)}"


def cql_session(cluster):
    """A driver session on the cluster that waits long enough for a CONSISTENCY ALL read."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

    profile = ExecutionProfile(request_timeout=60)
    driver = Cluster(
        cluster.hosts, port=cluster.port, protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    return driver, driver.connect()


def rows_at_all(cluster, keyspace):
    """{id: [(result, label), ...]} for every row of record_data, read at CONSISTENCY ALL."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    driver, session = cql_session(cluster)
    try:
        query = SimpleStatement(
            f"SELECT id, result, label FROM {keyspace}.record_data",
            consistency_level=ConsistencyLevel.ALL,
            fetch_size=500,
        )
        found = collections.defaultdict(list)
        for row in session.execute(query):
            found[str(row.id)].append((row.result, row.label))
        return found
    finally:
        driver.shutdown()


def check_reads_and_labels(server, answered):
    """History, get-by-id and labelling through the app; returns (labelled id, label)."""
    status, _, body = http("GET", f"{server.base}/api/v1/predictions?limit=20", timeout=30)
    assert status == 200, body[:500]
    page = json.loads(body)
    listed = [item["id"] for item in page["items"]]
    assert len(listed) == 20 and set(listed) <= set(answered), listed

    newest = listed[0]
    status, _, body = http("GET", f"{server.base}/api/v1/predictions/{newest}", timeout=30)
    assert status == 200 and json.loads(body)["id"] == newest, body[:500]

    label = (answered[newest]["digit"] + 1) % 10
    status, _, body = http(
        "PUT",
        f"{server.base}/api/v1/predictions/{newest}/label",
        body=json.dumps({"label": label}).encode(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert status == 200 and json.loads(body)["label"] == label, body[:500]
    status, _, body = http("GET", f"{server.base}/api/v1/predictions/{newest}", timeout=30)
    assert status == 200 and json.loads(body)["label"] == label, body[:500]
    return newest, label


def test_node_loss_quorum_loss_and_recovery(cassandra_cluster, served, keyspace, pngs):
    cluster, server = cassandra_cluster, served
    answered = {}

    def keep(answers):
        for status, body, _ in answers:
            if status == 201:
                answered[body["id"]] = body

    # Warm up: the schema exists, each worker has its session and prepared statements.
    warm = burst(server, pngs, 12)
    assert_all_created(warm, server)
    keep(warm)
    assert spooled_ever(server) == 0, "spooled with all three nodes up"

    # (1) node 2 crashes mid-burst: two replicas of three still make LOCAL_QUORUM.
    started = time.monotonic()
    first = burst(server, pngs, BURST_SIZE, during=lambda: cluster.kill_node(2))
    burst_s = time.monotonic() - started
    assert_all_created(first, server)
    keep(first)
    assert spooled_ever(server) == 0, f"a record was spooled with one node of three down\n{log_tail(server.log_path)}"
    assert not cluster.node(2).is_running()

    seen_down = time.monotonic()
    # (2) once the others see node 2 down: reads at LOCAL_QUORUM and labelling work.
    cluster.wait_seen(2, "DN", timeout=90)
    seen_down = time.monotonic() - seen_down
    labelled_id, label = check_reads_and_labels(server, answered)
    assert spooled_ever(server) == 0

    # (3) node 3 crashes mid-burst: quorum is lost, yet every prediction is answered (from the spool).
    # Every write sent once node 3 is gone has one live replica of three: none can make LOCAL_QUORUM.
    second = burst(server, pngs, BURST_SIZE, during=lambda: cluster.kill_node(3))
    assert_all_created(second, server)
    keep(second)
    late = {body["id"] for status, body, sent_late in second if sent_late}
    assert late, "no prediction was sent after quorum was lost"
    waiting = spooled_ids(server)
    assert late <= waiting, f"{len(late - waiting)} predictions sent without quorum are not in the spool"
    assert spooled_ever(server) >= len(late)

    # (4) both nodes back: the spool drains; every answered prediction is exactly one row at ALL.
    restart_s = [cluster.start_node(2), cluster.start_node(3)]
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while spooled_ids(server) and time.monotonic() < deadline:
        time.sleep(1.0)
    assert not spooled_ids(server), f"spool not drained within {DRAIN_TIMEOUT} s\n{log_tail(server.log_path)}"

    rows = rows_at_all(cluster, keyspace)
    assert len(answered) == len(warm) + len(first) + len(second)
    missing = set(answered) - set(rows)
    assert not missing, f"{len(missing)} answered predictions have no row"
    repeated = {record_id: found for record_id, found in rows.items() if len(found) != 1}
    assert not repeated, f"ids stored more than once: {list(repeated)[:3]}"
    assert set(rows) == set(answered), f"rows nobody was answered for: {set(rows) - set(answered)}"
    for record_id, answer in answered.items():
        digit, stored_label = rows[record_id][0]
        assert digit == answer["digit"], record_id
        assert stored_label == (label if record_id == labelled_id else None), record_id
    print(
        f"\ncluster: burst of {BURST_SIZE} with a node killed took {burst_s:.1f} s, seen DN after {seen_down:.0f} s; "
        f"{len(late)} sent without quorum, all spooled; nodes back in {restart_s[0]:.0f} s and {restart_s[1]:.0f} s"
    )
