"""What a prediction answers, in each mode: the Record fields of a digit, a number, or several digits.

Digit mode reads the drawing as one digit, as always; only when the ink plausibly holds several digits
side by side (a cheap look at its strokes) does it ask the segmentation, and a drawing that plainly
holds several is answered "several_digits" rather than guessed as one. Number mode reads the digits left
to right (segmentation.read_digits); a part the model calls "not a digit" makes the whole number refused.
"""

import cv2
import numpy as np

from .calibration import NOT_A_DIGIT
from .errors import InvalidMode, TooManyDigits
from .limits import MAX_NUMBER_DIGITS, MODES
from .preprocessing import digit_mask, normalize_ink, stroke_components
from .segmentation import holds_several_digits, read_digits, scale_box

# Digit mode looks for several digits only in ink whose strokes span this much wider than tall, or
# that has two tall pieces standing side by side (each at least TALL of the tallest, overlapping by less
# than SIDE_BY_SIDE of the narrower): a single digit's pieces (a 4's two strokes, a 5's bar) stand over
# each other. Measured on canvas digits in the README (Numbers and photos).
WIDE = 1.3
TALL = 0.5
SIDE_BY_SIDE = 0.4
# More stroke pieces than this (of at least MIN_PIECE_AREA pixels: dust aside) are no number: reading them
# would cost seconds of model time (a grid of 900 rings: 4 s), so number mode refuses them at once and
# digit mode does not look for several digits in them.
MOST_PIECES = 4 * MAX_NUMBER_DIGITS
MIN_PIECE_AREA = 4


def parse_mode(*values):
    """The requested mode from the places it may be given (None where absent): "digit" unless one says else.

    Two places naming different modes, or a name not in limits.MODES, is an InvalidMode (400).
    """
    given = [value for value in values if value is not None]
    if not all(isinstance(value, str) for value in given):
        raise InvalidMode()
    given = set(given)
    if len(given) > 1:
        raise InvalidMode(f"the mode is given twice, differently: {', '.join(sorted(map(str, given)))}")
    mode = given.pop() if given else "digit"
    if mode not in MODES:
        raise InvalidMode()
    return mode


def model_input_bytes(*inputs):
    """28x28 float inputs (0..1) as the uint8 bytes a record stores, one after another."""
    return b"".join(np.round(np.asarray(i) * 255).astype(np.uint8).tobytes() for i in inputs)


def digit_answer(ink, scale, recognizer):
    """Digit mode: the one digit (or refusal) read from the ink, or "several_digits" when it plainly holds more."""
    found = stroke_components(ink)  # labelled once, for the digit's mask and the look for several
    model_input = normalize_ink(ink, digit_mask(ink, found))
    prediction = recognizer.predict(model_input)
    answer = {
        "mode": "digit",
        "verdict": prediction.verdict,
        "not_a_digit": prediction.not_a_digit,
        "digit": prediction.digit,
        "confidence": prediction.confidence,
        "probabilities": list(prediction.probabilities),
        "model_input": model_input_bytes(model_input),
    }
    if plausibly_several(found) and holds_several_digits(ink, recognizer):
        # Not guessed as one digit (nor refused as none: a model with a "not a digit" class may call a
        # number that): the digits read are kept, and the page offers number mode. They are read a second
        # time here, which only drawings that do hold several digits pay.
        try:
            number = number_answer(ink, scale, recognizer)
        except TooManyDigits:  # several digits, too many to read as a number: none is guessed
            return {**answer, "verdict": "several_digits", "digit": None}
        answer.update(verdict="several_digits", digit=None, number=number["number"], digits=number["digits"])
        answer.update(confidence=number["confidence"], model_input=number["model_input"])
    return answer


def number_answer(ink, scale, recognizer):
    """Number mode: the digit string read left to right with each digit's result, or a refusal.

    Each digit's box is in the submitted image's pixels. The confidence is the product of the digits'
    (how likely the whole string is right); a refused number's is the highest "not a digit" probability.
    """
    if len(_pieces(stroke_components(ink))) > MOST_PIECES:
        raise TooManyDigits(f"more than {MOST_PIECES} separate strokes: not a number of at most {MAX_NUMBER_DIGITS}")
    found = read_digits(ink, recognizer)
    if len(found) > MAX_NUMBER_DIGITS:
        raise TooManyDigits(f"{len(found)} digits found; a number may have at most {MAX_NUMBER_DIGITS}")
    refusals = recognizer.calibration.refused(np.stack([read.probabilities for read in found]))
    digits = []
    for read, refused in zip(found, refusals, strict=True):
        probabilities = [float(p) for p in read.probabilities[:NOT_A_DIGIT]]
        not_a_digit = float(read.probabilities[NOT_A_DIGIT])
        digits.append(
            {
                "digit": None if refused else read.digit,
                "confidence": not_a_digit if refused else read.confidence,
                "probabilities": probabilities,
                "not_a_digit": not_a_digit,
                "box": scale_box(read.box, scale),
            }
        )
    refused = [d["not_a_digit"] for d in digits if d["digit"] is None]
    answer = {
        "mode": "number",
        "digit": None,
        "probabilities": [],
        "digits": digits,
        "not_a_digit": max((d["not_a_digit"] for d in digits), default=0.0),
        "model_input": model_input_bytes(*(read.model_input for read in found)),
    }
    if refused:
        return {**answer, "verdict": "not_a_digit", "number": None, "confidence": max(refused)}
    number = "".join(str(d["digit"]) for d in digits)
    return {
        **answer,
        "verdict": "number",
        "number": number,
        "confidence": float(np.prod([d["confidence"] for d in digits])),
    }


def _pieces(found):
    """The stroke pieces' stats rows [x, y, w, h, area] (dust aside) of stroke_components(ink), in the strokes' box."""
    if found is None:
        return np.zeros((0, 5), np.int32)
    stats = found[4][1:]
    return stats[stats[:, cv2.CC_STAT_AREA] >= MIN_PIECE_AREA]


def plausibly_several(found):
    """Whether the strokes (stroke_components of the ink) could be several digits side by side.

    Only then are they worth the segmentation's time.
    """
    stats = _pieces(found)
    if not 0 < len(stats) <= MOST_PIECES:
        return False
    left, top = stats[:, 0].min(), stats[:, 1].min()
    width, height = (stats[:, 0] + stats[:, 2]).max() - left, (stats[:, 1] + stats[:, 3]).max() - top
    if width >= WIDE * height:
        return True
    tallest = stats[:, cv2.CC_STAT_HEIGHT].max()
    tall = sorted((int(x), int(w)) for x, _, w, h, _ in stats if h >= TALL * tallest)
    for (left_a, width_a), (left_b, width_b) in zip(tall, tall[1:], strict=False):
        overlap = min(left_a + width_a, left_b + width_b) - left_b
        if overlap < SIDE_BY_SIDE * min(width_a, width_b):
            return True
    return False
