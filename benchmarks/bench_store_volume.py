"""Stats and history at volume: fill a store with N records, then time /api/v1/stats and history pages.

    .venv/bin/python benchmarks/bench_store_volume.py --backend sqlite [--records 1000000] [--days 365]
    .venv/bin/python benchmarks/bench_store_volume.py --backend cassandra   # starts its own node on free ports
    MNIST_BENCH_CASSANDRA_URL=cassandra://127.0.0.1:9042/bench .venv/bin/python benchmarks/... --backend cassandra

Records are small and realistic (MNIST test digits as 28x28 PNG uploads, the 28x28 input, ten
probabilities; about 1.3 kB), spread
evenly over `--days` days back from now. The fill is a bulk load: SQLite executemany in transactions
of 20,000 through the store's own INSERT (its count triggers run); Cassandra the store's prepared
INSERT in unlogged single-partition batches of 50, 64 batches in flight (execute_async), each day
then marked as a whole so that
the first stats() counts the load once, as it does for a database made before the rollups
(timed and printed: "first stats"). Redis: add() per record, pipelined by nothing (slow; optional).
The requests go through the real app with Flask's test client (no HTTP server: the figures are the
app and the store, not a socket), one request at a time; prints p50 and p99 against the 20 ms target.
"""

import argparse
import datetime
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mnist_web import create_app  # noqa: E402
from mnist_web.datasets import load_mnist  # noqa: E402
from mnist_web.limits import IMAGE_TYPES  # noqa: E402
from mnist_web.store import open_store  # noqa: E402
from mnist_web.store.base import Record, record_time, sort_token, timeuuid_at  # noqa: E402
from mnist_web.store.fields import encode  # noqa: E402

TARGET_MS = 20.0
UTC = datetime.UTC


def templates(count=200):
    """(png bytes, model input bytes, digit) of MNIST test digits as 28x28 dark-on-white PNGs (about 300 bytes)."""
    _, (images, labels) = load_mnist()
    found = []
    for index in range(count):
        ok, png = cv2.imencode(".png", 255 - images[index])
        found.append((png.tobytes(), images[index].tobytes(), int(labels[index])))
    return found


def make_records(count, days, seed=1):
    """`count` records spread evenly over `days` days back from now, oldest first; every 10th labelled."""
    rng = random.Random(seed)
    pool = templates()
    now = datetime.datetime.now(UTC)
    span = datetime.timedelta(days=days) / count
    start = now - datetime.timedelta(days=days)
    for i in range(count):
        png, model_input, digit = pool[i % len(pool)]
        record_id = timeuuid_at(start + span * i, rng)
        predicted = digit if rng.random() < 0.99 else (digit + 1) % 10
        probabilities = [0.001] * 10
        probabilities[predicted] = 0.991
        yield Record(
            id=record_id,
            created_at=record_time(record_id),
            digit=predicted,
            confidence=0.991,
            probabilities=probabilities,
            source=rng.choice(("canvas", "upload", "api")),
            client_ip="203.0.113.7",
            image=png,
            image_type=IMAGE_TYPES["png"],
            model_input=model_input,
            model_version="2026-11-21T06:00:00Z-bench",
            latency_ms=round(rng.uniform(1, 5), 3),
            label=digit if i % 10 == 0 else None,
        )


def progress(done, total, started):
    """One line of how far the fill is."""
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"  {done:,}/{total:,} records, {rate:,.0f}/s", flush=True)


def fill_sqlite(store, records, total):
    """Bulk insert through the store's INSERT (the count triggers run), 20,000 per transaction."""
    from mnist_web.store.sqlite import INSERT, connect, transaction

    conn = connect(store.path, 60)
    conn.execute("PRAGMA synchronous=NORMAL")  # the load only; the service commits with FULL
    started, batch, done = time.perf_counter(), [], 0
    for record in records:
        batch.append((sort_token(record.id), *encode(record, "to_sql")))
        if len(batch) == 20_000:
            transaction(conn, lambda c, rows=batch: c.executemany(INSERT, rows))
            done += len(batch)
            batch = []
            if done % 100_000 == 0:
                progress(done, total, started)
    if batch:
        transaction(conn, lambda c: c.executemany(INSERT, batch))
    conn.close()


