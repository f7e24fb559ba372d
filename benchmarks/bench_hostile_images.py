"""Corrupt and costly images: what the service accepts, and what the largest accepted ones cost.

    .venv/bin/python benchmarks/bench_hostile_images.py [--mutants 2000]

1. Mutates a drawn digit's JPEG and PNG (bit flips, cuts, inserted bytes) and counts, for each:
   how many OpenCV still decodes (the old decoder), how many make libjpeg print a corruption warning
   (OpenCV's stderr), how many the service's decode_image accepts, and how many it accepts although
   libjpeg warned (the target: 0).
2. For the largest images of each kind (4000x4000; RGBA 3500x3500), runs `preprocess` in a fresh
   process and prints its CPU time and peak RSS growth (the target: about 100 MB, a few hundred ms).
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def mutate(rng, data):
    data = bytearray(data)
    action, pos = rng.choice(["flip", "cut", "insert"]), rng.randrange(20, len(data))
    if action == "flip":
        data[pos] ^= 1 << rng.randrange(8)
    elif action == "cut":
        del data[pos : pos + rng.randrange(1, 50)]
    else:
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
    return bytes(data)


def mutants(count):
    import cv2
    import numpy as np

    from mnist_web.errors import MnistWebError
    from mnist_web.preprocessing import decode_image

    page = np.full((280, 280), 255, np.uint8)
    cv2.putText(page, "3", (60, 230), cv2.FONT_HERSHEY_SIMPLEX, 8, 0, 25)
    rng = random.Random(1)
    for ext in (".jpg", ".png"):
        original = cv2.imencode(ext, page)[1].tobytes()
        opencv = warned = accepted = accepted_warned = 0
        with tempfile.TemporaryFile() as err:
            saved = os.dup(2)
            os.dup2(err.fileno(), 2)  # libjpeg's warnings go to stderr: catch them per decode
            try:
                for _ in range(count):
                    data = mutate(rng, original)
                    start = err.seek(0, 2)
                    opencv += cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None
                    err.seek(start)
                    printed = err.read()
                    warning = b"Corrupt JPEG" in printed or b"Premature end" in printed
                    try:
                        decode_image(data)
                        ok = True
                    except MnistWebError:
                        ok = False
                    warned += warning
                    accepted += ok
                    accepted_warned += ok and warning
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        print(
            f"{count} mutated {ext[1:].upper()}s: OpenCV decodes {opencv}, libjpeg warns on {warned}; "
            f"the service accepts {accepted}, of them with a libjpeg warning: {accepted_warned}"
        )


def large_images(folder):
    import cv2
    import numpy as np

    from images import make_png

    page = np.full((4000, 4000), 255, np.uint8)
    cv2.putText(page, "7", (800, 3200), cv2.FONT_HERSHEY_SIMPLEX, 90, 0, 300)
    opaque = np.full_like(page, 255)
    made = {
        "4000x4000 PNG 8-bit gray": make_png(page, color_type=0),
        "4000x4000 PNG 8-bit RGB": make_png(np.dstack([page] * 3), color_type=2),
        "3500x3500 PNG 8-bit RGBA": make_png(np.dstack([page[:3500, :3500]] * 3 + [opaque[:3500, :3500]]), 6),
        "4000x4000 PNG 16-bit gray": make_png(page.astype(np.uint16) * 257, color_type=0, bit_depth=16),
        "4000x4000 PNG 16-bit RGBA": make_png(
            np.dstack([page.astype(np.uint16) * 257] * 3 + [opaque.astype(np.uint16) * 257]), 6, bit_depth=16
        ),
        "4000x4000 JPEG RGB": cv2.imencode(".jpg", np.dstack([page] * 3))[1].tobytes(),
        "4000x4000 BMP 8-bit": cv2.imencode(".bmp", page)[1].tobytes(),
    }
    for name, data in made.items():
        path = Path(folder) / (name.replace(" ", "_") + ".bin")
        path.write_bytes(data)
        yield name, path


def memory_kib(field):
    """A field of /proc/self/status in KiB (VmHWM: peak RSS of this process image, not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cost_of(path):
    """In this (fresh) process: preprocess the file; print outcome, CPU ms and peak RSS growth in MB."""
    from mnist_web.errors import MnistWebError
    from mnist_web.preprocessing import preprocess

    data = Path(path).read_bytes()
    before = memory_kib("VmHWM")
    started = time.process_time()
    try:
        preprocess(data)
        outcome = "accepted"
    except MnistWebError as error:
        outcome = f"{error.status} {error.code}"
    cpu = time.process_time() - started
    grown = (memory_kib("VmHWM") - before) / 1024
    print(f"{len(data) // 1024} KiB -> {outcome}; CPU {cpu * 1000:.0f} ms; peak RSS +{grown:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutants", type=int, default=2000)
    parser.add_argument("--cost-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost_of:
        return cost_of(args.cost_of)
    mutants(args.mutants)
    with tempfile.TemporaryDirectory() as folder:
        for name, path in large_images(folder):
            result = subprocess.run(
                [sys.executable, __file__, "--cost-of", str(path)], capture_output=True, text=True, check=True
            )
            print(f"{name}: {result.stdout.strip()}")


if __name__ == "__main__":
    main()
