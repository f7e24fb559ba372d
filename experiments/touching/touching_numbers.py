"""Digits that touch: canvas numbers of 2-4 digits in which one neighbouring pair is pushed into each other.

The generator of mnist_web/numbers.py keeps every digit's ink clear of its neighbours; here one pair per
number is placed 1-6 px into the ink before it, so the two are one stroke piece. It reads those numbers, and
the ordinary generated numbers of two other seeds than the evaluation's (whose exact reads must not change),
with the committed model:

    MNIST_DATA_DIR=../shared/mnist .venv/bin/python experiments/touching/touching_numbers.py [--count 200]
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mnist_web import numbers  # noqa: E402
from mnist_web.canvas import encode_png  # noqa: E402

SEED = 777
SHIFTS = (1000, 2000)  # the ordinary sets: the evaluation's seeds plus these


def touching_numbers(images, labels, count, seed):
    """Yield (png, digit string): one neighbouring pair of each number touches."""
    rng = np.random.default_rng(seed)
    place = numbers._place
    for _ in range(count):
        digits, text = numbers._pick(images, labels, rng, (2, 4))
        pushed = int(rng.integers(0, len(digits) - 1))  # which placement (of the second digit on) touches
        calls = itertools.count()  # one placement per digit after the first, on each try at laying out the line
        between = len(digits) - 1

        def touching_place(strip, ink, left_limit, gap, top, calls=calls, pushed=pushed, between=between):
            if next(calls) % between == pushed:
                return max(0, place(strip, ink, 0, 0, top) - int(rng.integers(1, 7)))
            return place(strip, ink, left_limit, gap, top)

        numbers._place = touching_place
        try:
            ink = numbers.draw_number(digits, rng)
        finally:
            numbers._place = place
        yield encode_png(ink, "white"), text


def main():
    from mnist_web import evaluation
    from mnist_web.datasets import load_mnist
    from mnist_web.recognizer import get_recognizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    recognizer = get_recognizer(Path(__file__).resolve().parents[2] / "model", "auto")
    _, (images, labels) = load_mnist()
    exact, per_digit, misses = evaluation.number_accuracy(
        recognizer, touching_numbers(images, labels, args.count, SEED)
    )
    print(f"touching numbers ({args.count}): exact {exact:.2%}, per digit {per_digit:.2%}; misses: {misses[:12]}")
    for shift in SHIFTS:
        canvas = evaluation.canvas_number_accuracy(recognizer, 400, seed=evaluation.NUMBERS_SEED + shift)
        photos = evaluation.photo_number_accuracy(recognizer, 200, seed=evaluation.PHOTOS_SEED + shift)
        print(f"seeds +{shift}: canvas numbers (400) exact {canvas[0]:.2%}, paper photos (200) exact {photos[0]:.2%}")


if __name__ == "__main__":
    main()
