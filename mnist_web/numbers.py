"""Generated numbers for evaluation: several MNIST test digits drawn on a wide canvas, or photographed.

Built differently from the training data (which draws one digit per canvas): the number has its own
size, slant and baseline, its digits come closer than a pen-width or overlap in their boxes, strokes are
sometimes broken, specks are strewn; photos put the ink on rendered paper under uneven light; some numbers
hold a freehand drawing that is no digit in one digit's place. Everything is drawn from the given seed, so a set
is the same on every run.
"""

import dataclasses

import cv2
import numpy as np

from . import exif
from .canvas import BACKGROUNDS, draw_ink, encode_png
from .not_digits import FREEHAND_KINDS, freehand_drawing

NOT_A_DIGIT_MARK = "x"  # the place of the drawing that is no digit, in such a number's text

NUMBER_CANVAS = (840, 280)  # width, height: the page's number canvas, three times the digit canvas
MARGIN = 8
# Desks a photographed sheet may lie on (BGR, 0..1): light and dark wood, grey, black, dark blue, white.
DESKS = (
    (0.25, 0.45, 0.65),
    (0.1, 0.2, 0.33),
    (0.45, 0.45, 0.45),
    (0.07, 0.07, 0.08),
    (0.35, 0.2, 0.12),
    (0.85, 0.85, 0.82),
)
# Share of desk photos straightened by an app instead: the sheet fills the frame, black where it had no pixels.
STRAIGHTENED = 0.25


def _slant(ink, shear):
    """Lean the ink right (shear > 0) or left, as handwriting does, keeping its baseline."""
    height, width = ink.shape
    pad = int(abs(shear) * height) + 1
    matrix = np.float32([[1, -shear, pad + shear * height], [0, 1, 0]])
    return cv2.warpAffine(ink, matrix, (width + 2 * pad, height), flags=cv2.INTER_LINEAR)


def _bounds(ink, level=0.05):
    rows = np.flatnonzero((ink > level).any(axis=1))
    cols = np.flatnonzero((ink > level).any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _crop(ink, level=0.05):
    return ink[_bounds(ink, level)]


def _alone(strokes, top, left, shape):
    """`strokes` alone at (top, left) of an empty page of `shape`; what falls outside the page is left out."""
    page = np.zeros(shape, np.float32)
    first_row, first_col = max(top, 0), max(left, 0)
    last_row, last_col = min(top + strokes.shape[0], shape[0]), min(left + strokes.shape[1], shape[1])
    page[first_row:last_row, first_col:last_col] = strokes[
        first_row - top : last_row - top, first_col - left : last_col - left
    ]
    return page


def _break_stroke(ink, rng):
    """Erase a short gap right across a stroke, as a pen lifted for a moment leaves."""
    mask = (ink > 0.5).astype(np.uint8)
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    # Points on a stroke's middle line; the stroke runs along the line its neighbouring middle points make.
    ridge = np.argwhere((depth >= cv2.dilate(depth, np.ones((3, 3), np.uint8)) - 0.5) & (depth > 1))
    if len(ridge) < 3:
        return ink
    row, col = ridge[rng.integers(len(ridge))]
    half = float(depth[row, col]) + 2
    near = ridge[np.hypot(*(ridge - (row, col)).T) <= 2 * half].astype(np.float32)
    _, _, axes = np.linalg.svd(near - near.mean(axis=0), full_matrices=False)
    across = np.array([-axes[0][1], axes[0][0]])  # (drow, dcol) perpendicular to the stroke
    start = (int(round(col - across[1] * half)), int(round(row - across[0] * half)))
    end = (int(round(col + across[1] * half)), int(round(row + across[0] * half)))
    out = ink.copy()
    cv2.line(out, start, end, 0.0, int(rng.integers(2, 6)))
    return out


@dataclasses.dataclass(frozen=True)
class Drawing:
    """Ink drawn already (a freehand drawing on a canvas, 0..1) to stand in a number in a digit's place."""

    ink: np.ndarray

    def at_size(self, longest):
        """The drawing's strokes scaled so that their longer side is `longest` pixels."""
        ink = _crop(self.ink)
        scale = longest / max(ink.shape)
        size = (max(2, round(ink.shape[1] * scale)), max(2, round(ink.shape[0] * scale)))
        return cv2.resize(ink, size, interpolation=cv2.INTER_AREA)


def _place(strip, ink, left_limit, gap, top):
    """Left edge for `ink` (rows from `top`) so that it stays at least `gap` pixels clear of `strip`'s ink."""
    height, width = ink.shape
    band = strip[top : top + height] > 0.05
    if not band.any():
        return left_limit
    grown = cv2.dilate(band.astype(np.uint8), np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)) > 0
    has_prev = grown.any(axis=1)
    rightmost = np.where(has_prev, grown.shape[1] - 1 - np.argmax(grown[:, ::-1], axis=1), -1)
    mine = ink > 0.05
    has_mine = mine.any(axis=1)
    leftmost = np.argmax(mine, axis=1)
    both = has_prev & has_mine
    # Rows above or below the neighbours' ink: also keep the diagonal clear (the dilation covers it).
    needed = int((rightmost[both] - leftmost[both]).max()) + 1 if both.any() else left_limit
    return max(needed, left_limit)


