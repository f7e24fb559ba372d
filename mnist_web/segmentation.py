"""Find the digits of a handwritten number in an image's ink, left to right.

Strokes are split into connected pieces; pieces much smaller than the writing are specks (dropped) or
bits of a nearby digit (kept with it). The rest, in left-to-right order, are grouped into digits by a
dynamic programme over runs of neighbouring pieces: each candidate digit is scored by the model's
confidence in it and by its shape (a digit is about as tall or as wide as its neighbours are tall, its
pieces overlap side to side or stand one over the other rather than side by side), so a 5's separate bar
or a 1 drawn in two strokes, even a slanted one, joins its digit while two digits 2 px apart, or under a
7's overhanging bar, stay two. Runs that cannot beat reading their pieces one by one are not read.
Digits that touch are one piece: a wide piece read without conviction is cut in two where the model reads the
halves most surely, straight down or along the path that crosses the fewest stroke pixels (digits that
interlock, a 0 in an 8's curve, part along no straight column), and the drawing read again, the grouping free
to keep the piece whole. A cut whose whole piece the model calls no digit, and whose halves it is not sure of, is
undone: a letter in a number is refused, not read as two digits. A piece the model refuses may stand alone as a
refused part, so a "+" between digits is refused rather than hidden in the digit beside it.
"""

import contextlib
import dataclasses

import cv2
import numpy as np

from .calibration import DIGIT_CLASSES, NOT_A_DIGIT, Calibration
from .errors import NoDigitFound
from .preprocessing import normalize_ink, stroke_components

