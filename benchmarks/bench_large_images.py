"""Memory and time of the largest accepted images, 8 at once, against one gunicorn worker.

    .venv/bin/python benchmarks/bench_large_images.py [--concurrent 8]

Starts gunicorn (gunicorn.conf.py, one worker with 8 threads, a temporary SQLite store) twice: with
the default decode memory budget (MNIST_DECODE_MEMORY_BUDGET) and, as the baseline, with a budget
so large that it never makes a decode wait. Each time it posts N copies of the largest image the
limits accept (a 4000x4000 8-bit RGB PNG: 48 MB decoded) at once, and prints the worker's peak RSS
over its idle RSS (VmHWM - VmRSS from /proc) and the answers' latencies. It also prints what one
4000x4000 16-bit RGBA PNG (the issue's 1.7 s / +605 MB example) is answered now.
"""

import argparse
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

import fuzz  # noqa: E402  (its own_gunicorn and send)


def largest_png():
    import cv2
    import numpy as np

    from images import make_png

    page = np.full((4000, 4000), 255, np.uint8)
    cv2.putText(page, "7", (800, 3200), cv2.FONT_HERSHEY_SIMPLEX, 90, 0, 300)
    rgb = make_png(np.dstack([page] * 3), color_type=2)
    rgba16 = page.astype(np.uint16) * 257
    rgba16 = make_png(np.dstack([rgba16] * 3 + [np.full_like(rgba16, 65535)]), color_type=6, bit_depth=16)
    return rgb, rgba16


def worker_pid(master):
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return int(children.split()[0])


def memory_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def post(port, body):
    started = time.monotonic()
    head = b"POST /api/v1/predictions HTTP/1.1\r\nHost: b\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"
    status = fuzz.send("127.0.0.1", port, head % len(body) + body, "POST", timeout=120)
    return status, time.monotonic() - started


def run(label, budget, concurrent, images):
    rgb, rgba16 = images
    env = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "8", "GUNICORN_MAX_REQUESTS": "0"}
    if budget:
        env["MNIST_DECODE_MEMORY_BUDGET"] = str(budget)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with fuzz.own_gunicorn() as (_, port, master, _log):
            post(port, rgb)  # warm up: model loaded, first decode done
            pid = worker_pid(master)
            idle = memory_kib(pid, "VmRSS")
            with concurrent_pool(concurrent) as pool:
                results = list(pool.map(lambda _: post(port, rgb), range(concurrent)))
            peak = memory_kib(pid, "VmHWM")
            rgba_status, rgba_seconds = post(port, rgba16)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    statuses = sorted({s for s, _ in results})
    latencies = sorted(t for _, t in results)
    print(
        f"{label}: {concurrent} x {len(rgb) // 1024} KiB 4000x4000 RGB PNG at once -> {statuses}; "
        f"worker RSS idle {idle / 1024:.0f} MB, peak {peak / 1024:.0f} MB (+{(peak - idle) / 1024:.0f} MB); "
        f"latency min {latencies[0]:.2f} s, max {latencies[-1]:.2f} s"
    )
    print(f"  one {len(rgba16) // 1024} KiB 4000x4000 16-bit RGBA PNG -> {rgba_status} in {rgba_seconds * 1000:.0f} ms")
    return peak - idle


@contextlib.contextmanager
def concurrent_pool(size):
    with concurrent.futures.ThreadPoolExecutor(size) as pool:
        yield pool


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", type=int, default=8)
    args = parser.parse_args()
    from mnist_web.config import Config

    images = largest_png()
    budgeted = run(f"budget {Config.MNIST_DECODE_MEMORY_BUDGET >> 20} MiB (default)", 0, args.concurrent, images)
    unlimited = run("baseline: budget 100 GiB (no waiting)", 100 << 30, args.concurrent, images)
    print(f"peak decode memory with the budget / without: {budgeted / max(unlimited, 1):.2f}")


if __name__ == "__main__":
    main()
