"""Numbers: exact-match and per-digit accuracy on canvas numbers and paper photos, and a 6-digit number's time.

    MNIST_DATA_DIR=/work/shared/mnist .venv/bin/python benchmarks/bench_numbers.py [--canvas 500] [--photos 500]
        [--singles 2000] [--runs 100] [--inference numpy]

Both sets are generated from the MNIST test digits with fixed seeds (mnist_web/numbers.py). The time is
in process, for a 6-digit canvas number already decoded to ink: segmentation and the model calls, p50
(and from the PNG bytes), timed in turns with a single canvas digit's predict (and its whole path) so that
the ratio holds on a machine of any speed or load. --singles counts how often the several-digits verdict
fires on single digits.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_web.canvas import canvas_set  # noqa: E402
from mnist_web.config import Config  # noqa: E402
from mnist_web.datasets import load_mnist  # noqa: E402
from mnist_web.evaluation import (  # noqa: E402
    canvas_number_accuracy,
    photo_number_accuracy,
    several_digits_false_fires,
)
from mnist_web.numbers import canvas_numbers  # noqa: E402
from mnist_web.preprocessing import image_ink, preprocess  # noqa: E402
from mnist_web.recognizer import get_recognizer  # noqa: E402
from mnist_web.segmentation import read_digits  # noqa: E402

TARGETS = {"canvas": 0.98, "photos": 0.95, "six_digit_ms": 20.0}


def six_digit_times(recognizer, runs):
    """p50 ms of a 6-digit canvas number and of a single canvas digit, timed in turns (so under the same load).

    {"segment": segmentation + model, "number": the whole path from PNG bytes, "model": one recognizer.predict,
    "single": a single digit from PNG bytes (preprocess + predict)}.
    """
    _, (images, labels) = load_mnist()
    numbers = list(canvas_numbers(images, labels, 20, seed=99, lengths=(6, 6)))
    singles = [png for png, _ in canvas_set(images[:20], labels[:20], seed=99)]
    inks = [image_ink(png)[0] for png, _ in numbers]
    for ink, png in zip(inks[:5], singles[:5], strict=True):
        read_digits(ink, recognizer)  # warm-up
        recognizer.predict(preprocess(png))
    times = {"segment": [], "number": [], "model": [], "single": []}
    for i in range(runs):
        png, _ = numbers[i % len(numbers)]
        started = time.perf_counter()
        ink = image_ink(png)[0]
        middle = time.perf_counter()
        read_digits(ink, recognizer)
        ended = time.perf_counter()
        times["segment"].append(ended - middle)
        times["number"].append(ended - started)
        started = time.perf_counter()
        model_input = preprocess(singles[i % len(singles)])
        middle = time.perf_counter()
        recognizer.predict(model_input)
        ended = time.perf_counter()
        times["model"].append(ended - middle)
        times["single"].append(ended - started)
    return {name: float(np.median(values) * 1e3) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canvas", type=int, default=500, help="canvas numbers to read")
    parser.add_argument("--photos", type=int, default=500, help="paper photos to read")
    parser.add_argument("--runs", type=int, default=100, help="timed 6-digit readings")
    parser.add_argument("--singles", type=int, default=2000, help="single canvas digits for the several-digits check")
    parser.add_argument("--inference", default=None, help="MNIST_INFERENCE (auto, tensorflow, numpy)")
    args = parser.parse_args()
    recognizer = get_recognizer(Config.MNIST_MODEL_DIR, args.inference)
    print(f"model {recognizer.version}, batches on {recognizer.batch_runtime}")
    for name, count, measure in (
        ("canvas", args.canvas, canvas_number_accuracy),
        ("photos", args.photos, photo_number_accuracy),
    ):
        if count:
            started = time.perf_counter()
            exact, per_digit, misses = measure(recognizer, count)
            print(
                f"{name}: exact {exact:.1%} (target {TARGETS[name]:.0%}), per-digit {per_digit:.2%}, "
                f"{count} numbers, {time.perf_counter() - started:.0f} s; first misses {misses[:8]}"
            )
    if args.singles:
        fires, drawings = several_digits_false_fires(recognizer, args.singles)
        print(f"several-digits verdict on single canvas digits: {fires} of {drawings} ({fires / drawings:.2%})")
    if args.runs:
        ms = six_digit_times(recognizer, args.runs)
        print(
            f"6-digit canvas number, p50: {ms['segment']:.1f} ms segmentation + model, {ms['number']:.1f} ms from PNG "
            f"bytes (target {TARGETS['six_digit_ms']:.0f} ms); single canvas digit: {ms['model']:.2f} ms predict, "
            f"{ms['single']:.2f} ms from PNG bytes; ratios {ms['segment'] / ms['model']:.1f}x the predict, "
            f"{ms['number'] / ms['single']:.1f}x from PNG bytes"
        )


if __name__ == "__main__":
    main()
