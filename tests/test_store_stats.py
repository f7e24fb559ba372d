"""Stats stay exact in every backend (real servers): replays, retries, relabels, several processes, old hours."""

import dataclasses
import datetime
import multiprocessing
import random

import pytest
from test_spool import wait_for
from test_store_contract import BACKENDS, make_answer, make_record, make_refusal, open_test_store

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
    """(total, per-digit counts that are not zero (and "not_a_digit": refusals, if any), labelled, correct)."""
    stats = store.stats()
    assert stats.total == sum(stats.per_digit.values()) + stats.not_a_digit
    found = {d: n for d, n in stats.per_digit.items() if n}
    if stats.not_a_digit:
        found["not_a_digit"] = stats.not_a_digit
    return stats.total, found, stats.labelled, stats.correct


def test_the_same_record_twice_counts_once(store):
    record = make_record(digit=4)
    store.add(record)
    assert counts(store) == (1, {4: 1}, 0, 0)
    store.add(record)  # a retried write
    store.add(make_record(record.id, digit=4))  # the same id, rebuilt
    assert counts(store) == (1, {4: 1}, 0, 0)


def test_a_spool_replay_of_a_stored_record_counts_once(store, tmp_path):
    stored, waiting, refused = make_record(digit=1), make_record(digit=2), make_refusal()
    store.add(stored)
    spooled = SpooledStore(store, tmp_path / "spool.sqlite3", retry_min=0.05)
    try:
        # A write that timed out although the database took it: the record is stored *and* spooled.
        spooled._spool(stored, "timed out")
        spooled._spool(waiting, "timed out")
        spooled._spool(refused, "timed out")  # a refusal goes through the spool's JSON unchanged
        wait_for(lambda: spooled.depth == 0, 30, "the spool to drain")
        assert counts(store) == (3, {1: 1, 2: 1, "not_a_digit": 1}, 0, 0)
        assert store.get(refused.id) == refused
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


def test_refusals_in_old_hours_replayed_and_labelled_stay_exact(store):
    now = datetime.datetime.now(UTC)
    rng = random.Random(12)
    hours = (0, 2, 30, 75)
    refused = [make_refusal(timeuuid_at(now - datetime.timedelta(hours=h), rng=rng), rng=rng) for h in hours]
    digits = [make_record(timeuuid_at(now - datetime.timedelta(hours=h), rng=rng), digit=1, rng=rng) for h in hours]
    for record in refused + digits:
        store.add(record)
    expected = (8, {1: 4, "not_a_digit": 4}, 0, 0)
    assert counts(store) == expected
    assert counts(store) == expected  # the second read comes from the sealed rollups
    for record in refused:
        store.add(record)  # replays into sealed hours
    assert counts(store) == expected
    store.set_label(refused[2].id, 3)  # a refusal of a sealed day labelled with a digit: wrong
    store.set_label(digits[2].id, 1)
    store.set_label(refused[0].id, 5)
    store.set_label(refused[0].id, 6)
    assert counts(store) == (8, {1: 4, "not_a_digit": 4}, 3, 1)
    assert counts(store) == (8, {1: 4, "not_a_digit": 4}, 3, 1)


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


def test_cassandra_rollups_sealed_before_refusals_still_read(cassandra_store):
    from mnist_web.store.cassandra_stats import BUCKET, CORRECT, LABELLED, OLD_PACKED, unpack

    store = cassandra_store
    rng = random.Random(6)
    day = datetime.datetime.now(UTC) - datetime.timedelta(days=2)
    records = [make_record(timeuuid_at(day, tick=i, rng=rng), digit=i, label=i) for i in range(3)]
    for record in records:
        store.add(record)
    assert counts(store) == (3, {0: 1, 1: 1, 2: 1}, 3, 3)  # sealed: a stat_days row of the current width
    (row,) = store._run("days_counts", (BUCKET,))
    old = unpack(row.counts)
    old_blob = OLD_PACKED.pack(*old[:10], old[LABELLED], old[CORRECT])  # as the previous version sealed it
    session = store._get_session()
    session.execute(
        f"UPDATE {store.keyspace}.stat_days SET counts = %s WHERE bucket = %s AND day = %s", (old_blob, BUCKET, row.day)
    )
    store.add(make_refusal())
    assert counts(store) == (4, {0: 1, 1: 1, 2: 1, "not_a_digit": 1}, 3, 3)


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