# Pieces smaller than this fraction of the writing's height (both ways) are specks or fragments.
SPECK = 0.2
# Longest run of pieces one digit may be made of (a 4 in two strokes plus a broken one: three). The two halves of
# a cut piece count as the one piece they were, so a digit read whole before its pieces were cut can still be.
MOST_PIECES = 3
# Costs, in units of -log(probability): what each departure from a digit's usual shape costs.
SHORT = 12.0  # per unit of size (height, or width if wider) below SHORT_BELOW of the writing's height
SHORT_BELOW = 0.6
APART = 4.0  # per writing-height of horizontal gap between pieces of one digit
SPLIT = 0.5  # for any gap between pieces at all
WIDE = 2.0  # per unit of width beyond WIDE_ABOVE of the digit's height
WIDE_ABOVE = 1.2
PER_DIGIT = 0.3  # each digit found: prefer fewer, when the model is as sure either way
JOIN = 1.0  # for pieces that do not overlap side to side
JOIN_TALL = 1.0  # the same when both are as tall as a digit (TALL of the writing's height)
TALL = 0.6
# The grouping scores runs by the model's probabilities at this softmax temperature, whatever temperature the
# calibration fits for the answers' confidence (which would otherwise move every grouping decision). Chosen on
# numbers generated from other seeds than the evaluation's (2 x 400 canvas numbers, 2 x 200 paper photos): 1.0
# read 0.25-0.5 % more of them exactly than 0.558 (the calibration's) or 0.70, and 1.5 less.
SCORING_TEMPERATURE = 1.0
# A run the model thinks may be no digit at all (a fragment of a broken stroke, half of a digit cut off) costs
# FRAGMENT more per unit of ln P(not a digit) above ln FRAGMENT_FROM (at SCORING_TEMPERATURE): the digits' share
# hardly moves while that probability climbs from 0.01 to 0.3, though the model says something. Chosen on touching
# numbers and numbers from other seeds than the evaluation's (README, Numbers and photos).
FRAGMENT = 0.2
FRAGMENT_FROM = 0.01
# Digits that touch: a piece at least TOUCHING_WIDE times as wide as the writing is tall, in a digit read
# less surely than CUT_UNLESS_SURE or itself VERY_WIDE, may hold two. The drawing is then read again with it cut
# in two across its middle (CUT_FROM to 1 - CUT_FROM of its width), by the cut whose halves the model reads most
# surely. The cuts tried start from the columns CUT_COLUMNS and the one where the fewest stroke pixels stand: each
# straight down, and along the top-to-bottom path that crosses the fewest stroke pixels within PATH_DRIFT of the
# piece's width of that column (a diagonal step costing PATH_DIAGONAL of a pixel, so a path goes straight where
# it can). Reading the halves as two digits costs CUT, so a wide digit stays whole unless its halves read better.
# Chosen on touching numbers and on numbers from other seeds than the evaluation's (README, Numbers and photos):
# numbers that never touch read as before. Digit mode's look for several digits costs a cut SEVERAL_CUT: a user
# who asked for one digit more likely drew one wide digit than two touching (at CUT, 1 of 2,000 canvas digits, a
# wide 0, was cut into "17" and answered "several digits"; at SEVERAL_CUT none).
TOUCHING_WIDE = 0.9
# 0.9 until the model learnt pen-traced digits, which read a 2 touching a 7 as a 0 at 0.90 (a 4 and a 1 as a 4 at
# 0.98 still wins whole): on touching numbers 778 / 779, 0.95 / 0.99 / always read 69.5 / 72.0 / 73.5 % and
# 67.0 / 69.0 / 68.0 % against 68.0 / 65.0 %; always read ordinary numbers and photos of other seeds worse.
CUT_UNLESS_SURE = 0.99
VERY_WIDE = 1.4
CUT_FROM = 0.25
CUT_COLUMNS = (0.3, 0.4, 0.5, 0.6, 0.7)
PATH_DRIFT = 0.15
PATH_DIAGONAL = 0.3
CUT = 0.25
SEVERAL_CUT = 1.5
# A cut is a guess that one piece holds two digits. Where the model calls the whole piece no digit and is not sure
# of both halves as digits (each read at least CUT_HALF_SURE, with P(not a digit) below CUT_HALF_DOUBT, calibrated),
# the cut is undone and the piece answered whole: a letter or a doodle in a number ("w", "%") is then refused, not
# read as two digits, while digits that touch read surely as halves and stay cut. Chosen on numbers with a drawing
# that is no digit in them and on touching numbers, from other seeds than the evaluation's (README, Numbers and
# photos).
CUT_HALF_SURE = 0.9
CUT_HALF_DOUBT = 0.01
# A piece the model refuses as no digit, at least REFUSE_PIECE_SIZE of the writing's height in its longer side, may
# stand alone as a refused part of the number at a cost of REFUSE_PIECE (in the grouping's units, -log probability)
# instead of being joined to a neighbouring digit that absorbs it: a "+" or a "-" between digits is refused, not
# hidden in the digit beside it, while a 5's bar or a broken stroke, which joins its digit for less, still does, and
# smaller fragments are never refused alone. Chosen on numbers with a drawing that is no digit in them and on
# touching and ordinary numbers, from other seeds than the evaluation's (README, Numbers and photos).
REFUSE_PIECE = 2.0
REFUSE_PIECE_SIZE = 0.5
# Runs of pieces whose shape alone costs more than this are not read as one digit (speed: fewer model calls).
HOPELESS = 5.0
# A piece the model reads this surely on its own is not joined to a tall neighbour standing beside it.
SURE = 0.9
# A drawing holds several digits when at least two stand apart like this, each sure at least this.
SEVERAL_MIN_CONFIDENCE = 0.8
SEVERAL_MIN_HEIGHT = 0.6


@dataclasses.dataclass(frozen=True)
class ReadDigit:
    """A digit found and read: its box [x, y, w, h] in ink pixels, its own strokes (a crop of the ink, the
    other digits' strokes blanked), its 28x28 model input and its 11 calibrated probabilities (ten digits, then
    not-a-digit: whether it is refused is the calibration's call)."""

    box: tuple
    ink: np.ndarray
    model_input: np.ndarray
    probabilities: np.ndarray

    @property
    def digit(self):
        """The most probable digit."""
        return int(self.probabilities[:DIGIT_CLASSES].argmax())

    @property
    def confidence(self):
        """The probability of the most probable digit."""
        return float(self.probabilities[:DIGIT_CLASSES].max())


@dataclasses.dataclass
class _Pieces:
    """The strokes' connected pieces within the box around all strokes."""

    labels: np.ndarray
    stats: np.ndarray
    offset: tuple  # (x, y) of the labelled box in the ink
    height: float  # the writing's height: a typical tall piece
    partner: dict = dataclasses.field(default_factory=dict)  # the halves of a cut piece, each to the other