def fill_cassandra(store, records, total, in_flight=64, per_batch=50):
    """The store's prepared INSERT in unlogged batches of one partition, `in_flight` batches at a time.

    Then record_days and a whole-day mark per day (as an upgrade from before the rollups leaves them).
    """
    from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

    from mnist_web.store import cassandra_stats

    session, stmts = store._statements()
    started, futures, days, done = time.perf_counter(), [], set(), 0
    buffers = {}

    def send(key):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for values in buffers.pop(key):
            batch.add(stmts["insert"], values)
        futures.append(session.execute_async(batch))
        if len(futures) >= in_flight:
            for future in futures[: in_flight // 2]:
                future.result()
            del futures[: in_flight // 2]

    for record in records:
        values = [UNSET_VALUE if v is None else v for v in encode(record, "to_cql")]
        key = (record.created_at.date().isoformat(), store._shard(record.id))
        days.add(key[0])
        buffers.setdefault(key, []).append((*key, *values, 0))
        if len(buffers[key]) >= per_batch:
            send(key)
        done += 1
        if done % 100_000 == 0:
            progress(done, total, started)
    for key in list(buffers):
        send(key)
    for future in futures:
        future.result()
    for day in sorted(days):
        session.execute(stmts["insert_day"], (0, day, 0))
        session.execute(stmts["mark"], cassandra_stats.mark_values(day, cassandra_stats.WHOLE_DAY, 0))


def fill_redis(store, records, total):
    """add() per record (the Lua script): slow, for completeness."""
    started = time.perf_counter()
    for done, record in enumerate(records, 1):
        store.add(record)
        if done % 100_000 == 0:
            progress(done, total, started)


def timed(client, url, runs):
    """Milliseconds of `runs` GETs of url (after 5 warm-ups), each checked to answer 200."""
    for _ in range(5):
        assert client.get(url).status_code == 200
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1e3)
        assert response.status_code == 200, response.get_data(as_text=True)
    return samples


def report(name, samples):
    """Print p50/p99 of one request kind."""
    p50, p99 = statistics.median(samples), float(np.percentile(samples, 99))
    verdict = "ok" if p50 <= TARGET_MS else "OVER TARGET"
    print(f"{name:<34} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({verdict}: p50 <= {TARGET_MS:.0f} ms)", flush=True)


def cassandra_url(workdir):
    """MNIST_BENCH_CASSANDRA_URL, or a node of our own on free ports (returned with it to stop later)."""
    url = os.environ.get("MNIST_BENCH_CASSANDRA_URL")
    if url:
        return url, None
    from services import CassandraServer, free_port

    server = CassandraServer(
        base_dir=Path(workdir) / "cassandra", port=free_port(), storage_port=free_port(), jmx_port=free_port()
    )
    print("starting Cassandra ...", flush=True)
    server.start(wait=False).wait_ready(300)
    return f"cassandra://{server.host}:{server.port}/bench", server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "cassandra", "redis"), required=True)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--url", help="a database URL to fill (default: a fresh SQLite file / Cassandra node)")
    parser.add_argument("--no-fill", action="store_true", help="time a store filled before (with --url)")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="bench_store_volume_")
    server = None
    if args.url:
        url = args.url
    elif args.backend == "sqlite":
        url = f"sqlite:///{workdir}/records.sqlite3"
    elif args.backend == "cassandra":
        url, server = cassandra_url(workdir)
    else:
        url = os.environ.get("MNIST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0") + "?prefix=bench:"
    try:
        store = open_store(url, workdir, timeout=60.0)
        store.init_schema()
        print(f"filling {url} with {args.records:,} records over {args.days} days ...", flush=True)
        started = time.perf_counter()
        if not args.no_fill:
            fill = {"sqlite": fill_sqlite, "cassandra": fill_cassandra, "redis": fill_redis}[args.backend]
            fill(store, make_records(args.records, args.days), args.records)
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        stats = store.stats()
        print(f"first stats (counts the bulk load where a backend must): {time.perf_counter() - started:.1f} s")
        assert stats.total == args.records, (stats.total, args.records)
        store.close()

        app = create_app({"MNIST_DATABASE_URL": url, "MNIST_STORE_TIMEOUT": 30.0, "MNIST_SPOOL_PATH": f"{workdir}/s"})
        client = app.test_client()
        body = client.get("/api/v1/stats").get_json()
        print(f"/api/v1/stats: total {body['total']:,}, accuracy {body['accuracy']}")
        # A deep page: a cursor half-way back in time (any timeuuid works as a cursor).
        cursor = timeuuid_at(datetime.datetime.now(UTC) - datetime.timedelta(days=args.days / 2), random.Random(2))
        print(f"{args.records:,} records, {args.backend}, Flask test client, {args.runs} requests each:")
        report("GET /api/v1/stats", timed(client, "/api/v1/stats", args.runs))
        report(
            f"GET predictions?limit={args.limit}", timed(client, f"/api/v1/predictions?limit={args.limit}", args.runs)
        )
        deep = f"/api/v1/predictions?limit={args.limit}&cursor={cursor}"
        report("GET predictions (deep cursor)", timed(client, deep, args.runs))
        one = client.get("/api/v1/predictions?limit=1").get_json()["items"][0]["id"]
        report("GET predictions/<id> (for scale)", timed(client, f"/api/v1/predictions/{one}", args.runs))
        app.extensions["mnist_web.store"].close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # a million records take a gigabyte or more


if __name__ == "__main__":
    main()