# The file the version before refusals made: `result` NOT NULL, no verdict or not_a_digit, and its triggers.
OLD_SQLITE_SCHEMA = """
CREATE TABLE record_data (
    sort_token TEXT NOT NULL, id TEXT NOT NULL PRIMARY KEY, date TEXT NOT NULL, result INTEGER NOT NULL,
    confidence REAL NOT NULL, probabilities TEXT NOT NULL, source TEXT NOT NULL, client_ip TEXT NOT NULL,
    image BLOB NOT NULL, image_type TEXT NOT NULL, model_input BLOB NOT NULL, model_version TEXT NOT NULL,
    latency_ms REAL NOT NULL, label INTEGER);
CREATE INDEX record_data_newest ON record_data (sort_token DESC);
CREATE TABLE record_counts (
    digit INTEGER PRIMARY KEY, total INTEGER NOT NULL, labelled INTEGER NOT NULL, correct INTEGER NOT NULL);
CREATE TRIGGER record_counts_insert AFTER INSERT ON record_data BEGIN
    INSERT INTO record_counts (digit, total, labelled, correct)
    VALUES (NEW.result, 1, NEW.label IS NOT NULL, COALESCE(NEW.label = NEW.result, 0))
    ON CONFLICT (digit) DO UPDATE SET total = total + excluded.total, labelled = labelled + excluded.labelled,
    correct = correct + excluded.correct;
END;
CREATE TRIGGER record_counts_update AFTER UPDATE OF label, result ON record_data BEGIN
    UPDATE record_counts SET total = total - 1, labelled = labelled - (OLD.label IS NOT NULL),
    correct = correct - COALESCE(OLD.label = OLD.result, 0) WHERE digit = OLD.result;
    INSERT INTO record_counts (digit, total, labelled, correct)
    VALUES (NEW.result, 1, NEW.label IS NOT NULL, COALESCE(NEW.label = NEW.result, 0))
    ON CONFLICT (digit) DO UPDATE SET total = total + excluded.total, labelled = labelled + excluded.labelled,
    correct = correct + excluded.correct;
END;
CREATE TRIGGER record_counts_delete AFTER DELETE ON record_data BEGIN
    UPDATE record_counts SET total = total - 1, labelled = labelled - (OLD.label IS NOT NULL),
    correct = correct - COALESCE(OLD.label = OLD.result, 0) WHERE digit = OLD.result;
END;
"""


def test_sqlite_file_made_before_refusals_is_rebuilt_once_and_takes_them(tmp_path):
    import sqlite3

    from mnist_web.store.base import sort_token
    from mnist_web.store.fields import FIELDS, encode
    from mnist_web.store.sqlite import SqliteStore

    path = tmp_path / "old.sqlite3"
    old_fields = FIELDS[: [f.attr for f in FIELDS].index("label") + 1]
    old = [make_record(digit=d % 3, label=d % 3 if d % 2 else None) for d in range(6)]
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SQLITE_SCHEMA)
    marks = ",".join("?" * (len(old_fields) + 1))
    columns = ", ".join(f.name for f in old_fields)
    for record in old:
        values = (sort_token(record.id), *encode(record, "to_sql", old_fields))
        conn.execute(f"INSERT INTO record_data (sort_token, {columns}) VALUES ({marks})", values)
    conn.commit()
    conn.close()

    store = SqliteStore(path)
    try:
        store.init_schema()
        store.init_schema()  # idempotent: rebuilt once, counted once
        assert counts(store) == (6, {0: 2, 1: 2, 2: 2}, 3, 3)
        read = store.get(old[0].id)
        assert (read.verdict, read.not_a_digit, read.digit) == ("digit", None, old[0].digit)
        refused = make_refusal()
        store.add(refused)
        store.set_label(refused.id, 1)
        store.set_label(old[0].id, 9)
        assert store.get(refused.id) == dataclasses.replace(refused, label=1)
        assert counts(store) == (7, {0: 2, 1: 2, 2: 2, "not_a_digit": 1}, 5, 3)
        db = store._db()
        assert [row[3] for row in db.execute("PRAGMA table_info(record_data)") if row[1] == "result"] == [0]
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'record_data_newest'").fetchone()
        assert [r.id for r in store.recent(10)[0]] == [refused.id, *(r.id for r in reversed(old))]
    finally:
        store.close()


def test_redis_record_stored_before_verdicts_reads_as_a_digit(redis_store):
    store = redis_store
    record = make_record(digit=5)
    store.add(record)
    client = store._conn.get()[0]
    client.hdel(store._record_key(record.id), "verdict", "not_a_digit")  # as the previous version wrote it
    read = store.get(record.id)
    assert (read.digit, read.verdict, read.not_a_digit) == (5, "digit", None)
    assert store.set_label(record.id, 5).label == 5
    assert counts(store) == (1, {5: 1}, 1, 1)
