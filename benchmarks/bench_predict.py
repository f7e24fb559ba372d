"""Recognizer speed: single-image latency (model only, and the full PNG path) and batched throughput.

    .venv/bin/python benchmarks/bench_predict.py [--runs 2000] [--inference tensorflow numpy]

For each runtime (MNIST_INFERENCE: TensorFlow, and NumPy as in the container image), prints figures and
their ratio to the targets (single p50 <= 0.5 ms, batched >= 10,000 images/s), to Keras' model.predict
(the call the naive demos make per request), and NumPy's ratio to TensorFlow measured in the same run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

# As the service runs (mnist_web/__init__.py, the Dockerfile): one BLAS thread, set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_web.canvas import canvas_set  # noqa: E402
from mnist_web.config import Config  # noqa: E402
from mnist_web.datasets import load_mnist  # noqa: E402
from mnist_web.preprocessing import preprocess  # noqa: E402
from mnist_web.recognizer import get_recognizer  # noqa: E402

SINGLE_TARGET_MS = 0.5
BATCH_TARGET_PER_S = 10_000


def percentiles(samples):
    ms = np.array(samples) * 1e3
    return np.percentile(ms, 50), np.percentile(ms, 95), np.percentile(ms, 99)


def time_calls(fn, runs, warmup=100):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--inference", nargs="+", choices=("tensorflow", "numpy"), default=["tensorflow", "numpy"])
    args = parser.parse_args()

    _, (images, labels) = load_mnist()
    inputs = images.astype(np.float32) / 255.0
    pngs = [png for png, _ in canvas_set(images[:200], labels[:200], seed=1)]
    print(f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    single = {}
    for inference in args.inference:
        single[inference] = bench_runtime(get_recognizer(Config.MNIST_MODEL_DIR, inference), inputs, pngs, args.runs)
    if len(single) == 2:
        ratio = single["tensorflow"] / single["numpy"]
        print(f"single image, model only: NumPy {ratio:.2f}x the speed of TensorFlow (p50, same run)")


def bench_runtime(recognizer, inputs, pngs, runs):
    """Print one runtime's figures; return its single-image p50 (ms)."""
    print(f"--- {recognizer.runtime}: model {recognizer.version}")
    p50, p95, p99 = percentiles(time_calls(lambda: recognizer.predict(inputs[0]), runs))
    print(
        f"single image, model only:      p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {p99:.3f} ms"
        f"  (target p50 <= {SINGLE_TARGET_MS} ms: {SINGLE_TARGET_MS / p50:.2f}x headroom)"
    )

    cycle = iter(range(10**9))
    p50_full, p95_full, _ = percentiles(
        time_calls(lambda: recognizer.predict(preprocess(pngs[next(cycle) % len(pngs)])), min(runs, 1000), 20)
    )
    print(f"single image, 280x280 PNG -> digit: p50 {p50_full:.3f} ms  p95 {p95_full:.3f} ms")

    if recognizer.model is not None:
        naive = percentiles(time_calls(lambda: recognizer.model.predict(inputs[:1, ..., None], verbose=0), 100, 5))[0]
        print(f"model.predict per image (naive):    p50 {naive:.3f} ms  ({naive / p50:.0f}x slower than this call)")

    for batch_size in (256, 1024):
        recognizer.predict_batch(inputs[:batch_size], batch_size)
        rates = []
        for _ in range(5):  # one pass is under a second: take the median of several
            started = time.perf_counter()
            recognizer.predict_batch(inputs, batch_size)
            rates.append(len(inputs) / (time.perf_counter() - started))
        rate = float(np.median(rates))
        print(
            f"batched, batch {batch_size:5d}: median {rate:,.0f} images/s"
            f" (min {min(rates):,.0f}, max {max(rates):,.0f})"
            f"  (target >= {BATCH_TARGET_PER_S:,}: {rate / BATCH_TARGET_PER_S:.2f}x)"
        )
    return p50


if __name__ == "__main__":
    main()
