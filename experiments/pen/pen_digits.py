"""The page pen's digits (mnist_web/pen_digits.py) read alone in digit mode, by size, and as numbers.

`flask evaluate` reports the same sets in total, on its own seeds; this breaks the single digits down by height
and lists the numbers missed:

    MNIST_DATA_DIR=../shared/mnist .venv/bin/python experiments/pen/pen_digits.py [--count 40] [--numbers 200]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mnist_web.evaluation import answered_no_number, pen_digit_reads, pen_number_accuracy  # noqa: E402
from mnist_web.recognizer import get_recognizer  # noqa: E402

SEED = 7


def main():
    """Read the pen's digits alone and in numbers; print the shares."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40, help="drawings of each way of each digit, at each size")
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--model-dir", default=str(Path(__file__).resolve().parents[2] / "model"))
    args = parser.parse_args()
    recognizer = get_recognizer(args.model_dir)
    for (low, high), (right, refused, drawn) in pen_digit_reads(recognizer, args.count, SEED).items():
        print(f"digit mode, {low}-{high} px tall: {right / drawn:.2%} right, {refused / drawn:.2%} refused ({drawn})")
    exact, per_digit, misses = pen_number_accuracy(recognizer, args.numbers, seed=SEED + 1)
    refused = sum(answered_no_number(read) for _, read in misses)
    print(
        f"number mode: {exact:.2%} exact, {per_digit:.2%} per digit, {refused} refused ({args.numbers}); misses: {misses[:12]}"
    )


if __name__ == "__main__":
    main()
