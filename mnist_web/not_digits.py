"""Drawings that are not digits, on a 280x280 canvas: the negatives the model learns to refuse.

Two generators, built differently on purpose, so that the evaluation measures what the model learnt
and not how one generator draws:
- training_drawing(): glyphs of OpenCV's Hershey stroke fonts and Debian's DejaVu TrueType fonts,
  geometric shapes, scribbles, hatching and compositions of them (train_keras.py; validation uses other seeds);
  traced_drawing(): those fonts' glyph centre lines and doodles, bent and traced with a round pen.
- evaluation_drawings(): hand-written stroke skeletons of letters, symbols and doodles, drawn with a
  wobbling pen the way a mouse or finger draws them on the page (`flask evaluate`, never trained on).

Characters that are written like a digit (O o D for 0, I l i j ! | / ( for 1, S s $ for 5, Z z for 2,
b G for 6, g q for 9) are left out of both: refusing them would mean refusing digits.
"""

import glob

import cv2
import numpy as np

from .canvas import BACKGROUNDS, CANVAS_SIDE, encode_png, place_on_page
from .pen_trace import hand_wobble, thin, trace_centre_line

TRAINING_LETTERS = "ABCEFHJKLMNPQRTUVWXYacdefhkmnprtuvwxy"
TRAINING_SYMBOLS = "#%&*+=?@<>^~{}"
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
TRUETYPE_FONTS = "/usr/share/fonts/truetype/dejavu/*.ttf"
# Pen widths on the 280-pixel canvas: the page draws with 18 px; fingers and other pages differ.
PEN_WIDTHS = (6, 30)
# Share of training drawings bent by a smooth random displacement, as a hand bends a font's perfect lines.
HAND_WOBBLE_SHARE = 0.6


# ---- shared drawing helpers -----------------------------------------------------------------------


def _pen(rng):
    return int(rng.integers(*PEN_WIDTHS))


