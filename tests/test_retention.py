"""Retention (MNIST_RETENTION_DAYS) on real servers: expired records go, kept ones stay, stats count the kept."""

import datetime
import random

import pytest
from test_spool import wait_for
from test_store_contract import BACKENDS, make_record, open_test_store

from mnist_web.errors import RecordNotFound
from mnist_web.store import retention, sqlite
from mnist_web.store.base import timeuuid_at
from mnist_web.store.sqlite import SqliteStore

UTC = datetime.UTC
DAYS = 2


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A fresh store of each backend keeping records DAYS days."""
    yield from open_test_store(request, tmp_path, retention_days=DAYS)


def aged(days_ago, digit, rng):
    """A record made `days_ago` days before now."""
    moment = datetime.datetime.now(UTC) - datetime.timedelta(days=days_ago)
    return make_record(timeuuid_at(moment, rng=rng), digit=digit, rng=rng)


def test_expired_records_go_and_stats_count_the_kept(store):
    rng = random.Random(2)
    expired, edge, fresh = aged(DAYS + 1, 1, rng), aged(DAYS, 2, rng), aged(0, 3, rng)
    for record in (expired, edge, fresh):
        store.add(record)  # the expired one: a late replay; Cassandra and Redis do not write it
    if isinstance(store, SqliteStore):
        assert store.purge() == 1
    with pytest.raises(RecordNotFound):
        store.get(expired.id)
    assert store.get(edge.id) == edge
    records, _ = store.recent(10)
    assert [r.id for r in records] == [fresh.id, edge.id]
    stats = store.stats()
    assert (stats.total, stats.per_digit[1], stats.per_digit[2], stats.per_digit[3]) == (2, 0, 1, 1)


def test_records_and_their_counts_expire_at_the_same_instant(store):
    rng = random.Random(3)
    record = aged(1, 4, rng)
    store.add(record)
    store.set_label(record.id, 4)
    left = retention.ttl_seconds(record.id, DAYS)
    day = record.created_at.date().isoformat()
    backend = type(store).__name__
    if backend == "CassandraStore":
        key = (day, store._shard(record.id), record.id)
        session = store._get_session()
        row = session.execute(
            f"SELECT TTL(image), TTL(label) FROM {store.keyspace}.record_data WHERE day=%s AND shard=%s AND id=%s", key
        ).one()
        assert abs(row[0] - left) <= 5 and abs(row[1] - left) <= 5
        store.stats()  # seals the record's (closed) hour and day
        rollup = session.execute(
            f"SELECT TTL(counts) FROM {store.keyspace}.stat_days WHERE bucket = 0 AND day = %s", (day,)
        ).one()
        assert abs(rollup[0] - left) <= 5
    elif backend == "RedisStore":
        client = store._conn.get()[0]
        assert abs(client.ttl(store._record_key(record.id)) - left) <= 5
        assert abs(client.ttl(store._key(f"stats:{day}")) - left) <= 5
    else:
        later = datetime.datetime.now(UTC) + datetime.timedelta(seconds=left + 1)
        assert store.purge(now=later - datetime.timedelta(seconds=10)) == 0  # not yet
        assert store.purge(now=later) == 1
        stats = store.stats()
        assert (stats.total, stats.labelled, stats.correct, stats.per_digit[4]) == (0, 0, 0, 0)


def test_sqlite_writer_thread_purges_by_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "PURGE_INTERVAL", 0.2)  # not ten minutes
    store = SqliteStore(tmp_path / "records.sqlite3", retention_days=DAYS)
    store.init_schema()
    try:
        rng = random.Random(4)
        expired, kept = aged(DAYS + 3, 5, rng), aged(0, 6, rng)
        store.add(expired)  # the writer thread's next purge takes it
        store.add(kept)

        def gone():
            try:
                store.get(expired.id)
            except RecordNotFound:
                return True
            return False

        wait_for(gone, 10, "the writer thread's purge")
        assert store.stats().total == 1
    finally:
        store.close()


def test_retention_days_from_the_environment(monkeypatch):
    import importlib

    from mnist_web import config

    monkeypatch.setenv("MNIST_RETENTION_DAYS", "30")
    assert importlib.reload(config).Config.MNIST_RETENTION_DAYS == 30
    monkeypatch.setenv("MNIST_RETENTION_DAYS", "")
    assert importlib.reload(config).Config.MNIST_RETENTION_DAYS is None
    monkeypatch.setenv("MNIST_RETENTION_DAYS", "0")
    with pytest.raises(ValueError):
        importlib.reload(config)
    monkeypatch.delenv("MNIST_RETENTION_DAYS")
    importlib.reload(config)