def draw_number(digit_images, rng, size=NUMBER_CANVAS, apart=False):
    """Draw digits side by side as one handwritten number: float32 ink (height x width), 0..1.

    With `apart`, answer (ink, pages) instead: pages holds, for each digit in order, its own strokes alone where
    they lie in the number (the number's segmentation, known; the specks are in no digit's page). The draw is the
    same either way.
    """
    width, height = size
    count = len(digit_images)
    line = rng.uniform(0.4, 0.85) * height
    for _ in range(4):
        ink, placed = _draw_line(digit_images, rng, line, count)
        if ink.shape[1] <= width - 2 * MARGIN and ink.shape[0] <= height - 2 * MARGIN:
            break
        line *= min((width - 2 * MARGIN) / ink.shape[1], (height - 2 * MARGIN) / ink.shape[0]) * 0.97
    drawn = ink.shape
    if ink.shape[1] > width - 2 * MARGIN or ink.shape[0] > height - 2 * MARGIN:
        fit = min((width - 2 * MARGIN) / ink.shape[1], (height - 2 * MARGIN) / ink.shape[0])
        ink = cv2.resize(ink, (int(ink.shape[1] * fit), int(ink.shape[0] * fit)), interpolation=cv2.INTER_AREA)
    top = int(rng.integers(MARGIN, height - MARGIN - ink.shape[0] + 1))
    left = int(rng.integers(MARGIN, width - MARGIN - ink.shape[1] + 1))
    page = _alone(ink, top, left, (height, width))
    _strew_specks(page, rng)
    if not apart:
        return page
    pages = []
    for strokes, (row, col) in placed:
        own = _alone(strokes, row, col, drawn)
        if own.shape != ink.shape:
            own = cv2.resize(own, ink.shape[::-1], interpolation=cv2.INTER_AREA)
        pages.append(_alone(own, top, left, page.shape))
    return page, pages


def _draw_line(digit_images, rng, line, count):
    shear = rng.uniform(-0.3, 0.3)
    inks = []
    for image in digit_images:
        size = line * rng.uniform(0.8, 1.1)
        ink = image.at_size(size) if isinstance(image, Drawing) else draw_ink(image, rng, size)
        if rng.random() < 0.3:
            ink = _break_stroke(ink, rng)
        inks.append(_crop(_slant(ink, shear)))
    tallest = max(ink.shape[0] for ink in inks)
    strip_height = int(tallest * 1.4) + 4
    strip = np.zeros((strip_height, sum(ink.shape[1] for ink in inks) + int(line) * count + 8), np.float32)
    baseline = int(tallest * 1.2)
    right = 0
    placed = []
    for i, ink in enumerate(inks):
        top = int(np.clip(baseline - ink.shape[0] + rng.normal(0, 0.05 * line), 0, strip_height - ink.shape[0]))
        if i == 0:
            left = 2
        else:
            kind = rng.random()
            # Wide gaps, gaps of a few pixels, and interlocked boxes (only the ink is kept clear).
            gap = int(rng.uniform(0.12, 0.45) * line) if kind < 0.4 else int(rng.integers(2, 9))
            left = _place(strip, ink, right + gap if kind < 0.4 else right - int(0.3 * ink.shape[1]), gap, top)
            # Each digit starts right of the one before: one interlocked beside a narrow digit, clear of its rows,
            # could start left of it (even left of the strip).
            left = max(left, placed[-1][1][1] + 1)
        strip[top : top + ink.shape[0], left : left + ink.shape[1]] = np.maximum(
            strip[top : top + ink.shape[0], left : left + ink.shape[1]], ink
        )
        right = max(right, left + ink.shape[1])
        placed.append((ink, (top, left)))
    rows, cols = _bounds(strip)
    return strip[rows, cols], [(ink, (top - rows.start, left - cols.start)) for ink, (top, left) in placed]


