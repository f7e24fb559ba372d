"""The normal path's decode cost with the integrity checks, against the unchecked decode (the baseline).

    .venv/bin/python benchmarks/bench_decode.py [--runs 2000]

For a canvas-sized drawing (as the page sends it) in PNG and JPEG, prints the median time of
`decode_image` (PNG: chunk CRCs and zlib completeness checked while inflating once with ISA-L, then
OpenCV on the re-packed, stored data; JPEG: strict libjpeg-turbo via simplejpeg; then gray in 0..1)
and of the decode the service did before those checks (`cv2.imdecode`, then a float BT.601 luma with
alpha over white), and their ratio.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnist_web.canvas import encode_png, render_drawing  # noqa: E402
from mnist_web.datasets import load_mnist  # noqa: E402
from mnist_web.preprocessing import decode_image  # noqa: E402


def median_ms(fn, runs):
    for _ in range(50):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def unchecked_decode(data):
    """The decode before the integrity checks: OpenCV, whatever libpng/libjpeg make of the bytes."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    if pixels.ndim == 2:
        return pixels
    gray = pixels[..., :3] @ np.array([0.114, 0.587, 0.299], np.float32)
    if pixels.shape[2] == 4:
        gray = gray * pixels[..., 3] + (1.0 - pixels[..., 3])
    return gray


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    images, _ = load_mnist()[1]
    png = encode_png(render_drawing(images[0], np.random.default_rng(0)), "white")
    gray = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    jpeg = cv2.imencode(".jpg", gray)[1].tobytes()
    for name, data in (("PNG", png), ("JPEG", jpeg)):
        checked = median_ms(lambda d=data: decode_image(d), args.runs)
        plain = median_ms(lambda d=data: unchecked_decode(d), args.runs)
        print(
            f"{name} {gray.shape[1]}x{gray.shape[0]} ({len(data)} bytes): checked decode_image {checked:.3f} ms, "
            f"unchecked baseline {plain:.3f} ms, ratio {checked / plain:.2f}"
        )


if __name__ == "__main__":
    main()