def _pieces(ink):
    found = stroke_components(ink)
    if found is None:
        return None
    _, (top, left), _, labels, stats = found
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    tall = heights[heights >= 0.5 * heights.max()]
    return _Pieces(labels, stats, (left, top), float(np.percentile(tall, 75)))


def _wide(pieces, i, share=TOUCHING_WIDE):
    """Piece i is at least `share` times as wide as the writing is tall."""
    return pieces.stats[i, cv2.CC_STAT_WIDTH] >= share * pieces.height


def _cut_wide(ink, pieces, wide, recognizer):
    """The pieces with each of `wide` cut in two (the right half newly labelled), the halves partners.

    Where to cut is the model's call: of the straight and the least-ink cuts from the columns CUT_COLUMNS across
    the piece's middle and the one where the fewest stroke pixels stand, the cut whose halves it reads most surely.
    """
    for i in wide:
        left, top, width, height = (int(v) for v in pieces.stats[i, :4])
        own = pieces.labels[top : top + height, left : left + width] == i
        start, end = int(CUT_FROM * width), int(np.ceil((1 - CUT_FROM) * width))
        thinnest = start + int(np.argmin(own[:, start:end].sum(axis=0)))
        candidates = (thinnest, *(int(share * width) for share in CUT_COLUMNS))
        columns = sorted({min(max(column, 1), width - 1) for column in candidates})
        paths = [np.full(height, column) for column in columns] + list(_least_ink_paths(own, columns))
        # Each path's right half; paths that part the strokes alike (one often runs straight) are one cut.
        rights = {}
        for path in paths:
            right = own & (np.arange(width)[None, :] >= path[:, None])
            if right.any() and (own & ~right).any():
                rights.setdefault(np.packbits(right).tobytes(), right)
        options = [_cut_along(pieces, i, right) for right in rights.values()]
        if not options:
            continue
        halves = np.zeros((2 * len(options), 28, 28), np.float32)  # a half too small to read stays blank
        for k, option in enumerate(options):
            for side, piece in enumerate((i, len(option.stats) - 1)):
                _, crop, strokes = _group_ink(ink, option, [piece])
                with contextlib.suppress(NoDigitFound):
                    halves[2 * k + side] = normalize_ink(crop, strokes)
        confidence = scoring_confidences(recognizer.classify_batch(halves), recognizer.calibration.temperature)
        sureness = np.log(confidence + 1e-6).reshape(len(options), 2).sum(axis=1)
        pieces = options[int(np.argmax(sureness))]
    return pieces


def _least_ink_paths(own, anchors):
    """(anchors, height) columns: for each anchor, the top-to-bottom path through `own` (a piece's stroke mask)
    crossing the fewest stroke pixels within PATH_DRIFT of its width of the anchor, one column to either side
    at most from row to row. A path's column in a row is where the right half starts."""
    height, width = own.shape
    anchors = np.asarray(anchors)
    columns = np.arange(width)
    outside = (np.abs(columns[None, :] - anchors[:, None]) > PATH_DRIFT * width) | (columns < 1)[None, :]
    # Only the columns some anchor may use: a dynamic programme over rows, all anchors at once.
    used = np.flatnonzero(~outside.all(axis=0))
    first, last = int(used[0]), int(used[-1]) + 1
    blocked = np.where(outside[:, first:last], np.inf, 0.0).astype(np.float32)
    ink = own[:, first:last].astype(np.float32)
    total = ink[0] + blocked  # (anchors, columns): the cheapest path to each column of the row so far
    came = np.zeros((height, len(anchors), last - first), np.int8)  # -1, 0, 1: from the column left, same, right
    for row in range(1, height):
        step = total + PATH_DIAGONAL
        best = total.copy()
        from_left = np.zeros_like(best, bool)
        from_left[:, 1:] = step[:, :-1] < best[:, 1:]
        best[:, 1:] = np.where(from_left[:, 1:], step[:, :-1], best[:, 1:])
        from_right = np.zeros_like(best, bool)
        from_right[:, :-1] = step[:, 1:] < best[:, :-1]
        best[:, :-1] = np.where(from_right[:, :-1], step[:, 1:], best[:, :-1])
        came[row] = from_right.astype(np.int8) - (from_left & ~from_right)
        total = best + ink[row] + blocked
    paths = np.empty((len(anchors), height), np.int64)
    column = total.argmin(axis=1)
    anchor_rows = np.arange(len(anchors))
    for row in range(height - 1, -1, -1):
        paths[:, row] = column
        column = column + came[row][anchor_rows, column]
    return paths + first