def _strew_specks(page, rng):
    """Add a few dots away from the strokes: dust, a pen touching down (drawn in place)."""
    if rng.random() >= 0.3:
        return
    clear = cv2.dilate((page > 0.05).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    for _ in range(int(rng.integers(1, 4))):
        row, col = int(rng.integers(4, page.shape[0] - 4)), int(rng.integers(4, page.shape[1] - 4))
        if clear[row, col]:
            cv2.circle(page, (col, row), int(rng.integers(1, 4)), 1.0, -1)


def _pick(images, labels, rng, lengths):
    count = int(rng.integers(lengths[0], lengths[1] + 1))
    chosen = rng.integers(len(images), size=count)
    return images[chosen], "".join(str(int(labels[i])) for i in chosen)


def _canvas_numbers(images, labels, count, seed, lengths, apart):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        digits, text = _pick(images, labels, rng, lengths)
        drawn = draw_number(digits, rng, apart=apart)
        yield drawn, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], text


def canvas_numbers(images, labels, count, seed, lengths=(2, 6)):
    """Yield `count` (png_bytes, digit string) numbers drawn on an 840x280 canvas; deterministic for a seed."""
    for ink, background, text in _canvas_numbers(images, labels, count, seed, lengths, apart=False):
        yield encode_png(ink, background), text


def canvas_number_digits(images, labels, count, seed, lengths=(2, 6)):
    """Yield canvas_numbers' numbers as (digit string, [PNG bytes of each digit's own strokes alone, in order])."""
    for (_, pages), background, text in _canvas_numbers(images, labels, count, seed, lengths, apart=True):
        yield text, [encode_png(page, background) for page in pages]


