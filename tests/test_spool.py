"""The spool keeps every record while the database is down and replays each exactly once."""

import threading
import time

import pytest
from test_store_contract import make_record

from mnist_web.errors import StoreUnavailable
from mnist_web.store.cassandra import CassandraStore
from mnist_web.store.spool import SpooledStore
from mnist_web.store.sqlite import SqliteStore
from support.ports import free_port
from support.servers import cassandra_url, fresh_keyspace


class SwitchableStore(SqliteStore):
    """A real SQLite store that answers StoreUnavailable while `down` is set, and logs what it stored."""

    def __init__(self, path):
        super().__init__(path)
        self.down = threading.Event()
        self.added = []
        self.refused = 0

    def add(self, record):
        if self.down.is_set():
            self.refused += 1
            raise StoreUnavailable("switched off")
        super().add(record)
        self.added.append(record.id)

    def get(self, record_id):
        if self.down.is_set():
            raise StoreUnavailable("switched off")
        return super().get(record_id)


def wait_for(condition, timeout, what):
    """Poll condition() until true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def switchable(tmp_path):
    inner = SwitchableStore(tmp_path / "inner.sqlite3")
    inner.init_schema()
    return inner


def test_records_wait_in_the_spool_and_replay_in_order(switchable, tmp_path):
    spooled = SpooledStore(switchable, tmp_path / "spool.sqlite3", retry_min=0.05, retry_max=0.2)
    try:
        first = make_record()
        spooled.add(first)
        switchable.down.set()
        waiting = [make_record() for _ in range(30)]
        for record in waiting:
            spooled.add(record)  # must not raise
        assert spooled.depth == 30
        assert spooled.get(waiting[3].id) == waiting[3]  # found while it waits
        with pytest.raises(StoreUnavailable):
            spooled.set_label(waiting[3].id, 1)  # not stored yet: try again later
        switchable.down.clear()
        wait_for(lambda: spooled.depth == 0, 30, "the spool to drain")
        assert switchable.added == [first.id] + [r.id for r in waiting]  # in order, each once
        assert spooled.stats().total == 31
    finally:
        spooled.close()


def test_while_records_wait_new_ones_queue_behind_them(switchable, tmp_path):
    spooled = SpooledStore(switchable, tmp_path / "spool.sqlite3", retry_min=1.5, retry_max=1.5)
    try:
        switchable.down.set()
        early = make_record()
        spooled.add(early)
        wait_for(lambda: switchable.refused >= 2, 10, "a failed replay")  # now the replayer backs off
        switchable.down.clear()
        late = make_record()
        spooled.add(late)  # the store is back, but `early` has not been replayed yet
        assert switchable.added == [] and spooled.depth == 2
        wait_for(lambda: spooled.depth == 0, 30, "the spool to drain")
        assert switchable.added == [early.id, late.id]
    finally:
        spooled.close()


def test_a_new_process_replays_what_an_old_one_left(switchable, tmp_path):
    path = tmp_path / "spool.sqlite3"
    switchable.down.set()
    old = SpooledStore(switchable, path)
    left = [make_record() for _ in range(5)]
    for record in left:
        old.add(record)
    old.close()
    switchable.down.clear()
    fresh_inner = SwitchableStore(switchable.path)
    new = SpooledStore(fresh_inner, path, retry_min=0.05)
    try:
        wait_for(lambda: new.depth == 0, 30, "the leftover spool to drain")
        assert fresh_inner.added == [r.id for r in left]
    finally:
        new.close()


def test_spool_bound_refuses_rather_than_drops(tmp_path):
    # A real Cassandra URL where nothing listens: every call fails at once with connection refused.
    inner = CassandraStore.from_url(f"cassandra://127.0.0.1:{free_port()}/nowhere", timeout=1.0)
    spooled = SpooledStore(inner, tmp_path / "spool.sqlite3", max_records=5, retry_min=5, retry_max=5)
    try:
        records = [make_record() for _ in range(5)]
        for record in records:
            spooled.add(record)
        assert spooled.depth == 5
        with pytest.raises(StoreUnavailable):
            spooled.add(make_record())
        assert spooled.depth == 5
        spooled.add(records[0])  # the same id again is not a new record
        assert spooled.depth == 5
        assert spooled.get(records[1].id) == records[1]
        with pytest.raises(StoreUnavailable):  # not spooled, and the database cannot say: no false 404
            spooled.get(make_record().id)
    finally:
        spooled.close()


def test_cassandra_outage_loses_nothing_and_duplicates_nothing(restartable_cassandra, tmp_path):
    server = restartable_cassandra
    inner = CassandraStore.from_url(cassandra_url(server, fresh_keyspace(), reconnect_max_delay=2), timeout=2.0)
    spooled = SpooledStore(inner, tmp_path / "spool.sqlite3", retry_min=0.5, retry_max=2.0)
    spooled.init_schema()
    try:
        before = [make_record() for _ in range(5)]
        for record in before:
            spooled.add(record)
        assert spooled.depth == 0

        server.stop()
        during = [make_record() for _ in range(40)]
        for record in during:
            spooled.add(record)  # answered although the database is gone
        assert spooled.depth == 40
        assert spooled.get(during[0].id) == during[0]

        server.start()
        wait_for(lambda: spooled.depth == 0, 120, "the spool to drain after the restart")

        every = before + during
        for record in every:
            assert inner.get(record.id) == record
        seen, cursor = [], None
        for _ in range(20):
            page, cursor = inner.recent(10, cursor)
            seen += [r.id for r in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(r.id for r in every)  # each exactly once
        assert inner.stats().total == 45
    finally:
        spooled.close()
        if not server.is_running():
            server.start()
