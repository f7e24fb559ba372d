"""Accuracy on the MNIST test set, the canvas-like set, the page pen's digits, non-digit drawings, canvas numbers,
the pen's numbers and paper photos; calibration error; latency. Every accuracy counts a refusal ("not a digit") as
wrong; numbers holding a drawing that is no digit count how many are refused."""

import time

import numpy as np

from . import pen_digits
from .answers import digit_answer, number_answer
from .calibration import Calibration, answer_ece
from .canvas import canvas_set
from .datasets import load_mnist
from .errors import MnistWebError
from .not_digits import evaluation_drawings
from .numbers import canvas_number_digits, canvas_numbers, numbers_with_a_non_digit, paper_photos
from .preprocessing import image_ink, preprocess
from .segmentation import holds_several_digits

CANVAS_SEED = 20261121
NUMBERS_SEED = 20261127
PHOTOS_SEED = 20261128
DESK_PHOTOS_SEED = 20261203
NOT_DIGITS_SEED = 20261129
NON_DIGIT_NUMBERS_SEED = 20261131
PEN_DIGITS_SEED = 20261201
PEN_NUMBERS_SEED = 20261202
REFUSED_MARK = "?"  # a part of a number refused as no digit, in the string read_number answers


def mnist_test_accuracy(recognizer, data_dir=None):
    """Accuracy of the model on the 10,000 MNIST test images, as they are."""
    _, (images, labels) = load_mnist(data_dir)
    answers = recognizer.calibration.answers(recognizer.classify_batch(images.astype(np.float32) / 255.0))
    return float((answers == labels).mean())  # a refusal (-1) counts as wrong


def canvas_inputs(data_dir=None, limit=None, seed=CANVAS_SEED):
    """(model inputs, labels, accepted) of the canvas set: MNIST test digits drawn on a canvas, preprocessed."""
    _, (images, labels) = load_mnist(data_dir)
    images, labels = images[:limit], labels[:limit]
    inputs, accepted = _model_inputs([png for png, _ in canvas_set(images, labels, seed)])
    return inputs, labels, accepted


def _model_inputs(drawings):
    """(model inputs, accepted) of drawings (image bytes) through digit mode's preprocessing; a drawing the service
    refuses to read (no ink found, say) is not accepted, its input left blank."""
    inputs = np.zeros((len(drawings), 28, 28), np.float32)
    accepted = np.ones(len(drawings), bool)
    for i, drawing in enumerate(drawings):
        try:
            inputs[i] = preprocess(drawing)
        except MnistWebError:
            accepted[i] = False
    return inputs, accepted


def canvas_accuracy(recognizer, data_dir=None, limit=None, seed=CANVAS_SEED):
    """(accuracy, drawings not read) through the whole service path (PNG decode, preprocessing, model)."""
    inputs, labels, accepted = canvas_inputs(data_dir, limit, seed)
    predicted = recognizer.calibration.answers(recognizer.classify_batch(inputs))
    correct = int(((predicted == labels) & accepted).sum())
    return correct / len(labels), int((~accepted).sum())


def digit_refusals(recognizer, data_dir=None, limit=None, seed=CANVAS_SEED):
    """{set: share of its digits answered "not a digit"} for the MNIST test set and the canvas set."""
    _, (images, _) = load_mnist(data_dir)
    inputs, _, accepted = canvas_inputs(data_dir, limit, seed)
    found = {}
    for name, batch in (("mnist", images.astype(np.float32) / 255.0), ("canvas", inputs[accepted])):
        found[name] = float(recognizer.calibration.refused(recognizer.classify_batch(batch)).mean())
    return found


def not_digit_inputs(count, seed=NOT_DIGITS_SEED):
    """(model inputs, kinds, read) of `count` freehand non-digit drawings; read is False where no ink was found."""
    drawings = list(evaluation_drawings(count, seed))
    inputs, read = _model_inputs([png for png, _ in drawings])  # refused before the model: as good as a refusal
    return inputs, [kind for _, kind in drawings], read


def not_digit_refusals(recognizer, count, seed=NOT_DIGITS_SEED):
    """(share refused, {kind: share refused}) over `count` freehand drawings that are not digits."""
    inputs, kinds, read = not_digit_inputs(count, seed)
    refused = recognizer.calibration.refused(recognizer.classify_batch(inputs)) | ~read
    by_kind = {}
    for kind, was_refused in zip(kinds, refused, strict=True):
        by_kind.setdefault(kind, []).append(was_refused)
    return float(refused.mean()), {kind: float(np.mean(v)) for kind, v in by_kind.items()}


def calibration_errors(recognizer, data_dir=None, limit=None, seed=CANVAS_SEED):
    """{set: (ECE before, ECE after)} of the answers' confidence: temperature 1 against the fitted one."""
    _, (images, labels) = load_mnist(data_dir)
    inputs, canvas_labels, accepted = canvas_inputs(data_dir, limit, seed)
    uncalibrated = Calibration(1.0, recognizer.calibration.refuse_at)
    found = {}
    for name, batch, truth in (
        ("mnist", images.astype(np.float32) / 255.0, labels),
        ("canvas", inputs[accepted], canvas_labels[accepted]),
    ):
        raw, scores = recognizer.outputs(batch)
        found[name] = (answer_ece(uncalibrated, raw, truth), answer_ece(recognizer.calibration, raw, truth, scores))
    return found