def numbers_with_a_non_digit(images, labels, count, seed, lengths=(2, 6)):
    """Yield `count` (png_bytes, text) canvas numbers with one digit's place taken by a freehand drawing that is
    no digit (a letter, a symbol, a doodle: not_digits.FREEHAND_KINDS), marked NOT_A_DIGIT_MARK in the text."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        digits, text = _pick(images, labels, rng, lengths)
        place = int(rng.integers(len(text)))
        drawing = Drawing(freehand_drawing(FREEHAND_KINDS[int(rng.integers(len(FREEHAND_KINDS)))], rng))
        parts = [drawing if k == place else digit for k, digit in enumerate(digits)]
        ink = draw_number(parts, rng)
        text = text[:place] + NOT_A_DIGIT_MARK + text[place + 1 :]
        yield encode_png(ink, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]), text


def paper_photos(images, labels, count, seed, lengths=(1, 6), desk=False):
    """Yield `count` (jpeg_bytes, digit string) photos of numbers (or single digits) written on paper.

    The sheet fills the picture; with `desk`, the desk it lies on shows around it (or, on some, the black
    corners an app leaves when it straightens a picture).
    """
    rng = np.random.default_rng(seed)
    for _ in range(count):
        digits, text = _pick(images, labels, rng, lengths)
        yield photograph(digits, rng, desk), text


def photograph(digit_images, rng, desk=False):
    """Write the digits on rendered paper and photograph them: JPEG bytes, EXIF orientation on some."""
    long_side = int(rng.choice([1024, 1600, 2048, 3000, 4000], p=[0.3, 0.25, 0.2, 0.15, 0.1]))
    landscape = len(digit_images) > 2 or rng.random() < 0.5
    width, height = (long_side, long_side * 3 // 4) if landscape else (long_side * 3 // 4, long_side)
    # Render at a moderate size, then scale up: a phone's extra pixels add blur, not detail.
    work = min(1.0, 1280 / long_side)
    work_size = (round(width * work), round(height * work))
    ink = _written_ink(digit_images, rng, work_size)
    pixels = _paper(rng, work_size)
    colour = (
        np.array([0.55, 0.25, 0.08]) * rng.uniform(0.7, 1.2)
        if rng.random() < 0.5
        else np.array([0.1, 0.1, 0.12]) * rng.uniform(0.5, 2.0)
    )
    # Ink bleeds a little into the paper and is never quite opaque.
    alpha = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.5, 1.3)) * rng.uniform(0.8, 0.97)
    pixels = pixels * (1 - alpha[..., None]) + pixels * colour[None, None, :] * alpha[..., None]
    pixels = _on_desk(pixels, rng) if desk else _perspective(pixels, rng)
    pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.4, 1.4))
    pixels = pixels + rng.normal(0, rng.uniform(0.005, 0.02), pixels.shape[:2])[..., None]  # sensor noise
    pixels = np.clip(pixels * 255, 0, 255).astype(np.uint8)
    if (width, height) != work_size:
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)
    orientation = int(rng.choice([1, 3, 6, 8], p=[0.6, 0.1, 0.15, 0.15]))
    pixels = exif.stored(pixels, orientation)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 93))])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    jpeg = jpeg.tobytes()
    return exif.with_orientation(jpeg, orientation) if orientation != 1 else jpeg


def _written_ink(digit_images, rng, size):
    """The number's ink on a page of `size`, covering a sensible part of it."""
    width, height = size
    count = len(digit_images)
    span = rng.uniform(0.4, 0.8) if count > 1 else rng.uniform(0.15, 0.4)
    region = (max(60, int(width * span)), max(40, int(width * span / max(count, 1.5) * 1.3)))
    region = (region[0], min(region[1], int(height * 0.8)))
    ink = _crop(draw_number(digit_images, rng, region))
    page = np.zeros((height, width), np.float32)
    top = int(rng.integers(int(0.1 * height), max(int(0.1 * height) + 1, height - ink.shape[0] - int(0.1 * height))))
    left = int(rng.integers(int(0.1 * width), max(int(0.1 * width) + 1, width - ink.shape[1] - int(0.1 * width))))
    page[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return page


def _paper(rng, size):
    """Off-white or grey paper under uneven light, with a soft shadow and grain: float BGR 0..1."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs, ys = xs / width, ys / height
    tint = rng.uniform(0.72, 0.95) * np.array([rng.uniform(0.92, 1.0), rng.uniform(0.96, 1.0), 1.0])
    light = 1.0 + rng.uniform(-0.25, 0.25) * (xs - 0.5) + rng.uniform(-0.25, 0.25) * (ys - 0.5)
    cx, cy = rng.uniform(0, 1, 2)
    light = light - rng.uniform(0, 0.2) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / rng.uniform(0.05, 0.3))
    # A soft shadow (a hand or the phone) across part of the page.
    angle = rng.uniform(0, 2 * np.pi)
    edge = (xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle) - rng.uniform(-0.1, 0.5)
    light = light * (1 - rng.uniform(0.0, 0.35) / (1 + np.exp(-edge / rng.uniform(0.03, 0.12))))
    grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), rng.uniform(0.6, 1.5))
    grain = grain / (grain.std() + 1e-6) * rng.uniform(0.008, 0.03)
    page = (light + grain)[..., None] * tint[None, None, :]
    return page.astype(np.float32)


def _on_desk(pixels, rng):
    """The sheet lying on a desk that shows around it, seen at a slight angle; or straightened, black around."""
    height, width = pixels.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    if rng.random() < STRAIGHTENED:
        moved = corners + rng.uniform(-0.05, 0.05, corners.shape) * [width, height]
        matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
        return cv2.warpPerspective(pixels, matrix, (width, height), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inward = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    moved = corners + inward * rng.uniform(-0.03, 0.15, corners.shape) * [width, height]  # a corner may be cut off
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    sheet = cv2.warpPerspective(pixels, matrix, (width, height))
    covered = cv2.warpPerspective(np.ones((height, width), np.float32), matrix, (width, height))[..., None]
    # The desk: a colour, lit across like the sheet, with a grain drawn along one direction (wood, fabric).
    colour = np.array(DESKS[int(rng.integers(len(DESKS)))]) * rng.uniform(0.8, 1.15)
    streaks = cv2.resize(rng.normal(0, 1, (8, int(rng.integers(20, 120)))).astype(np.float32), (width, height))
    streaks = streaks if rng.random() < 0.5 else cv2.resize(streaks.T.copy(), (width, height))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 1 + rng.uniform(-0.2, 0.2) * (xs / width - 0.5) + rng.uniform(-0.2, 0.2) * (ys / height - 0.5)
    desk = (light + rng.uniform(0, 0.08) * streaks)[..., None] * colour[None, None, :]
    return (sheet * covered + desk * (1 - covered)).astype(np.float32)


def _perspective(pixels, rng):
    """A slight perspective, as from a phone not held quite square to the page."""
    height, width = pixels.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners + rng.uniform(-0.04, 0.04, corners.shape).astype(np.float32) * [width, height]
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    return cv2.warpPerspective(pixels, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
