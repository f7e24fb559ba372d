"""One contract every record store backend must keep: SQLite, Cassandra and Redis, on real servers."""

import dataclasses
import datetime
import random
import threading
import uuid

import pytest

from mnist_web.errors import InvalidLabel, RecordNotFound
from mnist_web.store import open_store
from mnist_web.store.base import Record, record_time, timeuuid_at
from mnist_web.store.cassandra import CassandraStore
from mnist_web.store.redis import RedisStore
from support.servers import cassandra_url, drop_keyspace, drop_redis_prefix, fresh_keyspace, redis_url

BACKENDS = ["sqlite", "cassandra", "redis"]
UTC = datetime.UTC


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A fresh, empty store of each backend (its own file, keyspace or key prefix)."""
    yield from open_test_store(request, tmp_path)


def open_test_store(request, tmp_path, retention_days=None):
    """Yield a fresh store of the backend request.param names, then close it (and clean an external server)."""
    backend = request.param
    server = keyspace = prefix = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/records.sqlite3"
    elif backend == "cassandra":
        server = request.getfixturevalue("cassandra_server")
        keyspace = fresh_keyspace()
        url = cassandra_url(server, keyspace)
    else:
        server = request.getfixturevalue("redis_server")
        prefix = f"t{uuid.uuid4().hex[:12]}:"
        url = redis_url(server, prefix)
    store = open_store(url, str(tmp_path), timeout=10.0, retention_days=retention_days)
    store.init_schema()
    yield store
    store.close()
    if server is not None and not getattr(server, "restartable", False):
        # An external server outlives the session: leave it clean.
        if keyspace:
            drop_keyspace(server, keyspace)
        if prefix:
            drop_redis_prefix(server, prefix)


def make_refusal(record_id=None, created_at=None, label=None, rng=random):
    """A record the model answered "not a digit" for: no digit, confidence = P(not a digit)."""
    record = make_record(record_id, created_at, label=label, rng=rng)
    return dataclasses.replace(record, digit=None, verdict="not_a_digit", confidence=record.not_a_digit)


def make_record(record_id=None, created_at=None, digit=None, label=None, rng=random):
    """A record with awkward values: every byte value in the blobs, floats that need all 17 digits."""
    record_id = record_id or uuid.uuid1()
    digit = rng.randrange(10) if digit is None else digit
    probabilities = [rng.random() / 3 for _ in range(10)]
    return Record(
        id=record_id,
        created_at=created_at or record_time(record_id),
        digit=digit,
        confidence=probabilities[digit],
        probabilities=probabilities,
        source=rng.choice(["canvas", "upload", "api"]),
        client_ip=rng.choice(["127.0.0.1", "::1", "2001:db8::7"]),
        image=bytes(range(256)) + rng.randbytes(64) + b"\x00",
        image_type="image/png",
        model_input=rng.randbytes(784),
        model_version="2026-11-21T06:00:00Z-abc123",
        latency_ms=rng.random() * 100,
        label=label,
        verdict="digit",
        not_a_digit=rng.random() / 3,
    )


def test_round_trip_keeps_every_field(store):
    plain, labelled = make_record(), make_record(digit=4, label=9)
    store.add(plain)
    store.add(labelled)
    assert store.get(plain.id) == plain
    assert store.get(labelled.id) == labelled
    got = store.get(plain.id)
    assert got.image == plain.image and got.model_input == plain.model_input
    assert got.created_at.tzinfo is not None and got.created_at == plain.created_at


def test_a_refusal_is_stored_listed_and_counted(store):
    digit, refused = make_record(digit=6), make_refusal()
    store.add(digit)
    store.add(refused)
    store.add(refused)  # a replay counts once
    got = store.get(refused.id)
    assert got == refused and got.digit is None and got.verdict == "not_a_digit"
    assert store.get(digit.id).verdict == "digit"
    records, _ = store.recent(10)
    assert [(r.id, r.verdict) for r in records] == [(refused.id, "not_a_digit"), (digit.id, "digit")]
    assert records[0].summary()["digit"] is None and records[0].summary()["verdict"] == "not_a_digit"
    stats = store.stats()
    assert (stats.total, stats.not_a_digit, stats.per_digit[6], sum(stats.per_digit.values())) == (2, 1, 1, 1)


def test_a_refusal_labelled_with_a_digit_counts_as_wrong(store):
    refused, right = make_refusal(), make_record(digit=2)
    store.add(refused)
    store.add(right)
    labelled = store.set_label(refused.id, 4)
    assert (labelled.label, labelled.digit, labelled.verdict) == (4, None, "not_a_digit")
    store.set_label(right.id, 2)
    assert store.get(refused.id).label == 4
    stats = store.stats()
    assert (stats.total, stats.not_a_digit, stats.labelled, stats.correct) == (2, 1, 2, 1)
    store.set_label(refused.id, 7)  # relabelled: still one labelled, still wrong
    stats = store.stats()
    assert (stats.labelled, stats.correct, stats.accuracy) == (2, 1, 0.5)


def test_adding_the_same_id_again_keeps_one_record(store):
    record = make_record(digit=2)
    for _ in range(3):
        store.add(record)
    records, cursor = store.recent(10)
    assert [r.id for r in records] == [record.id] and cursor is None
    stats = store.stats()
    assert stats.total == 1 and stats.per_digit[2] == 1


def test_unknown_id_is_not_found(store):
    store.add(make_record())
    with pytest.raises(RecordNotFound):
        store.get(uuid.uuid1())
    with pytest.raises(RecordNotFound):
        store.set_label(uuid.uuid1(), 3)


def test_recent_pages_newest_first_across_days(store):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(7)
    moments = [now - datetime.timedelta(days=d, minutes=m) for d in (0, 1, 2, 5, 40) for m in range(5)]
    records = [make_record(timeuuid_at(moment, rng=rng), rng=rng) for moment in moments]
    for record in rng.sample(records, len(records)):  # insertion order must not matter
        store.add(record)
    expected = [r.id for r in sorted(records, key=lambda r: r.id.time, reverse=True)]

    seen, cursor, pages = [], None, 0
    while pages < 50:  # bounded: 25 records in pages of 4 is 7 pages
        page, cursor = store.recent(4, cursor)
        pages += 1
        assert len(page) <= 4
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 7
    everything, cursor = store.recent(100)
    assert [r.id for r in everything] == expected and cursor is None
    assert everything[-1] == next(r for r in records if r.id == expected[-1])


def test_labels_and_accuracy(store):
    records = [make_record(digit=d) for d in (1, 1, 2, 3, 7)]
    for record in records:
        store.add(record)
    assert store.stats().accuracy is None
    assert store.set_label(records[0].id, 1).label == 1  # correct
    assert store.set_label(records[2].id, 5).label == 5  # wrong
    store.set_label(records[3].id, 3)  # correct ...
    store.set_label(records[3].id, 8)  # ... then corrected to wrong
    store.set_label(records[4].id, 7)
    store.set_label(records[4].id, 7)  # the same label twice counts once
    assert store.get(records[3].id).label == 8
    stats = store.stats()
    assert stats.total == 5
    assert stats.per_digit == {0: 0, 1: 2, 2: 1, 3: 1, 4: 0, 5: 0, 6: 0, 7: 1, 8: 0, 9: 0}
    assert (stats.labelled, stats.correct) == (4, 2)
    assert stats.accuracy == 0.5


@pytest.mark.parametrize("label", [10, -1, "3", 3.0, True, None])
def test_invalid_label_is_refused(store, label):
    record = make_record(digit=3)
    store.add(record)
    with pytest.raises(InvalidLabel):
        store.set_label(record.id, label)
    assert store.get(record.id).label is None


def test_thousand_concurrent_writes_in_one_millisecond_are_thousand_rows(store):
    moment = datetime.datetime.now(UTC).replace(microsecond=123000)
    rng = random.Random(1000)
    # Same millisecond for all; many share even the exact 100 ns tick and differ only in clock/node.
    records = [make_record(timeuuid_at(moment, tick=i % 7, rng=rng), created_at=moment, rng=rng) for i in range(1000)]
    assert len({r.id for r in records}) == 1000
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    errors = []

    def write(chunk):
        try:
            barrier.wait(timeout=60)
            for record in chunk:
                store.add(record)
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(records[i::threads_n],)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert store.stats().total == 1000

    seen, cursor = [], None
    for _ in range(20):  # bounded: 1,000 records in pages of 97 is 11 pages
        page, cursor = store.recent(97, cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert len(seen) == 1000 and set(seen) == {r.id for r in records}


def test_cassandra_url_parameters_are_parsed_without_connecting():
    store = CassandraStore.from_url(
        "cassandra://app:p%40ss@10.9.0.1,10.9.0.2:9142/ks_1?consistency=QUORUM&replication=NetworkTopologyStrategy"
        "&replication_factor=3&local_dc=dc1&shards=8&reconnect_max_delay=30&protocol_version=4",
        timeout=3.0,
    )
    assert (store.hosts, store.port, store.keyspace) == (["10.9.0.1", "10.9.0.2"], 9142, "ks_1")
    assert (store.consistency, store.replication, store.replication_factor) == ("QUORUM", "NetworkTopologyStrategy", 3)
    assert (store.local_dc, store.shards, store.timeout) == ("dc1", 8, 3.0)
    assert (store.username, store.password, store.protocol_version) == ("app", "p@ss", 4)
    assert store._conn.peek() is None  # nothing connects before first use
    with pytest.raises(ValueError):
        CassandraStore.from_url("cassandra://127.0.0.1/ks?consitency=ONE")
    with pytest.raises(ValueError):
        CassandraStore.from_url("cassandra://127.0.0.1/bad-name")
    with pytest.raises(ValueError):
        CassandraStore.from_url("cassandra://127.0.0.1/ks?consistency=MOST")


def test_redis_url_prefix_is_taken_out_of_the_url():
    store = RedisStore.from_url("redis://10.9.0.1:6380/2?prefix=app1:", timeout=3.0)
    assert (store.url, store.prefix, store.timeout) == ("redis://10.9.0.1:6380/2", "app1:", 3.0)
    assert store._conn.peek() is None  # nothing connects before first use


def test_cassandra_network_topology_keyspace(cassandra_server, tmp_path):
    keyspace = fresh_keyspace()
    url = cassandra_url(
        cassandra_server, keyspace, replication="NetworkTopologyStrategy", local_dc="datacenter1", consistency="ONE"
    )
    store = open_store(url, str(tmp_path), timeout=10.0)
    try:
        store.init_schema()
        store.init_schema()  # idempotent
        record = make_record()
        store.add(record)
        assert store.get(record.id) == record
        store.ping()
    finally:
        store.close()
        if not getattr(cassandra_server, "restartable", False):
            drop_keyspace(cassandra_server, keyspace)


def make_answer(record, mode, verdict, number=None, rng=random):
    """The record as number mode (or digit mode's several_digits) stores it: no digit, the digits read."""
    digits = [
        {
            "digit": int(c),
            "confidence": rng.random(),
            "probabilities": [rng.random() / 3 for _ in range(10)],
            "not_a_digit": 0.0,
            "box": [rng.randrange(800), rng.randrange(200), 1 + rng.randrange(80), 1 + rng.randrange(80)],
        }
        for c in (number or "9x")
        if c.isdigit()
    ]
    return dataclasses.replace(
        record,
        digit=None,
        probabilities=[],
        verdict=verdict,
        mode=mode,
        number=number,
        digits=digits,
        model_input=rng.randbytes(784 * max(1, len(digits))),
    )


def test_numbers_round_trip_and_take_digit_string_labels(store):
    number = make_answer(make_record(), "number", "number", "042")
    refused = make_answer(make_record(), "number", "not_a_digit")
    several = make_answer(make_record(), "digit", "several_digits", "17")
    digit = dataclasses.replace(make_record(digit=3), verdict="digit", mode="digit")
    for record in (number, refused, several, digit):
        store.add(record)
        assert store.get(record.id) == record
    assert {r.id: r for r in store.recent(10)[0]} == {r.id: r for r in (number, refused, several, digit)}
    for record_id, label in [(number.id, 4), (number.id, "4a"), (several.id, "17"), (digit.id, "3")]:
        with pytest.raises(InvalidLabel):
            store.set_label(record_id, label)
    assert store.set_label(number.id, "0042").number_label == "0042"
    assert store.set_label(number.id, "042").label is None
    store.set_label(refused.id, "51")
    store.set_label(several.id, 1)
    stats = store.stats()
    assert (stats.total, stats.numbers, stats.numbers_refused, stats.several_digits) == (4, 1, 1, 1)
    assert stats.per_digit[3] == 1 and sum(stats.per_digit.values()) == 1
    assert (stats.numbers_labelled, stats.numbers_correct, stats.number_accuracy) == (2, 1, 0.5)
    assert (stats.labelled, stats.correct) == (1, 0)  # digit mode: the several digits labelled 1