def _cut_along(pieces, i, right):
    """The pieces with piece i cut in two: `right` (a mask over its box) newly labelled, the rest kept as i."""
    left, top, width, height = (int(v) for v in pieces.stats[i, :4])
    labels = pieces.labels.copy()
    window = labels[top : top + height, left : left + width]
    own = window == i
    new = len(pieces.stats)
    window[right] = new
    stats = np.concatenate([pieces.stats, _mask_stats(right, left, top)[None]])
    stats[i] = _mask_stats(own & ~right, left, top)
    return dataclasses.replace(pieces, labels=labels, stats=stats, partner={**pieces.partner, i: new, new: i})


def _mask_stats(mask, left, top):
    """A connectedComponentsWithStats row (left, top, width, height, area) of a mask placed at (left, top)."""
    mask = mask.astype(np.uint8)
    x, y, width, height = cv2.boundingRect(mask)
    return np.array([left + x, top + y, width, height, cv2.countNonZero(mask)], np.int32)


def _cut_cost(pieces, major, a, b, cut):
    """What reading major[a:b] as one digit costs for each cut piece it takes only half of (`cut` a whole cut)."""
    first, last = major[a], major[b - 1]
    cost = 0.0
    if a > 0 and pieces.partner.get(first) == major[a - 1]:
        cost += cut / 2
    if b < len(major) and pieces.partner.get(last) == major[b]:
        cost += cut / 2
    return cost


def _extent(stats, ids):
    left = min(stats[i, cv2.CC_STAT_LEFT] for i in ids)
    top = min(stats[i, cv2.CC_STAT_TOP] for i in ids)
    right = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in ids)
    bottom = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in ids)
    return int(left), int(top), int(right), int(bottom)


def _runs_from(pieces, major, a):
    """The runs (a, b) of major pieces starting at a that were at most MOST_PIECES pieces before any was cut."""
    whole = set()
    for b in range(a + 1, len(major) + 1):
        i = major[b - 1]
        whole.add(min(i, pieces.partner.get(i, i)))  # a cut piece's two halves count once
        if len(whole) > MOST_PIECES:
            return
        yield a, b


def _split_major(pieces):
    """(major piece ids left to right, minor piece ids): minor ones are small both ways."""
    stats, limit = pieces.stats, SPECK * pieces.height
    major, minor = [], []
    for i in range(1, len(stats)):
        small = stats[i, cv2.CC_STAT_WIDTH] < limit and stats[i, cv2.CC_STAT_HEIGHT] < limit
        (minor if small else major).append(i)
    major.sort(key=lambda i: stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] / 2)
    return major, minor


def _gaps(stats, ids):
    """Total width of the holes in the pieces' horizontal extent (0 when they overlap side to side)."""
    spans = sorted((stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH]) for i in ids)
    holes, reach = 0, spans[0][1]
    for left, right in spans[1:]:
        holes += max(0, left - reach)
        reach = max(reach, right)
    return holes


def _shape_cost(pieces, ids):
    """What a group of pieces costs for not looking like one digit, whatever the model says."""
    left, top, right, bottom = _extent(pieces.stats, ids)
    height, width = bottom - top, right - left
    # A wide, low digit (a flat 2, a 5 with a long bar) is as complete as a tall one: measure its larger side.
    cost = SHORT * max(0.0, SHORT_BELOW - max(height, width) / pieces.height)
    cost += WIDE * max(0.0, width / max(height, 1) - WIDE_ABOVE)
    if len(ids) > 1:
        holes = _gaps(pieces.stats, ids)
        cost += (SPLIT + APART * holes / pieces.height) if holes > 0 else 0.0
        cost += sum(_join_cost(pieces, a, b) for a, b in zip(ids, ids[1:], strict=False) if pieces.partner.get(a) != b)
    return cost + PER_DIGIT


