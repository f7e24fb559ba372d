"""Writes/s and bytes per record on the local 3-node cluster (RF=3, LOCAL_QUORUM), through CassandraStore.

    make cluster                                  # three nodes on 127.0.1.1-3 (scripts/svc_cluster.py)
    .venv/bin/python benchmarks/bench_cluster.py  # --records 20000 --concurrency 32 by default

Each record is what a prediction stores: a 280x280 canvas PNG of an MNIST test digit (white page,
2-12 KB, about 5.5 KB on average), the 28x28 model input (784 bytes), ten probabilities and the
other fields, with a fresh timeuuid. Writes go through `CassandraStore.add` (one synchronous write
at LOCAL_QUORUM per call) from `--concurrency` threads of this process.

Printed: writes/s with latency percentiles; the CPU seconds each Cassandra node and this client
used during the measured run (here all of them share the machine's cores, so throughput is bounded
by CPU: the figure to extrapolate from is writes per Cassandra CPU-second); after `nodetool flush`,
each node's `nodetool tablestats` live bytes and partition sizes, divided by the records written
(RF=3 on three nodes: every node holds every record).
"""

import argparse
import concurrent.futures
import os
import re
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from svc_cluster import CassandraCluster  # noqa: E402


def payloads(count):
    """(png, model_input, digit, probabilities) like the service records, from MNIST test digits."""
    import numpy as np

    from mnist_web.canvas import encode_png, render_drawing
    from mnist_web.datasets import load_mnist

    (_, _), (images, labels) = load_mnist()
    rng = np.random.default_rng(11)
    found = []
    for i in range(count):
        probabilities = rng.dirichlet(np.full(10, 0.05))
        png = encode_png(render_drawing(images[i], rng), "white")
        found.append((png, images[i].tobytes(), int(labels[i]), probabilities))
    return found


def record(payload):
    """A fresh Record with this payload, as mnist_web.predictions makes one."""
    from mnist_web.store.base import Record, new_record_id, record_time

    png, model_input, digit, probabilities = payload
    record_id = new_record_id()
    return Record(
        id=record_id,
        created_at=record_time(record_id),
        digit=digit,
        confidence=float(probabilities.max()),
        probabilities=[float(p) for p in probabilities],
        source="upload",
        client_ip="127.0.0.1",
        image=png,
        image_type="image/png",
        model_input=model_input,
        model_version="cnn-bench",
        latency_ms=3.1,
    )


def cpu_seconds(pid):
    """User + system CPU seconds a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write(store, pool, count, concurrency):
    """Write `count` records from `concurrency` threads; (seconds, per-write latencies in ms)."""
    latencies = []
    lock = threading.Lock()
    counter = iter(range(count))

    def worker():
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            rec = record(pool[i % len(pool)])
            started = time.perf_counter()
            store.add(rec)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as threads:
        for future in [threads.submit(worker) for _ in range(concurrency)]:
            future.result()
    return time.perf_counter() - started, latencies


def table_sizes(cluster, keyspace):
    """{node: (live bytes, max partition bytes, mean partition bytes)} of record_data after a flush."""
    sizes = {}
    for n in range(1, len(cluster.nodes) + 1):
        cluster.nodetool(n, "flush", keyspace, timeout=300)
        out = cluster.nodetool(n, "tablestats", f"{keyspace}.record_data", timeout=120)

        def number(label, text=out):
            match = re.search(rf"{label}:\s*([\d.]+)", text)
            return float(match.group(1)) if match else float("nan")

        sizes[n] = (
            number("Space used \\(live\\)"),
            number("Compacted partition maximum bytes"),
            number("Compacted partition mean bytes"),
        )
    return sizes


def main(argv=None):
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000, help="records in the measured run")
    parser.add_argument("--warmup", type=int, default=2000, help="records written first, not measured")
    parser.add_argument("--concurrency", type=int, default=32, help="writer threads")
    parser.add_argument("--keyspace", default=f"bench_{uuid.uuid4().hex[:8]}")
    parser.add_argument("--keep", action="store_true", help="keep the keyspace (default: drop it)")
    args = parser.parse_args(argv)

    from mnist_web.store.cassandra import CassandraStore

    cluster = CassandraCluster()  # the CLUSTER_* environment names the running cluster (make cluster)
    if not all(node.is_running() for node in cluster.nodes):
        sys.exit(f"the cluster in {cluster.base_dir} is not running: make cluster")
    url = f"cassandra://{','.join(cluster.hosts)}:{cluster.port}/{args.keyspace}?replication_factor=3&consistency=LOCAL_QUORUM"
    store = CassandraStore.from_url(url, timeout=10.0)
    store.init_schema()
    pool = payloads(500)
    print(f"{url}\nrecords: PNG mean {statistics.mean(len(p[0]) for p in pool):.0f} B, model input 784 B")
    try:
        write(store, pool, args.warmup, args.concurrency)
        pids = {n: node.pid for n, node in enumerate(cluster.nodes, start=1)}
        cpu_before = {n: cpu_seconds(pid) for n, pid in pids.items()}
        client_before = time.process_time()
        seconds, latencies = write(store, pool, args.records, args.concurrency)
        cpu = {n: cpu_seconds(pid) - cpu_before[n] for n, pid in pids.items()}
        client_cpu = time.process_time() - client_before

        rate = args.records / seconds
        cuts = statistics.quantiles(latencies, n=100)
        cassandra_cpu = sum(cpu.values())
        print(
            f"writes: {args.records} in {seconds:.1f} s = {rate:.0f} writes/s at RF=3 LOCAL_QUORUM, "
            f"{args.concurrency} threads; latency p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms"
        )
        print(
            "CPU seconds during the run: "
            + ", ".join(f"node {n} {s:.1f}" for n, s in cpu.items())
            + f", client {client_cpu:.1f} (machine: {os.cpu_count()} cores)"
        )
        print(
            f"per Cassandra CPU-second: {args.records / cassandra_cpu:.0f} writes "
            f"(each write is three replica writes plus one coordination)"
        )
        total = args.warmup + args.records
        for n, (live, max_partition, mean_partition) in table_sizes(cluster, args.keyspace).items():
            print(
                f"node {n}: {live / 1e6:.1f} MB live for {total} records = {live / total:.0f} bytes/record; "
                f"partitions: max {max_partition / 1e6:.1f} MB, mean {mean_partition / 1e6:.1f} MB "
                f"({store.shards} shards a day)"
            )
    finally:
        if not args.keep:
            store._get_session().execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}", timeout=120)
        store.close()


if __name__ == "__main__":
    main()
