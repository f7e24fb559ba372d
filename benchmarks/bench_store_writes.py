"""The cost of a prediction's write with the stats marks, against the bare INSERT that was the whole write before.

    MNIST_BENCH_CASSANDRA_URL=cassandra://127.0.0.1:9042/bench_writes .venv/bin/python benchmarks/bench_store_writes.py

Interleaves, one at a time, CassandraStore.add() of a fresh (live) record — the INSERT, plus its hour's
mark once per process and hour — with the prepared INSERT alone (what add() sent per prediction before
the rollups, the day's record_days row being cached), so both see the same load; then the same with
8 threads at once for throughput, in 3 alternating rounds. Prints p50/p99 and writes/s for each.
"""

import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_store_volume import make_records  # noqa: E402
from cassandra.query import UNSET_VALUE  # noqa: E402

from mnist_web.store import open_store  # noqa: E402
from mnist_web.store.fields import encode  # noqa: E402


def fresh(count, seed):
    """`count` records made now (live: the current hour)."""
    return list(make_records(count, days=0.000001, seed=seed))


def bare_insert(store):
    """The pre-rollup write: one prepared INSERT."""
    session, stmts = store._statements()

    def write(record):
        values = [UNSET_VALUE if v is None else v for v in encode(record, "to_cql")]
        day = record.created_at.date().isoformat()
        session.execute(stmts["insert"], (day, store._shard(record.id), *values, 0))

    return write


def threaded(write, records, threads):
    """Writes/s of `records` written by `threads` threads."""
    chunks = [records[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=lambda c=c: [write(r) for r in c]) for c in chunks]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(records) / (time.perf_counter() - started)


def main():
    url = os.environ.get("MNIST_BENCH_CASSANDRA_URL", "cassandra://127.0.0.1:9042/bench_writes")
    runs = int(os.environ.get("BENCH_WRITES", "2000"))
    store = open_store(url, "/tmp", timeout=30.0)
    store.init_schema()
    ways = {"add() (INSERT + hourly mark)": store.add, "bare INSERT (before)": bare_insert(store)}
    samples = {name: [] for name in ways}
    records = fresh(runs * 2, seed=random.randrange(1 << 30))
    for write in ways.values():  # warm-up
        write(records.pop())
    for i, record in enumerate(records[: runs * 2 - 2]):
        name = list(ways)[i % 2]
        started = time.perf_counter()
        ways[name](record)
        samples[name].append((time.perf_counter() - started) * 1e3)
    for name, found in samples.items():
        print(f"{name:<30} p50 {statistics.median(found):6.2f} ms  p99 {np.percentile(found, 99):6.2f} ms")
    rates = {name: [] for name in ways}
    for _ in range(3):  # alternating rounds: both ways see the same (shared, noisy) machine
        for name, write in ways.items():
            rates[name].append(threaded(write, fresh(runs // 2, seed=random.randrange(1 << 30)), threads=8))
    for name, found in rates.items():
        print(f"{name:<30} 8 threads: median {statistics.median(found):,.0f} writes/s of {[round(r) for r in found]}")
    store.close()


if __name__ == "__main__":
    main()
