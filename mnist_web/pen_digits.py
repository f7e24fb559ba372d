"""Digits as the page's pen draws them: vector strokes with an 18 px round pen, pen lifts where hands lift it.

Every other digit set here draws MNIST bitmaps, whose strokes swell and thin as a real pen's do not. These are
hand-made stroke paths (a 4 open or closed in two strokes, a 5 with its bar apart, a 1 with a flag or a base, a
7 with a crossbar, a 9 as loop and stem), jittered, slanted and sized at random, later strokes pulled back from
where they meet the earlier ones by 0, 6 or 12 px, and drawn with the page's round pen (static/js/app.js,
LINE_WIDTH): alone on the 280x280 canvas, and as numbers of 2-6 digits on the 840x280 one. Nothing is trained
on them (`flask evaluate`; `experiments/pen/pen_digits.py` breaks the figures down by size).
"""

import cv2
import numpy as np

from .canvas import CANVAS_SIDE, encode_png
from .numbers import NUMBER_CANVAS

PEN = 18  # px: the page's LINE_WIDTH
PEN_LIFTS = (0, 6, 12)  # px a later stroke stops short of the earlier ones
SIZES = ((60, 110), (110, 170), (170, 230), (230, 270))  # digit heights on the digit canvas, px


def _arc(cx, cy, rx, ry, start, end, points=24):
    angles = np.radians(np.linspace(start, end, points))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


# Each digit's ways of being drawn; each a list of strokes, each stroke points in a unit box (y down).
GLYPHS = {
    0: [[_arc(0.5, 0.5, 0.45, 0.5, -90, 275)]],
    1: [
        [[(0.5, 0), (0.5, 1)]],
        [[(0.25, 0.2), (0.55, 0)], [(0.55, 0), (0.55, 1)]],
        [[(0.3, 0.15), (0.6, 0), (0.6, 1)], [(0.35, 1), (0.85, 1)]],
    ],
    2: [[_arc(0.5, 0.28, 0.4, 0.28, 200, 380) + [(0.05, 1), (0.95, 1)]]],
    3: [[_arc(0.45, 0.25, 0.4, 0.25, 200, 450) + _arc(0.45, 0.73, 0.45, 0.27, -90, 150)]],
    4: [
        [[(0.65, 0), (0.05, 0.68), (0.95, 0.68)], [(0.7, 0.3), (0.7, 1)]],
        [[(0.1, 0), (0.1, 0.6), (0.9, 0.6)], [(0.75, 0), (0.75, 1)]],
    ],
    5: [[[(0.9, 0), (0.2, 0)], [(0.2, 0), (0.15, 0.45)] + _arc(0.45, 0.7, 0.45, 0.3, -120, 150)]],
    6: [[[(0.7, 0), (0.3, 0.35)] + _arc(0.5, 0.72, 0.4, 0.28, 180, 540)]],
    7: [[[(0.05, 0), (0.95, 0), (0.4, 1)]], [[(0.05, 0), (0.95, 0), (0.4, 1)], [(0.35, 0.5), (0.9, 0.5)]]],
    8: [[_arc(0.5, 0.25, 0.33, 0.25, 90, 450) + _arc(0.5, 0.75, 0.42, 0.25, -90, 270)]],
    9: [
        [_arc(0.45, 0.3, 0.4, 0.3, 0, 360), [(0.85, 0.3), (0.8, 1)]],
        [_arc(0.45, 0.3, 0.4, 0.3, 10, 370) + [(0.8, 1)]],
    ],
}


def draw(digit, rng, height, variant=None):
    """Ink (float32 0..1, cropped with a pen's margin) of one digit about `height` px tall."""
    ways = GLYPHS[digit]
    strokes = ways[int(rng.integers(len(ways))) if variant is None else variant]
    width = height * (0.35 if digit == 1 else rng.uniform(0.55, 0.75))
    shear = rng.uniform(-0.25, 0.25)
    lift = int(rng.choice(PEN_LIFTS))
    drawn = []
    for stroke in strokes:
        unit = np.array(stroke) + rng.normal(0, 0.02, (len(stroke), 2))
        points = np.stack([unit[:, 0] * width + shear * (1 - unit[:, 1]) * height, unit[:, 1] * height], axis=1)
        if drawn and lift:
            # The pen came down short of the strokes before: drop the points within reach of them.
            earlier = np.concatenate(drawn)
            reach = np.hypot(*(points[:, None, :] - earlier[None, :, :]).transpose(2, 0, 1)).min(axis=1)
            kept = points[reach > lift + PEN]
            points = kept if len(kept) >= 2 else points
        drawn.append(points)
    low = np.concatenate(drawn).min(axis=0) - PEN
    high = np.concatenate(drawn).max(axis=0) + PEN
    ink = np.zeros((int(high[1] - low[1]) + 1, int(high[0] - low[0]) + 1), np.uint8)
    for points in drawn:
        cv2.polylines(ink, [np.round((points - low) * 4).astype(np.int32)], False, 255, PEN, cv2.LINE_AA, shift=2)
    return ink.astype(np.float32) / 255.0


def _on_canvas(ink, rng, size):
    width, height = size
    scale = min(1.0, (width - 4) / ink.shape[1], (height - 4) / ink.shape[0])
    if scale < 1.0:
        ink = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    page = np.zeros((height, width), np.float32)
    top = int(rng.integers(0, height - ink.shape[0] + 1))
    left = int(rng.integers(0, width - ink.shape[1] + 1))
    page[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return encode_png(page, "white")


def single_digits(rng, count):
    """Yield (png, digit, (low, high)): `count` drawings of every way of every digit, at each size band."""
    for low, high in SIZES:
        for digit, ways in GLYPHS.items():
            for variant in range(len(ways)):
                for _ in range(count):
                    ink = draw(digit, rng, rng.uniform(low, high), variant)
                    yield _on_canvas(ink, rng, (CANVAS_SIDE,) * 2), digit, (low, high)


def numbers(rng, count):
    """Yield (png, digit string): `count` numbers of 2-6 digits written with gaps of 8-40 px on the number canvas."""
    for _ in range(count):
        text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 7))))
        height = rng.uniform(90, 200)
        inks = [draw(int(c), rng, height * rng.uniform(0.9, 1.05)) for c in text]
        line = np.zeros((max(i.shape[0] for i in inks) + 10, sum(i.shape[1] + 40 for i in inks)), np.float32)
        left = 0
        for ink in inks:
            top = int(rng.integers(0, line.shape[0] - ink.shape[0] + 1))
            region = line[top : top + ink.shape[0], left : left + ink.shape[1]]
            np.maximum(region, ink, out=region)
            left += ink.shape[1] + int(rng.uniform(8, 40)) - 2 * (PEN // 2)  # gap between the strokes, not the boxes
        yield _on_canvas(line[:, : left + PEN], rng, NUMBER_CANVAS), text
