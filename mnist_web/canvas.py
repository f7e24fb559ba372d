"""Render MNIST digits the way a browser canvas delivers a drawing: 280x280, black ink, any size and place.

Used to build the canvas-like evaluation set (from the MNIST test digits) and, from the training digits
only, to show the model during training what the preprocessing makes of real drawings.
"""

import cv2
import numpy as np

from .errors import NoDigitFound
from .preprocessing import extract_ink, normalize_ink

CANVAS_SIDE = 280
BACKGROUNDS = ("transparent", "white")


def render_drawing(digit, rng, side=CANVAS_SIDE):
    """Draw one 28x28 MNIST digit as canvas ink (float32 0..1, side x side), randomly sized and placed."""
    longest = float(np.exp(rng.uniform(np.log(28), np.log(0.92 * side))))
    return place_on_page(draw_ink(digit, rng, longest), rng, side)


def place_on_page(ink, rng, side=CANVAS_SIDE, shrink=cv2.INTER_AREA):
    """Put cropped ink at a random place on an empty side x side page (shrunk by `shrink` first if it does not fit)."""
    if max(ink.shape) > side:
        fit = side / max(ink.shape)
        ink = cv2.resize(ink, (max(1, int(ink.shape[1] * fit)), max(1, int(ink.shape[0] * fit))), interpolation=shrink)

    page = np.zeros((side, side), np.float32)
    top = int(rng.integers(0, side - ink.shape[0] + 1))
    left = int(rng.integers(0, side - ink.shape[1] + 1))
    page[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return page


def digit_strokes(digit):
    """A 28x28 MNIST digit as float32 0..1, cropped to its strokes with a 2-px margin."""
    digit = digit.astype(np.float32) / 255.0 if digit.dtype == np.uint8 else digit.astype(np.float32)
    rows = np.flatnonzero((digit > 0.1).any(axis=1))
    cols = np.flatnonzero((digit > 0.1).any(axis=0))
    return np.pad(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 2)


def draw_ink(digit, rng, longest):
    """Draw one 28x28 MNIST digit as pen ink about `longest` pixels tall or wide, cropped to its strokes."""
    crop = digit_strokes(digit)
    zoom = longest / max(crop.shape)
    stretch = rng.uniform(0.85, 1.15)
    size = (max(2, round(crop.shape[1] * zoom * stretch)), max(2, round(crop.shape[0] * zoom)))
    smooth = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
    # A canvas stroke is solid with a soft edge a pixel or two wide; the threshold sets the pen's width.
    threshold = rng.uniform(0.3, 0.65)
    pen = rng.choice(("same", "thicker", "thinner"))
    if pen == "thicker":
        radius = max(1, round(zoom * rng.uniform(0.2, 1.0)))
        ink = cv2.dilate(np.pad(_pen(smooth, threshold), radius), _disk(radius))
    else:
        erosion = round(zoom * rng.uniform(0.2, 0.6)) if pen == "thinner" else 0
        # A pen stroke on a canvas is never broken: where a thin pen would split one of the digit's
        # strokes (MNIST strokes fade in places), draw with a wider pen instead.
        whole = _pieces(smooth > 0.3, zoom)
        for _ in range(8):
            ink = _pen(smooth, threshold)
            if erosion > 0:
                eroded = cv2.erode(ink, _disk(erosion))
                ink = eroded if eroded.sum() > 0.4 * ink.sum() else ink
            if _pieces(ink > 0.5, zoom) <= whole or (erosion == 0 and threshold <= 0.3):
                break
            erosion, threshold = erosion // 2, max(0.3, threshold - 0.1)

    ink = _rotate(ink, rng.uniform(-12.0, 12.0))
    rows = np.flatnonzero((ink > 0.05).any(axis=1))
    cols = np.flatnonzero((ink > 0.05).any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _pen(smooth, threshold):
    return np.clip((smooth - threshold) * 6.0 + 0.5, 0.0, 1.0)


def _pieces(mask, zoom):
    """Connected strokes in a mask, ignoring specks smaller than one MNIST pixel."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= max(2.0, zoom * zoom)).sum())


def _disk(radius):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _rotate(ink, degrees):
    pad = int(0.3 * max(ink.shape)) + 2
    ink = np.pad(ink, pad)
    centre = (ink.shape[1] / 2.0, ink.shape[0] / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(ink, matrix, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_LINEAR)


def encode_png(ink, background):
    """Encode canvas ink as the PNG a browser would send: black ink on a transparent or white page."""
    alpha = np.round(ink * 255).astype(np.uint8)
    if background == "transparent":
        pixels = np.dstack([np.zeros_like(alpha)] * 3 + [alpha])
    elif background == "white":
        paper = 255 - alpha
        pixels = np.dstack([paper, paper, paper, np.full_like(alpha, 255)])
    else:
        raise ValueError(f"unknown background {background!r}")
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def canvas_set(images, labels, seed):
    """Yield (png_bytes, label) for each digit, drawn on a 280x280 canvas; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    for digit, label in zip(images, labels, strict=True):
        ink = render_drawing(digit, rng)
        yield encode_png(ink, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]), int(label)


def canvas_model_inputs(images, seed):
    """Render each digit on a canvas and preprocess it as the service would (28x28 float32 each)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), 28, 28), np.float32)
    for i, digit in enumerate(images):
        # Canvas ink is already white-on-black strength; round-trip through 8 bits like a PNG would.
        ink = np.round(render_drawing(digit, rng) * 255) / 255
        try:
            out[i] = normalize_ink(extract_ink(1.0 - ink))
        except NoDigitFound:  # a stroke eroded to specks: keep the digit as MNIST has it
            out[i] = digit / 255.0
    return out