def _join_cost(pieces, a, b):
    """Cost of two neighbouring pieces being one digit: low when one stands over the other.

    Pieces of one digit (a 5's bar over its body, the halves of a broken 1, even a slanted one) overlap
    side to side by most of the narrower one's width, or share few rows; neighbouring digits, even
    interlocked ones, overlap only at their edges and stand in the same rows.
    """
    stats = pieces.stats
    across = _overlap_share(stats, a, b, cv2.CC_STAT_LEFT, cv2.CC_STAT_WIDTH)
    stacked = 1.0 - _overlap_share(stats, a, b, cv2.CC_STAT_TOP, cv2.CC_STAT_HEIGHT)
    tall = min(stats[a, cv2.CC_STAT_HEIGHT], stats[b, cv2.CC_STAT_HEIGHT]) >= TALL * pieces.height
    return (JOIN_TALL if tall else JOIN) * (1.0 - max(across, stacked))


def _overlap_share(stats, a, b, start, length):
    """How much of the shorter of two pieces' spans (columns or rows) the other's span covers: 0..1."""
    first, second = stats[a, start], stats[b, start]
    overlap = min(first + stats[a, length], second + stats[b, length]) - max(first, second)
    return float(np.clip(overlap / max(1, min(stats[a, length], stats[b, length])), 0.0, 1.0))


def _group_ink(ink, pieces, ids):
    """(box [x, y, w, h] in the ink, crop of the ink holding only these pieces' strokes, their stroke mask)."""
    left, top, right, bottom = _extent(pieces.stats, ids)
    own = np.zeros(len(pieces.stats), bool)
    own[ids] = True
    strokes = own[pieces.labels[top:bottom, left:right]]
    x, y = pieces.offset[0] + left, pieces.offset[1] + top
    crop = ink[y : y + bottom - top, x : x + right - left]
    # The soft edge below the stroke threshold belongs to whichever piece it borders: grow the mask a pixel.
    grown = cv2.dilate(strokes.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return (x, y, right - left, bottom - top), np.where(grown, crop, 0.0).astype(np.float32), strokes


def _attach_minor(pieces, groups, minor):
    """Add each small piece to the digit whose box (a little enlarged) holds it; the rest are specks."""
    stats, margin = pieces.stats, 0.1 * pieces.height
    boxes = [_extent(stats, ids) for ids in groups]
    for i in minor:
        cx = stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] / 2
        cy = stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] / 2
        for ids, (left, top, right, bottom) in zip(groups, boxes, strict=True):
            if left - margin <= cx <= right + margin and top - margin <= cy <= bottom + margin:
                ids.append(i)
                break


def _read_runs(ink, pieces, major, runs, chosen, arrays, recognizer):
    """Preprocess the chosen runs of pieces and read them in one model call (filling the arrays in place)."""
    inputs, usable, probabilities = arrays
    for k in chosen:
        a, b = runs[k]
        try:
            _, crop, strokes = _group_ink(ink, pieces, major[a:b])
            inputs[k] = normalize_ink(crop, strokes)
            usable[k] = True
        except NoDigitFound:
            pass
    ready = [k for k in chosen if usable[k]]
    if ready:
        probabilities[ready] = recognizer.classify_batch(inputs[ready])


def _apart(pieces, major, i, sure):
    """Pieces i and i+1 are two digits beyond doubt: both tall, both read surely alone, side by side.

    Joined, they would cost more than JOIN_TALL * 0.5 + PER_DIGIT, more than two sure readings do.
    """
    a, b = major[i], major[i + 1]
    if i not in sure or i + 1 not in sure or pieces.partner.get(a) == b:
        return False
    stats = pieces.stats
    if min(stats[a, cv2.CC_STAT_HEIGHT], stats[b, cv2.CC_STAT_HEIGHT]) < TALL * pieces.height:
        return False
    return _join_cost(pieces, a, b) > 0.5 * JOIN_TALL


