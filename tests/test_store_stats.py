"""Stats stay exact in every backend (real servers): replays, retries, relabels, several processes, old hours."""

import datetime
import multiprocessing
import random

import pytest
from test_spool import wait_for
from test_store_contract import BACKENDS, make_answer, make_record, open_test_store

from mnist_web.store import cassandra_stats
from mnist_web.store.base import timeuuid_at
from mnist_web.store.spool import SpooledStore

UTC = datetime.UTC


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A fresh, empty store of each backend."""
    yield from open_test_store(request, tmp_path)


def single_backend(name):
    """A fixture: a fresh store of one backend."""

    @pytest.fixture
    def fixture(request, tmp_path):
        request.param = name
        yield from open_test_store(request, tmp_path)

    return fixture


def counts(store):
    """(total, per-digit counts that are not zero, labelled, correct)."""
    stats = store.stats()
    assert stats.total == sum(stats.per_digit.values())
    return stats.total, {d: n for d, n in stats.per_digit.items() if n}, stats.labelled, stats.correct


def test_the_same_record_twice_counts_once(store):
    record = make_record(digit=4)
    store.add(record)
    assert counts(store) == (1, {4: 1}, 0, 0)
    store.add(record)  # a retried write
    store.add(make_record(record.id, digit=4))  # the same id, rebuilt
    assert counts(store) == (1, {4: 1}, 0, 0)


def test_a_spool_replay_of_a_stored_record_counts_once(store, tmp_path):
    stored, waiting = make_record(digit=1), make_record(digit=2)
    store.add(stored)
    spooled = SpooledStore(store, tmp_path / "spool.sqlite3", retry_min=0.05)
    try:
        # A write that timed out although the database took it: the record is stored *and* spooled.
        spooled._spool(stored, "timed out")
        spooled._spool(waiting, "timed out")
        wait_for(lambda: spooled.depth == 0, 30, "the spool to drain")
        assert counts(store) == (2, {1: 1, 2: 1}, 0, 0)
    finally:
        spooled.close()


def test_labels_changed_twice_and_set_twice_stay_exact(store):
    a, b, c = make_record(digit=3), make_record(digit=3), make_record(digit=7)
    for record in (a, b, c):
        store.add(record)
    for label in (0, 3, 5):  # wrong, right, wrong again
        store.set_label(a.id, label)
    store.set_label(b.id, 3)
    store.set_label(b.id, 3)  # the same value twice
    store.set_label(c.id, 1)
    store.set_label(c.id, 7)  # wrong, then right
    assert counts(store) == (3, {3: 2, 7: 1}, 3, 2)
    store.add(a)  # a replay after the labels: the label set meanwhile stays, counted once
    assert store.get(a.id).label == 5
    assert counts(store) == (3, {3: 2, 7: 1}, 3, 2)


def test_old_hours_replayed_and_relabelled_stay_exact(store):
    # Records of past hours and days: Cassandra seals their rollups, then replays and labels reopen them.
    now = datetime.datetime.now(UTC)
    rng = random.Random(11)
    old = [make_record(timeuuid_at(now - datetime.timedelta(hours=h), rng=rng), digit=h % 10) for h in (2, 3, 30, 75)]
    for record in old:
        store.add(record)
    expected = (4, {2: 1, 3: 1, 0: 1, 5: 1}, 0, 0)
    assert counts(store) == expected
    assert counts(store) == expected  # the second read comes from the sealed rollups
    for record in old:
        store.add(record)  # replays into sealed hours
    assert counts(store) == expected
    store.set_label(old[2].id, 0)
    store.set_label(old[3].id, 9)
    assert counts(store) == (4, {2: 1, 3: 1, 0: 1, 5: 1}, 2, 1)
    store.set_label(old[3].id, 5)
    assert counts(store) == (4, {2: 1, 3: 1, 0: 1, 5: 1}, 2, 2)
    assert counts(store) == (4, {2: 1, 3: 1, 0: 1, 5: 1}, 2, 2)


def _writer(store, shared, own, labels):
    """One worker process: its own records, the shared ones (replays of each other's), and labels."""
    for record in own + shared:
        store.add(record)
    for record_id, label in labels:
        store.set_label(record_id, label)


def test_several_processes_adding_the_same_records_count_each_once(store):
    store.stats()  # connected (and its writer thread started) before the fork: children must not share it
    rng = random.Random(5)
    shared = [make_record(digit=i % 10, rng=rng) for i in range(20)]
    own = [[make_record(digit=(i + p) % 10, rng=rng) for i in range(15)] for p in range(4)]
    for record in shared[:5]:
        store.add(record)
    labels = [(shared[i].id, i % 10) for i in range(10)]  # right labels, written by every process
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(store, shared, own[p], labels)) for p in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    every = shared + [r for chunk in own for r in chunk]
    per_digit = {}
    for record in every:
        per_digit[record.digit] = per_digit.get(record.digit, 0) + 1
    assert counts(store) == (len(every), per_digit, 10, 10)


cassandra_store = single_backend("cassandra")