def single_image_latency(recognizer, image, runs=1000):
    """Median and 95th percentile milliseconds of one recognizer.predict call, after warm-up."""
    for _ in range(50):
        recognizer.predict(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        recognizer.predict(image)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3), float(np.percentile(times, 95) * 1e3)


def read_number(recognizer, data):
    """What number mode answers for image bytes, as a string: its digits, REFUSED_MARK for each part refused as
    no digit (the API then answers no number at all), '' when no number is read."""
    ink, scale = image_ink(data)
    try:
        digits = number_answer(ink, scale, recognizer)["digits"]
    except MnistWebError:  # no digit found, or too many
        return ""
    return "".join(REFUSED_MARK if d["digit"] is None else str(d["digit"]) for d in digits)


def answered_no_number(read):
    """True where read_number's string is a number number mode refuses or finds no digit in."""
    return read == "" or REFUSED_MARK in read


def edit_distance(a, b):
    """Levenshtein distance between two strings (digits missed, added or misread)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def number_accuracy(recognizer, samples):
    """(exact-match rate, per-digit accuracy, [(truth, read) misses]) over (image bytes, digit string) pairs.

    Per-digit accuracy is 1 - edit distance / digits: a digit misread, missed or added costs one.
    """
    exact, errors, digits, misses = 0, 0, 0, []
    for data, truth in samples:
        read = read_number(recognizer, data)
        exact += read == truth
        errors += min(edit_distance(truth, read), len(truth))
        digits += len(truth)
        if read != truth:
            misses.append((truth, read))
    count = exact + len(misses)
    return exact / max(count, 1), 1 - errors / max(digits, 1), misses


def canvas_number_accuracy(recognizer, count, data_dir=None, seed=NUMBERS_SEED):
    """number_accuracy on `count` generated canvas numbers of 2-6 MNIST test digits."""
    _, (images, labels) = load_mnist(data_dir)
    return number_accuracy(recognizer, canvas_numbers(images, labels, count, seed))


def canvas_numbers_read_apart(recognizer, count, data_dir=None, seed=NUMBERS_SEED):
    """(exact, per digit) for canvas_number_accuracy's numbers with each digit read alone from its own strokes (the
    generator's segmentation): what a reader that never groups or cuts wrongly would reach with this model."""
    _, (images, labels) = load_mnist(data_dir)
    exact, right, digits = 0, 0, 0
    for text, pngs in canvas_number_digits(images, labels, count, seed):
        inputs, accepted = _model_inputs(pngs)
        answers = recognizer.calibration.answers(recognizer.classify_batch(inputs))
        hits = (answers == np.array([int(digit) for digit in text])) & accepted
        exact += bool(hits.all())
        right += int(hits.sum())
        digits += len(text)
    return exact / max(count, 1), right / max(digits, 1)


def photo_number_accuracy(recognizer, count, data_dir=None, seed=PHOTOS_SEED):
    """number_accuracy on `count` generated paper photos of 1-6 MNIST test digits."""
    _, (images, labels) = load_mnist(data_dir)
    return number_accuracy(recognizer, paper_photos(images, labels, count, seed))


def desk_photo_number_accuracy(recognizer, count, data_dir=None, seed=DESK_PHOTOS_SEED):
    """number_accuracy on `count` paper photos of 1-6 MNIST test digits with the desk showing around the sheet."""
    _, (images, labels) = load_mnist(data_dir)
    return number_accuracy(recognizer, paper_photos(images, labels, count, seed, desk=True))


def non_digit_number_refusals(recognizer, count, data_dir=None, seed=NON_DIGIT_NUMBERS_SEED):
    """Share of `count` canvas numbers holding a freehand drawing that is no digit which number mode refuses."""
    _, (images, labels) = load_mnist(data_dir)
    refused = 0
    for png, _ in numbers_with_a_non_digit(images, labels, count, seed):
        refused += answered_no_number(read_number(recognizer, png))
    return refused / max(count, 1)


def pen_digit_reads(recognizer, count, seed=PEN_DIGITS_SEED):
    """{(low, high) px tall: (right, refused, drawn)} in digit mode for the pen's digits, `count` of each way."""
    found = {}
    for png, digit, size in pen_digits.single_digits(np.random.default_rng(seed), count):
        answer = digit_answer(*image_ink(png), recognizer)
        right, refused, drawn = found.get(size, (0, 0, 0))
        found[size] = (
            right + (answer["verdict"] == "digit" and answer["digit"] == digit),
            refused + (answer["verdict"] == "not_a_digit"),
            drawn + 1,
        )
    return found


def pen_number_accuracy(recognizer, count, seed=PEN_NUMBERS_SEED):
    """number_accuracy on `count` numbers of 2-6 digits drawn with the page's pen."""
    return number_accuracy(recognizer, pen_digits.numbers(np.random.default_rng(seed), count))


def several_digits_false_fires(recognizer, limit, data_dir=None, seed=CANVAS_SEED):
    """(fires, drawings): how often digit mode would call a single canvas digit 'several digits'."""
    _, (images, labels) = load_mnist(data_dir)
    fires = 0
    for png, _ in canvas_set(images[:limit], labels[:limit], seed):
        fires += holds_several_digits(image_ink(png)[0], recognizer)
    return fires, min(limit, len(images))
