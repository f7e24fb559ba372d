"""Drawings traced along a centre line with a round pen, as a hand draws on the page.

Shared by the training's pen-traced non-digits (mnist_web/not_digits.py) and pen-traced digits
(mnist_web/canvas.py), so that a uniform round pen is never by itself a sign of either.
"""

import contextlib

import cv2
import numpy as np

from .canvas import CANVAS_SIDE, digit_strokes, place_on_page
from .errors import NoDigitFound
from .preprocessing import extract_ink, normalize_ink

PEN_WIDTHS = (10, 26)  # px at canvas scale; the page's pen is 18 px
LONGEST = (70, 0.85 * CANVAS_SIDE)  # px, the drawing's longer side
DIGIT_STRETCH = (0.85, 1.15)  # a digit's width, as canvas.draw_ink stretches it
CENTRE_LINE_SIDE = 200  # px: an MNIST digit is enlarged to this before it is thinned


def hand_wobble(ink, rng):
    """Bend a perfect drawing the way a hand bends it: a smooth random displacement of a few percent."""
    height, width = ink.shape
    strength = rng.uniform(0.01, 0.04) * max(height, width)
    knots = int(rng.integers(3, 7))  # a coarse random grid, smoothly enlarged: bends a few times per drawing
    field = [cv2.resize(rng.uniform(-strength, strength, (knots, knots)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC) for _ in range(2)]  # fmt: skip
    rows, cols = np.indices((height, width), np.float32)
    return cv2.remap(ink, cols + field[0], rows + field[1], cv2.INTER_LINEAR)


def thin(mask):
    """A boolean mask thinned to 1-px lines (Zhang-Suen, both sub-iterations vectorised)."""
    img = np.pad(mask.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            n = [img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:],
                 img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]]  # fmt: skip
            neighbours = sum(x.astype(np.int32) for x in n)
            transitions = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            north, east, south, west = n[0], n[2], n[4], n[6]
            if step == 0:
                side = (north * east * south == 0) & (east * south * west == 0)
            else:
                side = (north * east * west == 0) & (north * south * west == 0)
            remove = (img[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                changed = True
                img = img.copy()
                img[1:-1, 1:-1][remove] = 0
    return img[1:-1, 1:-1].astype(bool)


def trace_centre_line(line, rng, stretch, longest=LONGEST, pen_widths=PEN_WIDTHS):
    """A 1-px centre line bent by hand and traced with a round pen: ink (float32 0..1) cropped, or None if empty.

    The drawing's longer side is drawn from `longest` (px, log-uniform), its width stretched by a factor from
    `stretch`, and the pen's width from `pen_widths` (px at that size).
    """
    line = hand_wobble(line.astype(np.float32), rng) > 0.25
    rows, cols = np.flatnonzero(line.any(1)), np.flatnonzero(line.any(0))
    if rows.size == 0:
        return None
    line = line[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    zoom = float(np.exp(rng.uniform(*np.log(longest)))) / max(line.shape)
    radius = max(1, round(rng.uniform(*pen_widths) / zoom / 2))  # the pen, at the line's scale
    line = np.pad(line, radius + 2).astype(np.uint8)
    ink = cv2.dilate(line, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)).astype(np.float32)
    size = (max(2, round(ink.shape[1] * zoom * rng.uniform(*stretch))), max(2, round(ink.shape[0] * zoom)))
    ink = cv2.resize(ink, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    return np.clip(ink, 0, 1)


def digit_centre_line(digit):
    """An MNIST digit's centre line: cropped, enlarged smoothly, cut at half ink and thinned to 1 px."""
    crop = digit_strokes(digit)
    zoom = CENTRE_LINE_SIDE / max(crop.shape)
    size = (max(2, round(crop.shape[1] * zoom)), max(2, round(crop.shape[0] * zoom)))
    return thin(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC) > 0.45)


def traced_digit_model_inputs(images, seed):
    """Each MNIST digit's centre line traced with a round pen on a canvas, preprocessed as the service would.

    A skeleton can lose a digit's shape (a filled loop thins to a line), so callers keep only those the model
    still reads as their digit.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), 28, 28), np.float32)
    for i, digit in enumerate(images):
        out[i] = digit / 255.0  # kept where nothing is left of the line
        ink = trace_centre_line(digit_centre_line(digit), rng, DIGIT_STRETCH)
        if ink is not None:
            with contextlib.suppress(NoDigitFound):
                out[i] = normalize_ink(extract_ink(1.0 - np.round(place_on_page(ink, rng) * 255) / 255))
    return out