def scoring_confidences(calibrated, temperature):
    """(n,) the confidence the grouping scores each run by: calibrated (n, 11) rows (fitted at `temperature`)
    re-tempered to SCORING_TEMPERATURE, the most probable digit's share, less FRAGMENT's doubt."""
    # Probabilities at temperature T re-scaled by T' / T are those at T' (log p = z / T - c).
    scored = Calibration(SCORING_TEMPERATURE / temperature).apply(calibrated).astype(np.float64)
    not_a_digit = np.log(np.maximum(scored[:, NOT_A_DIGIT], 1e-300)) - np.log(FRAGMENT_FROM)
    return scored[:, :DIGIT_CLASSES].max(axis=1) * np.exp(-FRAGMENT * np.maximum(not_a_digit, 0.0))


def read_digits(ink, recognizer, cut=CUT):
    """Find and read the digits of a number in ink (0..1, white on black), left to right: [ReadDigit].

    A wide piece read as one digit without conviction may be digits that touch: the drawing is read again
    with such pieces cut in two, the grouping free to keep each whole or to take its halves apart, which costs
    `cut` (CUT; digit mode's look for several digits asks SEVERAL_CUT).
    """
    pieces = _pieces(ink)
    if pieces is None:
        raise NoDigitFound()
    found, runs = _read_pieces(ink, pieces, recognizer, cut)
    unsure = [
        i
        for ids, digit in zip(runs, found, strict=True)
        for i in ids
        if _wide(pieces, i) and (digit.confidence < CUT_UNLESS_SURE or _wide(pieces, i, VERY_WIDE))
    ]
    if not unsure:
        return found
    pieces = _cut_wide(ink, pieces, unsure, recognizer)
    return _undo_doubtful_cuts(ink, pieces, *_read_pieces(ink, pieces, recognizer, cut), recognizer)


def _undo_doubtful_cuts(ink, pieces, found, runs, recognizer):
    """`found` with each doubtful cut undone: the two halves, each read as a digit of its own, become the one
    piece they were, answered whole, wherever the model calls that piece no digit (CUT_HALF_SURE, above)."""
    digit_of = {ids[0]: k for k, ids in enumerate(runs) if len(ids) == 1}
    doubtful = []
    for left, right in pieces.partner.items():
        if left < right and left in digit_of and right in digit_of:
            halves = [found[digit_of[left]], found[digit_of[right]]]
            if any(h.confidence < CUT_HALF_SURE or h.probabilities[NOT_A_DIGIT] >= CUT_HALF_DOUBT for h in halves):
                doubtful.append((*sorted((digit_of[left], digit_of[right])), left, right))
    if not doubtful:
        return found
    wholes = []
    for _, _, left, right in doubtful:
        box, own, strokes = _group_ink(ink, pieces, [left, right])
        wholes.append((box, own, normalize_ink(own, strokes)))
    probabilities = recognizer.classify_batch(np.stack([model_input for _, _, model_input in wholes]))
    refused = recognizer.calibration.refused(probabilities)
    found = list(found)
    dropped = set()
    for (first, second, _, _), whole, p, undo in zip(doubtful, wholes, probabilities, refused, strict=True):
        if undo:  # the whole takes the place of the first half in reading order
            found[first] = ReadDigit(*whole, p)
            dropped.add(second)
    return [digit for k, digit in enumerate(found) if k not in dropped]


