"""Record ids from the proxy's request id: a retried POST stores one record; untrusted headers are ignored."""

import concurrent.futures
import datetime
import os
import time

import pytest

from mnist_web import create_app
from mnist_web.request_ids import derived_record_id, record_id_for
from mnist_web.store.base import RANDOM_NODE_BIT, new_record_id, record_time

REQUEST_ID = "0123456789abcdef0123456789abcdef"


def headers(request_id=REQUEST_ID, start=None):
    return {"X-Request-Id": request_id, "X-Request-Start": f"{time.time() if start is None else start:.3f}"}


def test_same_request_same_id_other_request_other_id():
    sent = headers()
    first, again = record_id_for(sent, trusted_proxy=True), record_id_for(sent, trusted_proxy=True)
    assert first == again and first.version == 1
    other = record_id_for({**sent, "X-Request-Id": "f" * 32}, trusted_proxy=True)
    assert other != first and other.time == first.time  # same millisecond, still distinct
    assert abs(record_time(first).timestamp() - float(sent["X-Request-Start"])) < 0.001


@pytest.mark.parametrize(
    "sent, trusted",
    [
        (headers(), False),  # no proxy in front: a client could have sent anything
        ({}, True),
        (headers("not-hex"), True),
        (headers(REQUEST_ID.upper()), True),
        (headers(start=time.time() - 3600), True),  # far from now: stale or forged
        ({"X-Request-Id": REQUEST_ID, "X-Request-Start": "１２３４５６７８９０.123"}, True),
    ],
)
def test_untrusted_or_odd_headers_give_a_fresh_id(sent, trusted):
    assert record_id_for(sent, trusted) != record_id_for(sent, trusted)


def test_derived_ids_keep_time_order():
    ids = [derived_record_id(f"{n:032x}", 1_700_000_000_000 + n) for n in range(50)]
    assert [i.time for i in ids] == sorted(i.time for i in ids)
    assert len(set(ids)) == 50


def test_fresh_ids_are_timeuuids_of_now_unique_across_threads_and_forks():
    before = datetime.datetime.now(datetime.UTC)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(lambda _: [new_record_id() for _ in range(2000)], range(8)) for i in batch]
    after = datetime.datetime.now(datetime.UTC)
    assert len(set(ids)) == len(ids) == 16_000  # many share a millisecond, none an id
    assert all(i.version == 1 and i.node & RANDOM_NODE_BIT for i in ids)
    assert all(before.replace(microsecond=before.microsecond // 1000 * 1000) <= record_time(i) <= after for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker: its ids carry a node of its own
        os.write(write, new_record_id().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = type(ids[0])(bytes=os.read(read, 16))
    assert child.node != ids[0].node and child not in set(ids)


@pytest.mark.parametrize("proxy_count, records", [(1, 1), (0, 2)])
def test_a_post_sent_twice_by_the_proxy_is_one_record(tmp_path, drawing, proxy_count, records):
    app = create_app(
        {"TESTING": True, "MNIST_DATABASE_URL": f"sqlite:///{tmp_path}/r.sqlite3", "MNIST_PROXY_COUNT": proxy_count}
    )
    client = app.test_client()
    sent = {**headers(), "Content-Type": "image/png"}
    answers = [client.post("/api/v1/predictions", data=drawing(3), headers=sent) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert (answers[0].get_json()["id"] == answers[1].get_json()["id"]) == (records == 1)
    assert client.get("/api/v1/stats").get_json()["total"] == records
    app.extensions["mnist_web.store"].close()