def _place(ink, rng, side=CANVAS_SIDE, keep_size=False):
    """Crop ink to its strokes, scale it to a random size (unless keep_size) and put it anywhere on the canvas."""
    ink = _crop(ink)
    if ink is None:
        return np.zeros((side, side), np.float32)
    if not keep_size:
        longest = float(np.exp(rng.uniform(np.log(60), np.log(0.92 * side))))
        zoom = longest / max(ink.shape)
        aspect = rng.uniform(0.75, 1.3)
        size = (max(2, round(ink.shape[1] * zoom * aspect)), max(2, round(ink.shape[0] * zoom)))
        ink = cv2.resize(ink, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    return place_on_page(ink, rng, side, shrink=cv2.INTER_LINEAR)


def _crop(ink):
    rows = np.flatnonzero((ink > 0.05).any(axis=1))
    cols = np.flatnonzero((ink > 0.05).any(axis=0))
    if rows.size == 0:
        return None
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _turn(ink, degrees, shear=0.0):
    pad = int(0.4 * max(ink.shape)) + 2
    ink = np.pad(ink, pad)
    centre = (ink.shape[1] / 2.0, ink.shape[0] / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    matrix[0, 1] += shear
    matrix[0, 2] -= shear * centre[1]
    return cv2.warpAffine(ink, matrix, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_LINEAR)


def _lines(canvas, strokes, width, closed=False):
    for points in strokes:
        pts = np.round(np.asarray(points) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], closed, 255, width, cv2.LINE_AA, shift=4)
    return canvas


# ---- training negatives: fonts, shapes, scribbles --------------------------------------------------


def _hershey_glyphs(rng, work=400):
    count = int(rng.choice((1, 1, 1, 1, 2, 3)))
    text = "".join(rng.choice(list(TRAINING_LETTERS + TRAINING_SYMBOLS), count))
    font = int(rng.choice(HERSHEY_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.25 else 0)
    scale = rng.uniform(2.5, 6.0)
    (width, height), _ = cv2.getTextSize(text, font, scale, 1)
    fit = min(1.0, 0.8 * work / max(width, height, 1))
    thickness = max(2, int(_pen(rng) * max(height, width) * fit / 200))
    canvas = np.zeros((work, work), np.uint8)
    origin = (int(0.1 * work), int(0.5 * work + height * fit / 2))
    cv2.putText(canvas, text, origin, font, scale * fit, 255, thickness, cv2.LINE_AA)
    return _turn(canvas, rng.uniform(-15, 15), rng.uniform(-0.3, 0.3))


def _truetype_glyph(rng, fonts):
    from PIL import Image, ImageDraw, ImageFont  # training only; the service does not need Pillow

    text = str(rng.choice(list(TRAINING_LETTERS + TRAINING_SYMBOLS)))
    font = ImageFont.truetype(str(rng.choice(fonts)), int(rng.integers(120, 220)))
    image = Image.new("L", (400, 400), 0)
    outline = int(rng.integers(0, 6))
    ImageDraw.Draw(image).text((60, 40), text, fill=255, font=font, stroke_width=outline, stroke_fill=255)
    return _turn(np.asarray(image, np.uint8), rng.uniform(-15, 15), rng.uniform(-0.3, 0.3))


def _polygon(rng, work=300):
    kind = rng.choice(("triangle", "square", "rectangle", "diamond", "pentagon", "star", "hexagon"))
    corners = {"triangle": 3, "square": 4, "rectangle": 4, "diamond": 4, "pentagon": 5, "star": 10, "hexagon": 6}
    n = corners[kind]
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + (np.pi / 4 if kind in ("square", "rectangle") else 0)
    radius = np.where(np.arange(n) % 2 == 1, 0.45, 1.0) if kind == "star" else np.ones(n)
    points = np.stack([np.cos(angles) * radius, np.sin(angles) * radius], axis=1)
    if kind == "rectangle":
        points[:, 0] *= rng.uniform(1.5, 2.5)
    points = points * 0.3 * work / np.abs(points).max() + work / 2
    points += rng.normal(0, 0.02 * work, points.shape)
    canvas = np.zeros((work, work), np.uint8)
    if rng.random() < 0.4:
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 255, cv2.LINE_AA)
    else:
        _lines(canvas, [points], _pen(rng), closed=True)
    return _turn(canvas, rng.uniform(-30, 30))


def _blob(rng, work=300):
    canvas = np.zeros((work, work), np.uint8)
    axes = (int(rng.integers(40, 120)), int(rng.integers(40, 120)))
    cv2.ellipse(canvas, (work // 2, work // 2), axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
    return canvas


def _smooth_path(points, steps=12):
    """A Catmull-Rom curve through the points."""
    points = np.asarray(points, np.float64)
    padded = np.vstack([points[0], points, points[-1]])
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        out.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    out.append(points[-1:])
    return np.vstack(out)


def _scribble(rng, work=300):
    count = int(rng.integers(5, 16))
    points = rng.uniform(0.15 * work, 0.85 * work, (count, 2))
    canvas = np.zeros((work, work), np.uint8)
    return _lines(canvas, [_smooth_path(points)], _pen(rng))


def _hatching(rng, work=300):
    canvas = np.zeros((work, work), np.uint8)
    strokes = []
    for angle in rng.choice([0, 45, 90, 135], int(rng.integers(1, 3)), replace=False):
        n = int(rng.integers(3, 8))
        for offset in np.linspace(-0.3, 0.3, n) * work:
            direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
            normal = np.array([-direction[1], direction[0]])
            centre = work / 2 + normal * offset
            strokes.append([centre - direction * 0.35 * work, centre + direction * 0.35 * work])
    return _lines(canvas, strokes, max(4, _pen(rng) // 2))


def _zigzag_or_spiral(rng, work=300):
    canvas = np.zeros((work, work), np.uint8)
    if rng.random() < 0.5:
        n = int(rng.integers(4, 10))
        xs = np.linspace(0.1, 0.9, n) * work
        ys = np.where(np.arange(n) % 2, 0.35, 0.65) * work + rng.normal(0, 8, n)
        points = np.stack([xs, ys], axis=1)
    else:
        t = np.linspace(0, rng.uniform(3, 6) * np.pi, 200)
        r = t / t.max() * 0.4 * work
        points = np.stack([work / 2 + r * np.cos(t), work / 2 + r * np.sin(t)], axis=1)
    return _lines(canvas, [points], _pen(rng))


def _composition(rng, work=300):
    """Doodles people draw instead of digits: faces, crosses, ticks, arrows, houses, suns, grids, hearts."""
    kind = rng.choice(("face", "cross", "tick", "arrow", "house", "sun", "grid", "heart", "dash"))
    c, r = work / 2, 0.35 * work
    t = np.linspace(0, 2 * np.pi, 60)
    circle = np.stack([c + r * np.cos(t), c + r * np.sin(t)], axis=1)
    strokes = {
        "face": lambda: [
            circle,
            [[c - r / 2.5, c - r / 3], [c - r / 2.5 + 1, c - r / 3 + 1]],
            [[c + r / 2.5, c - r / 3], [c + r / 2.5 + 1, c - r / 3 + 1]],
            np.stack([c + r / 2 * np.cos(t[5:25]), c + r / 4 + r / 4 * np.sin(t[5:25])], axis=1),
        ],
        "cross": lambda: [[[c - r, c - r], [c + r, c + r]], [[c + r, c - r], [c - r, c + r]]],
        "tick": lambda: [[[c - r, c], [c - r / 3, c + r * 0.7], [c + r, c - r]]],
        "arrow": lambda: [[[c - r, c], [c + r, c]], [[c + r / 2, c - r / 2], [c + r, c], [c + r / 2, c + r / 2]]],
        "house": lambda: [
            [[c - r, c], [c - r, c + r], [c + r, c + r], [c + r, c], [c - r, c]],
            [[c - r, c], [c, c - r], [c + r, c]],
        ],
        "sun": lambda: (
            [circle * 0.5 + c * 0.5]
            + [
                [[c + 0.6 * r * np.cos(a), c + 0.6 * r * np.sin(a)], [c + r * np.cos(a), c + r * np.sin(a)]]
                for a in t[::8]
            ]
        ),
        "grid": lambda: [
            [[c - r, c - r / 3], [c + r, c - r / 3]],
            [[c - r, c + r / 3], [c + r, c + r / 3]],
            [[c - r / 3, c - r], [c - r / 3, c + r]],
            [[c + r / 3, c - r], [c + r / 3, c + r]],
        ],
        "heart": lambda: [
            np.stack(
                [
                    c + r * 0.06 * 16 * np.sin(t) ** 3,
                    c - r * 0.06 * (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)),
                ],
                axis=1,
            )
        ],
        "dash": lambda: [[[c - r, c], [c + r, c + rng.normal(0, 0.1 * r)]]],
    }[kind]()
    strokes = [np.asarray(s, np.float64) + rng.normal(0, 0.015 * work, np.shape(s)) for s in strokes]
    canvas = _lines(np.zeros((work, work), np.uint8), strokes, _pen(rng))
    return _turn(canvas, rng.uniform(-20, 20))


TRAINING_KINDS = (
    ("hershey", 0.30),
    ("truetype", 0.15),
    ("polygon", 0.12),
    ("blob", 0.03),
    ("scribble", 0.12),
    ("hatching", 0.06),
    ("zigzag_or_spiral", 0.07),
    ("composition", 0.15),
)


def training_drawing(rng, fonts=None):
    """One random non-digit drawing as canvas ink (float32 0..1, 280x280), from the training generators."""
    fonts = fonts if fonts is not None else sorted(glob.glob(TRUETYPE_FONTS))
    names, weights = zip(*TRAINING_KINDS, strict=True)
    kind = str(rng.choice(names, p=np.asarray(weights) / sum(weights)))
    if kind == "truetype" and not fonts:
        kind = "hershey"
    draw = {
        "hershey": _hershey_glyphs,
        "truetype": lambda r: _truetype_glyph(r, fonts),
        "polygon": _polygon,
        "blob": _blob,
        "scribble": _scribble,
        "hatching": _hatching,
        "zigzag_or_spiral": _zigzag_or_spiral,
        "composition": _composition,
    }[kind]
    ink = draw(rng).astype(np.float32) / 255.0
    if rng.random() < HAND_WOBBLE_SHARE:
        ink = hand_wobble(ink, rng)
    return _place(ink, rng)


# ---- training negatives: glyph centre lines traced with a round pen -------------------------------
# A font draws a letter's outline; a hand draws its centre line with a round pen. These take a glyph's
# centre line (a Hershey glyph drawn 1 px thin, or a DejaVu glyph thinned to its skeleton), bend it, and
# trace it with a round pen (mnist_web/pen_trace.py). Added to the font drawings, they took the refusal
# of freehand non-digits from 61 % to 75 % (README, "Not a digit"); they never use the evaluation's skeletons.
def _hershey_centre_line(rng, work=300):
    text = "".join(rng.choice(list(TRAINING_LETTERS + TRAINING_SYMBOLS), int(rng.choice((1, 1, 1, 1, 2)))))
    font = int(rng.choice(HERSHEY_FONTS))
    (width, height), _ = cv2.getTextSize(text, font, 4.0, 1)
    fit = 0.8 * work / max(width, height, 1)
    canvas = np.zeros((work, work), np.uint8)
    cv2.putText(canvas, text, (int(0.1 * work), int(0.5 * work + height * fit / 2)), font, 4.0 * fit, 255, 1)
    return canvas > 0


def _truetype_centre_line(rng, fonts):
    from PIL import Image, ImageDraw, ImageFont  # training only; the service does not need Pillow

    font = ImageFont.truetype(str(rng.choice(fonts)), 120)
    image = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(image).text(
        (40, 20), str(rng.choice(list(TRAINING_LETTERS + TRAINING_SYMBOLS))), fill=255, font=font
    )
    return thin(np.asarray(image) > 127)


def _doodle_centre_line(rng, work=300):
    canvas = np.zeros((work, work), np.uint8)
    if rng.random() < 0.5:  # a few straight or bent strokes (closed loops are left out: a loop is a 0)
        for _ in range(int(rng.integers(2, 5))):
            points = rng.uniform(0.1 * work, 0.9 * work, (int(rng.integers(2, 4)), 2))
            cv2.polylines(canvas, [points.astype(np.int32).reshape(-1, 1, 2)], False, 255, 1)
    else:  # a filled blob
        t = np.linspace(0, 2 * np.pi, 60)
        radius = 0.3 * work * (1 + 0.2 * np.sin(int(rng.integers(2, 5)) * t + rng.uniform(0, 6)))
        points = np.stack([work / 2 + radius * np.cos(t) * rng.uniform(0.6, 1), work / 2 + radius * np.sin(t)], 1)
        cv2.fillPoly(canvas, [points.astype(np.int32)], 255)
    return canvas > 0


def traced_drawing(rng, fonts=None):
    """One glyph or doodle centre line, bent and traced with a round pen: canvas ink (float32 0..1, 280x280)."""
    fonts = fonts if fonts is not None else sorted(glob.glob(TRUETYPE_FONTS))
    pick = rng.random()
    if pick < 0.5:
        line = _hershey_centre_line(rng)
    elif pick < 0.8 and fonts:
        line = _truetype_centre_line(rng, fonts)
    else:
        line = _doodle_centre_line(rng)
    ink = trace_centre_line(line, rng, stretch=(0.7, 1.3))
    if ink is None:
        return np.zeros((CANVAS_SIDE, CANVAS_SIDE), np.float32)
    return _place(ink, rng, keep_size=True)  # sized where the pen width was chosen


def training_model_inputs(count, seed, traced=False):
    """`count` training negatives (font drawings, or with `traced` pen-traced centre lines), preprocessed (28x28)."""
    from .errors import NoDigitFound
    from .preprocessing import extract_ink, normalize_ink

    rng = np.random.default_rng(seed)
    fonts = sorted(glob.glob(TRUETYPE_FONTS))
    draw = traced_drawing if traced else training_drawing
    out = np.zeros((count, 28, 28), np.float32)
    made = 0
    while made < count:
        ink = np.round(draw(rng, fonts) * 255) / 255
        try:
            out[made] = normalize_ink(extract_ink(1.0 - ink))
        except NoDigitFound:
            continue
        made += 1
    return out


# ---- evaluation negatives: freehand skeletons ------------------------------------------------------

# Letters and symbols as a person draws them: strokes of points in a unit box (x right, y down).
SKELETONS = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.6), (0.78, 0.6)]],
    "B": [
        [(0, 0), (0, 1)],
        [(0, 0), (0.7, 0.05), (0.8, 0.25), (0.6, 0.47), (0, 0.5)],
        [(0, 0.5), (0.8, 0.55), (0.95, 0.78), (0.75, 0.97), (0, 1)],
    ],
    "C": [[(0.95, 0.15), (0.6, 0), (0.15, 0.15), (0, 0.5), (0.15, 0.85), (0.6, 1), (0.95, 0.85)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.75, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.75, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],
    "L": [[(0, 0), (0, 1), (0.8, 1)]],
    "M": [[(0, 1), (0.05, 0), (0.5, 0.6), (0.95, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "P": [[(0, 1), (0, 0), (0.75, 0.05), (0.9, 0.25), (0.7, 0.45), (0, 0.5)]],
    "R": [[(0, 1), (0, 0), (0.75, 0.05), (0.9, 0.25), (0.7, 0.45), (0, 0.5), (1, 1)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "U": [[(0, 0), (0, 0.75), (0.25, 1), (0.75, 1), (1, 0.75), (1, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "e": [[(0.05, 0.55), (0.95, 0.55), (0.85, 0.25), (0.5, 0.1), (0.1, 0.3), (0.05, 0.7), (0.4, 0.95), (0.95, 0.85)]],
    "h": [[(0, 0), (0, 1)], [(0, 0.6), (0.4, 0.4), (0.8, 0.45), (0.9, 0.7), (0.9, 1)]],
    "k": [[(0, 0), (0, 1)], [(0.8, 0.4), (0, 0.75), (0.85, 1)]],
    "m": [
        [(0, 1), (0, 0.3)],
        [(0, 0.45), (0.25, 0.3), (0.45, 0.45), (0.45, 1)],
        [(0.45, 0.45), (0.75, 0.3), (1, 0.45), (1, 1)],
    ],
    "n": [[(0, 1), (0, 0.3)], [(0, 0.45), (0.45, 0.3), (0.9, 0.45), (0.9, 1)]],
    "r": [[(0, 1), (0, 0.3)], [(0, 0.55), (0.4, 0.3), (0.9, 0.35)]],
    "t": [[(0.4, 0), (0.4, 0.9), (0.6, 1), (0.9, 0.95)], [(0, 0.3), (0.85, 0.3)]],
    "u": [[(0, 0.3), (0, 0.8), (0.3, 1), (0.7, 0.95), (0.9, 0.7)], [(0.9, 0.3), (0.9, 1)]],
    "w": [[(0, 0.3), (0.25, 1), (0.5, 0.5), (0.75, 1), (1, 0.3)]],
    "y": [[(0, 0), (0.5, 0.55)], [(1, 0), (0.35, 1)]],
    "+": [[(0.5, 0), (0.5, 1)], [(0, 0.5), (1, 0.5)]],
    "=": [[(0, 0.3), (1, 0.3)], [(0, 0.7), (1, 0.7)]],
    "#": [[(0.3, 0), (0.25, 1)], [(0.75, 0), (0.7, 1)], [(0, 0.33), (1, 0.33)], [(0, 0.67), (1, 0.67)]],
    "*": [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    "?": [[(0.1, 0.25), (0.3, 0.03), (0.7, 0.02), (0.9, 0.25), (0.5, 0.5), (0.5, 0.72)], [(0.5, 0.93), (0.5, 0.96)]],
    "&": [[(1, 1), (0.2, 0.35), (0.3, 0.05), (0.6, 0.1), (0.55, 0.35), (0.05, 0.7), (0.2, 1), (0.6, 0.95), (1, 0.55)]],
    "@": [
        [
            (0.65, 0.45),
            (0.45, 0.35),
            (0.35, 0.55),
            (0.5, 0.7),
            (0.65, 0.55),
            (0.7, 0.7),
            (0.95, 0.6),
            (0.9, 0.2),
            (0.5, 0.02),
            (0.1, 0.25),
            (0.05, 0.7),
            (0.4, 1),
            (0.85, 0.9),
        ]
    ],
    "%": [
        [(0.9, 0), (0.1, 1)],
        [(0.2, 0.05), (0.05, 0.2), (0.2, 0.35), (0.35, 0.2), (0.2, 0.05)],
        [(0.8, 0.65), (0.65, 0.8), (0.8, 0.95), (0.95, 0.8), (0.8, 0.65)],
    ],
    "<": [[(1, 0), (0, 0.5), (1, 1)]],
    ">": [[(0, 0), (1, 0.5), (0, 1)]],
    "smiley": [
        [(0.5, 0), (0.85, 0.15), (1, 0.5), (0.85, 0.85), (0.5, 1), (0.15, 0.85), (0, 0.5), (0.15, 0.15), (0.5, 0)],
        [(0.33, 0.35), (0.34, 0.37)],
        [(0.67, 0.35), (0.68, 0.37)],
        [(0.25, 0.62), (0.5, 0.8), (0.75, 0.62)],
    ],
    "heart": [
        [(0.5, 1), (0.05, 0.45), (0.05, 0.15), (0.3, 0), (0.5, 0.2), (0.7, 0), (0.95, 0.15), (0.95, 0.45), (0.5, 1)]
    ],
    "star": [[(0.5, 0), (0.2, 1), (1, 0.35), (0, 0.35), (0.8, 1), (0.5, 0)]],
    "house": [[(0, 0.45), (0, 1), (1, 1), (1, 0.45), (0.5, 0), (0, 0.45), (1, 0.45)]],
    "tick": [[(0, 0.55), (0.35, 1), (1, 0)]],
    "arrow": [[(0, 0.5), (1, 0.5)], [(0.65, 0.15), (1, 0.5), (0.65, 0.85)]],
    "triangle": [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],
    "square": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
    "sun": [
        [(0.5, 0.3), (0.7, 0.5), (0.5, 0.7), (0.3, 0.5), (0.5, 0.3)],
        [(0.5, 0), (0.5, 0.18)],
        [(0.5, 0.82), (0.5, 1)],
        [(0, 0.5), (0.18, 0.5)],
        [(0.82, 0.5), (1, 0.5)],
        [(0.15, 0.15), (0.27, 0.27)],
        [(0.85, 0.85), (0.73, 0.73)],
        [(0.85, 0.15), (0.73, 0.27)],
        [(0.15, 0.85), (0.27, 0.73)],
    ],
    "stick figure": [
        [(0.5, 0), (0.62, 0.1), (0.5, 0.2), (0.38, 0.1), (0.5, 0)],
        [(0.5, 0.2), (0.5, 0.6)],
        [(0.1, 0.35), (0.9, 0.35)],
        [(0.15, 1), (0.5, 0.6), (0.85, 1)],
    ],
    "wave": [[(0, 0.5), (0.15, 0.2), (0.3, 0.5), (0.45, 0.8), (0.6, 0.5), (0.75, 0.2), (0.9, 0.5), (1, 0.7)]],
}
# Aspect ratio (width / height) each skeleton is drawn at, where it is not 0.75.
ASPECTS = {
    "M": 1.0,
    "W": 1.2,
    "m": 1.2,
    "w": 1.1,
    "+": 1.0,
    "=": 1.2,
    "#": 1.0,
    "*": 1.0,
    "%": 1.0,
    "@": 1.0,
    "smiley": 1.0,
    "heart": 1.1,
    "star": 1.0,
    "house": 1.0,
    "tick": 1.1,
    "arrow": 1.6,
    "square": 1.0,
    "triangle": 1.1,
    "sun": 1.0,
    "wave": 2.5,
}
FREEHAND_KINDS = tuple(SKELETONS) + ("scribble", "filled square", "filled circle", "hatching", "spiral")


def _wobble(points, rng, size):
    """Resample a stroke densely and let the hand wander: a slow drift plus a small tremor."""
    points = np.asarray(points, np.float64)
    lengths = np.r_[0, np.cumsum(np.hypot(*np.diff(points, axis=0).T))]
    if lengths[-1] == 0:
        return points
    steps = max(2, int(lengths[-1] / 3))
    at = np.linspace(0, lengths[-1], steps)
    dense = np.stack([np.interp(at, lengths, points[:, 0]), np.interp(at, lengths, points[:, 1])], axis=1)
    drift = np.cumsum(rng.normal(0, 0.004 * size, dense.shape), axis=0)
    drift -= np.linspace(0, 1, steps)[:, None] * drift[-1]  # the stroke still ends where it was aimed
    return dense + drift + rng.normal(0, 0.002 * size, dense.shape)


def freehand_drawing(kind, rng, side=CANVAS_SIDE):
    """Canvas ink (float32 0..1, side x side) of one non-digit drawn freehand with the page's round pen."""
    height = float(np.exp(rng.uniform(np.log(70), np.log(0.85 * side))))
    width = height * ASPECTS.get(kind, 0.75) * rng.uniform(0.8, 1.2)
    if width > 0.9 * side:
        height, width = height * 0.9 * side / width, 0.9 * side
    left = rng.uniform(0.05 * side, side - width - 0.05 * side) if width < 0.9 * side else 0.05 * side
    top = rng.uniform(0.05 * side, max(0.05 * side, side - height - 0.05 * side))
    slant = rng.uniform(-0.2, 0.2)
    pen = int(rng.integers(10, 26))
    canvas = np.zeros((side, side), np.uint8)

    def to_canvas(points):
        unit = np.asarray(points, np.float64)
        x = left + (unit[:, 0] + slant * (1 - unit[:, 1])) * width
        return np.stack([x, top + unit[:, 1] * height], axis=1)

    if kind in SKELETONS:
        strokes = [to_canvas(s) for s in SKELETONS[kind]]
    elif kind == "scribble":
        strokes = [to_canvas(_smooth_path(rng.uniform(0, 1, (int(rng.integers(6, 14)), 2)), 8))]
    elif kind == "hatching":
        n = int(rng.integers(3, 7))
        strokes = [to_canvas([(0, y), (1, y + rng.uniform(-0.1, 0.1))]) for y in np.linspace(0, 1, n)]
        if rng.random() < 0.5:
            strokes += [to_canvas([(x, 0), (x + rng.uniform(-0.1, 0.1), 1)]) for x in np.linspace(0, 1, n)]
        pen = max(8, pen // 2)
    elif kind == "spiral":
        t = np.linspace(0, rng.uniform(3, 5) * np.pi, 150)
        strokes = [to_canvas(np.stack([0.5 + t / t.max() * 0.5 * np.cos(t), 0.5 + t / t.max() * 0.5 * np.sin(t)], 1))]
    else:  # filled shapes: drawn as a shape, then coloured in
        t = np.linspace(0, 2 * np.pi, 40)
        unit = (
            [(0, 0), (1, 0), (1, 1), (0, 1)]
            if kind == "filled square"
            else np.stack([0.5 + 0.5 * np.cos(t), 0.5 + 0.5 * np.sin(t)], 1)
        )
        outline = _wobble(to_canvas(unit), rng, height)
        cv2.fillPoly(canvas, [np.round(outline * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        strokes = [np.vstack([outline, outline[:1]])]
    strokes = [_wobble(s, rng, height) for s in strokes]
    return _lines(canvas, strokes, pen).astype(np.float32) / 255.0


def evaluation_drawings(count, seed):
    """Yield (png_bytes, kind) for `count` freehand non-digits: every kind in turn, on a white or clear page."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = FREEHAND_KINDS[i % len(FREEHAND_KINDS)]
        ink = freehand_drawing(kind, rng)
        yield encode_png(ink, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]), kind