def test_cassandra_seals_closed_hours_and_keeps_only_recent_marks(cassandra_store):
    store = cassandra_store
    now = datetime.datetime.now(UTC)
    rng = random.Random(3)
    old = [make_record(timeuuid_at(now - datetime.timedelta(days=d, hours=1), rng=rng), digit=d) for d in (1, 2, 3)]
    new = make_record(digit=9)
    for record in [*old, new]:
        store.add(record)
    assert counts(store) == (4, {1: 1, 2: 1, 3: 1, 9: 1}, 0, 0)
    marks = {(row.day, row.hour) for row in store._run("marks", (0,))}
    assert marks == {(new.created_at.date().isoformat(), new.created_at.hour)}  # only the open hour is left
    days = {row.day: row.counts for row in store._run("days_counts", (0,))}
    assert sorted(days) == sorted(r.created_at.date().isoformat() for r in old)
    store.set_label(old[0].id, 1)
    assert counts(store) == (4, {1: 1, 2: 1, 3: 1, 9: 1}, 1, 1)
    assert len(store._run("marks", (0,))) == 1


def test_cassandra_keyspace_made_before_the_rollups_is_counted_once(cassandra_store):
    store = cassandra_store
    now = datetime.datetime.now(UTC)
    rng = random.Random(4)
    records = [make_record(timeuuid_at(now - datetime.timedelta(days=d), rng=rng), digit=d, label=d) for d in range(4)]
    for record in records:
        store.add(record)
    session = store._get_session()
    for table in ("stat_marks", "stat_hours", "stat_days"):  # as the previous version left it
        session.execute(f"DROP TABLE {store.keyspace}.{table}", timeout=60)
    store.close()
    store.init_schema()
    assert counts(store) == (4, {0: 1, 1: 1, 2: 1, 3: 1}, 4, 4)


sqlite_store = single_backend("sqlite")


redis_store = single_backend("redis")


def test_sqlite_file_made_before_the_counts_is_counted_once(sqlite_store):
    store = sqlite_store
    records = [make_record(digit=d % 10, label=d % 10 if d % 2 else None) for d in range(12)]
    for record in records:
        store.add(record)
    conn = store._db()
    for name in ("record_counts_insert", "record_counts_update", "record_counts_delete"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE record_counts")  # as the previous version left the file
    store.init_schema()
    store.init_schema()  # idempotent: counted once
    assert counts(store)[0] == 12 and counts(store)[2:] == (6, 6)


def test_redis_store_with_the_old_global_counters_is_recounted_by_day(redis_store):
    store = redis_store
    records = [make_record(digit=d % 10, label=d % 10 if d % 2 else None) for d in range(12)]
    for record in records:
        store.add(record)
    client = store._conn.get()[0]
    for key in client.scan_iter(match=f"{store.prefix}stat*"):
        client.delete(key)
    client.hset(store._key("digits"), "3", 99)  # the previous version's global counters
    client.hset(store._key("stats"), "labelled", 99)
    store.init_schema()
    store.init_schema()
    assert counts(store)[0] == 12 and counts(store)[2:] == (6, 6)
    assert not client.exists(store._key("digits"), store._key("stats"))


def test_numbers_in_old_hours_replayed_and_relabelled_stay_exact(store):
    # Number-mode records of past hours: Cassandra seals their rollups with the numbers' counts.
    now = datetime.datetime.now(UTC)
    rng = random.Random(13)
    made = [make_record(timeuuid_at(now - datetime.timedelta(hours=h), rng=rng), digit=1) for h in (2, 30, 75)]
    old = [make_answer(made[0], "number", "number", "12"), make_answer(made[1], "number", "number", "7")]
    old.append(make_answer(made[2], "digit", "several_digits", "55"))
    for record in old:
        store.add(record)

    def numbers():
        stats = store.stats()
        return stats.total, stats.numbers, stats.several_digits, stats.numbers_labelled, stats.numbers_correct

    assert numbers() == (3, 2, 1, 0, 0)
    assert numbers() == (3, 2, 1, 0, 0)  # the second read comes from the sealed rollups
    for record in old:
        store.add(record)  # replays into sealed hours
    store.set_label(old[0].id, "12")
    store.set_label(old[1].id, "1")
    assert numbers() == (3, 2, 1, 2, 1)
    store.set_label(old[1].id, "7")
    assert numbers() == (3, 2, 1, 2, 2)
    assert numbers() == (3, 2, 1, 2, 2)


def test_cassandra_rollups_written_before_number_mode_still_read():
    old = cassandra_stats.OLD_PACKED.pack(*range(1, 11), 7, 5)  # ten digits, labelled, correct
    stats = cassandra_stats.as_stats(cassandra_stats.unpack(old))
    assert stats.per_digit == dict(zip(range(10), range(1, 11), strict=True)) and stats.total == 55
    assert (stats.labelled, stats.correct, stats.numbers, stats.several_digits) == (7, 5, 0, 0)


def test_a_number_replayed_through_the_spool_counts_once_and_reads_back_whole(store, tmp_path):
    number = make_answer(make_record(), "number", "number", "907")
    store.add(number)
    spooled = SpooledStore(store, tmp_path / "spool.sqlite3", retry_min=0.05)
    try:
        waiting = make_answer(make_record(), "digit", "several_digits", "31")
        spooled._spool(number, "timed out")
        spooled._spool(waiting, "timed out")
        wait_for(lambda: spooled.depth == 0, 30, "the spool to drain")
        assert store.get(waiting.id) == waiting
        stats = store.stats()
        assert (stats.total, stats.numbers, stats.several_digits) == (2, 1, 1)
    finally:
        spooled.close()