def _read_pieces(ink, pieces, recognizer, cut):
    """([ReadDigit] left to right, the major pieces of each): the grouping of the pieces that costs least."""
    major, minor = _split_major(pieces)
    if not major:
        raise NoDigitFound("no digit found: the ink is only specks")
    # Every run of up to MOST_PIECES neighbouring pieces is a candidate digit; the model scores them all at once.
    runs = [run for a in range(len(major)) for run in _runs_from(pieces, major, a)]
    shape = [_shape_cost(pieces, major[a:b]) + _cut_cost(pieces, major, a, b, cut) for a, b in runs]
    inputs = np.zeros((len(runs), 28, 28), np.float32)
    usable = np.zeros(len(runs), bool)
    probabilities = np.zeros((len(runs), NOT_A_DIGIT + 1), np.float32)
    # First each piece alone; then only the runs that could still beat reading their pieces apart.
    singles = [k for k, (a, b) in enumerate(runs) if b - a == 1]
    arrays = (inputs, usable, probabilities)
    _read_runs(ink, pieces, major, runs, singles, arrays, recognizer)
    temperature = recognizer.calibration.temperature
    # Each run read as one digit costs its shape's cost plus the model's doubt (-log confidence).
    confidence = scoring_confidences(probabilities, temperature)
    doubt = -np.log(confidence + 1e-6)
    sure = {runs[k][0] for k in singles if usable[k] and confidence[k] >= SURE}
    alone = [shape[k] + doubt[k] if usable[k] else np.inf for k in singles]
    # A run whose shape alone costs more than reading its pieces one by one cannot win: not read at all.
    joined = [
        k
        for k, (a, b) in enumerate(runs)
        if b - a > 1
        and shape[k] <= min(HOPELESS, sum(alone[a:b]))
        and not any(_apart(pieces, major, i, sure) for i in range(a, b - 1))
    ]
    _read_runs(ink, pieces, major, runs, joined, arrays, recognizer)
    doubt = -np.log(scoring_confidences(probabilities, temperature) + 1e-6)
    cost = {run: shape[k] + doubt[k] if usable[k] else np.inf for k, run in enumerate(runs)}
    # A piece the model refuses alone may stand alone, refused, for REFUSE_PIECE, rather than be forced into a digit.
    refused = recognizer.calibration.refused(probabilities[singles])
    for k, alone_refused in zip(singles, refused, strict=True):
        i = major[runs[k][0]]
        size = max(pieces.stats[i, cv2.CC_STAT_WIDTH], pieces.stats[i, cv2.CC_STAT_HEIGHT])
        if usable[k] and alone_refused and size >= REFUSE_PIECE_SIZE * pieces.height:
            cost[runs[k]] = min(cost[runs[k]], REFUSE_PIECE)
    # best[b]: the cheapest reading of the first b pieces, and where its last digit starts.
    best = [(0.0, -1)] + [(np.inf, -1)] * len(major)
    for a, b in sorted(cost, key=lambda run: run[1]):  # by end: best[a] is final before any run from a
        total = best[a][0] + cost[(a, b)]
        if total < best[b][0]:
            best[b] = (total, a)
    if not np.isfinite(best[-1][0]):
        raise NoDigitFound("no digit found: no part of the ink reads as a digit")
    cuts, b = [], len(major)
    while b > 0:
        cuts.append((best[b][1], b))
        b = best[b][1]
    cuts.reverse()
    groups = [list(major[a:b]) for a, b in cuts]
    index = {run: k for k, run in enumerate(runs)}
    if minor:
        _attach_minor(pieces, groups, minor)
    found = []
    for (a, b), ids in zip(cuts, groups, strict=True):
        box, own, strokes = _group_ink(ink, pieces, ids)
        k = index[(a, b)]
        if len(ids) > b - a:  # small pieces joined it: read it again with them
            found.append(ReadDigit(box, own, normalize_ink(own, strokes), None))
        else:
            found.append(ReadDigit(box, own, inputs[k], probabilities[k]))
    again = [i for i, digit in enumerate(found) if digit.probabilities is None]
    if again:
        redone = recognizer.classify_batch(np.stack([found[i].model_input for i in again]))
        for i, p in zip(again, redone, strict=True):
            found[i] = dataclasses.replace(found[i], probabilities=p)
    return found, [list(major[a:b]) for a, b in cuts]


def holds_several_digits(ink, recognizer):
    """True when the drawing plainly holds several digits side by side (for digit mode to say so)."""
    try:
        digits = read_digits(ink, recognizer, SEVERAL_CUT)
    except NoDigitFound:
        return False
    if len(digits) < 2:
        return False
    tallest = max(d.box[3] for d in digits)
    sure = [d for d in digits if d.confidence >= SEVERAL_MIN_CONFIDENCE and d.box[3] >= SEVERAL_MIN_HEIGHT * tallest]
    if len(sure) < 2:
        return False
    # At least two must stand side by side, not one above the other (a 5's bar, the two halves of a 1).
    sure.sort(key=lambda d: d.box[0])
    return any(b.box[0] >= a.box[0] + 0.6 * a.box[2] for a, b in zip(sure, sure[1:], strict=False))


def scale_box(box, scale):
    """A box in ink pixels as [x, y, w, h] in the submitted image's pixels."""
    return [int(round(v * scale)) for v in box]
