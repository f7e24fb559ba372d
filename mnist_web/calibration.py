"""Calibrated confidence and refusals: temperature scaling, the not-a-digit threshold, and the ECE that checks them.

The model answers softmax probabilities over the ten digits and (with an 11-output model) "not a digit".
train_keras.py fits a temperature and a refusal threshold on validation data and writes them to
model/calibration.json; the recognizer applies them to every answer.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

CALIBRATION = "calibration.json"
# The model's classes: the ten digits, then (in an 11-output model) "not a digit".
DIGIT_CLASSES = 10
NOT_A_DIGIT = DIGIT_CLASSES
ECE_BINS = 15


def _scaled(raw, temperature, not_a_digit_bias=0.0):
    raw = np.asarray(raw, np.float64)
    logits = np.log(np.maximum(raw, 1e-12))
    if not_a_digit_bias and logits.shape[1] > DIGIT_CLASSES:
        logits[:, NOT_A_DIGIT] += not_a_digit_bias
    logits /= temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """How raw model outputs become the probabilities the service reports, and when it refuses."""

    temperature: float = 1.0
    refuse_at: float = 1.0  # refuse when P(not a digit) reaches this (1.0 with a 10-class model: never)
    # Added to the not-a-digit output's log-probability before the temperature: a model whose refusal output
    # was refitted alone (train_keras.py --refit-refusal) lends digits some of that class's mass, which makes
    # the digits' answers under-confident; the bias hands it back (fit_calibration).
    not_a_digit_bias: float = 0.0
    # The refusal head's threshold (mnist_web/refusal_head.py): a drawing whose head score reaches it is refused
    # too. None: no head, or not used.
    head_at: float | None = None

    @classmethod
    def load(cls, model_dir):
        """The model folder's calibration.json, or the identity where there is none."""
        path = Path(model_dir) / CALIBRATION
        if not path.exists():
            return cls()
        found = json.loads(path.read_text())
        head_at = found.get("head_at")
        return cls(
            float(found["temperature"]),
            float(found["refuse_at"]),
            float(found.get("not_a_digit_bias", 0.0)),
            None if head_at is None else float(head_at),
        )

    def save(self, model_dir, **facts):
        """Write calibration.json (with any facts worth keeping beside it, such as validation figures)."""
        body = {**dataclasses.asdict(self), **facts}
        (Path(model_dir) / CALIBRATION).write_text(json.dumps(body, indent=1) + "\n")

    def apply(self, raw, head_scores=None):
        """(n, 11) calibrated probabilities (ten digits, then not-a-digit) from (n, 10|11) softmax outputs.

        With the refusal head's scores (and a head_at), a drawing the head refuses gets the head's say: its
        not-a-digit probability is raised to at least sigmoid(score - head_at + logit(refuse_at)), which
        reaches refuse_at exactly when the score reaches head_at, and its digits' share shrinks in proportion.
        So the rule stays "refuse when P(not a digit) >= refuse_at", and the eleven still sum to 1.
        """
        scaled = _scaled(raw, self.temperature, self.not_a_digit_bias)
        if scaled.shape[1] == DIGIT_CLASSES:
            scaled = np.concatenate([scaled, np.zeros((len(scaled), 1))], axis=1)
        elif head_scores is not None and self.head_at is not None and self.refuse_at < 1.0:
            lift = np.log(self.refuse_at) - np.log1p(-self.refuse_at)
            head_scores = np.asarray(head_scores, np.float64)
            head = 1.0 / (1.0 + np.exp(-(head_scores - self.head_at + lift)))
            # The answer is float32: the head's verdict must survive the rounding on either side of refuse_at.
            up = np.float32(self.refuse_at)
            up = up if up >= self.refuse_at else np.nextafter(up, np.float32(2))
            down = np.nextafter(up, np.float32(0))
            head = np.where(head_scores >= self.head_at, np.maximum(head, up), np.minimum(head, down))
            rest = scaled[:, NOT_A_DIGIT]
            raised = np.maximum(rest, head)
            scaled[:, :DIGIT_CLASSES] *= ((1.0 - raised) / np.maximum(1.0 - rest, 1e-300))[:, None]
            scaled[:, NOT_A_DIGIT] = raised
        return scaled.astype(np.float32)

    def refused(self, calibrated):
        """Boolean (n,): which calibrated rows are answered "not a digit"."""
        # In float64: NumPy would round the threshold to a float32 row's precision, and refuse what sits just under it.
        return np.asarray(calibrated, np.float64)[:, NOT_A_DIGIT] >= self.refuse_at

    def answers(self, calibrated):
        """(n,) digits, -1 where refused."""
        calibrated = np.asarray(calibrated)
        return np.where(self.refused(calibrated), -1, calibrated[:, :DIGIT_CLASSES].argmax(axis=1))

    def classes(self, calibrated):
        """(n,) the answered class of each row: its digit, or NOT_A_DIGIT (10) where refused."""
        answers = self.answers(calibrated)
        return np.where(answers < 0, NOT_A_DIGIT, answers)

    def confidences(self, calibrated):
        """(n,) the probability of each answer: of the digit, or of "not a digit" where refused."""
        calibrated = np.asarray(calibrated)
        return np.where(self.refused(calibrated), calibrated[:, NOT_A_DIGIT], calibrated[:, :DIGIT_CLASSES].max(axis=1))


def fit_temperature(raw, labels, not_a_digit_bias=0.0):
    """The temperature that minimises the negative log-likelihood of labels (0-10) under raw softmax outputs."""
    labels = np.asarray(labels)
    best = None
    # A coarse log grid, then a fine one around the best: the NLL is smooth and unimodal in log T.
    for grid in (np.exp(np.linspace(np.log(0.2), np.log(5.0), 41)), None):
        if grid is None:
            grid = best * np.exp(np.linspace(-0.1, 0.1, 41))
        losses = [
            -np.log(_scaled(raw, t, not_a_digit_bias)[np.arange(len(labels)), labels] + 1e-12).mean() for t in grid
        ]
        best = float(grid[int(np.argmin(losses))])
    return best


# Candidate not-a-digit biases (log-probability units), from none to a strong one.
BIAS_GRID = tuple(-0.25 * step for step in range(17))


def fit_calibration(digit_raw, digit_labels, max_digit_refusal):
    """Temperature, refusal threshold and not-a-digit bias, from validation digits (raw outputs, labels 0-9).

    For each bias: the temperature by likelihood over the digits; the threshold that refuses at most
    `max_digit_refusal` of them (never below an even chance). The bias kept is the one whose digits'
    answers are best calibrated (lowest ECE); with a 10-class model there is no bias and no refusal.
    Non-digits have no say here (fit_head_threshold is where they count): the bias does not change which
    drawings the model's own output ranks as least digit-like, and where the model tells non-digits apart
    only softly their likelihood asks for a high temperature that would leave every digit's answer
    under-confident (a digit model with a refitted not-a-digit row: 2 % ECE on validation digits).
    """
    if np.shape(digit_raw)[1] == DIGIT_CLASSES:  # no not-a-digit output: a temperature, and never a refusal
        return Calibration(fit_temperature(digit_raw, digit_labels))
    best = None
    for bias in BIAS_GRID:
        temperature = fit_temperature(digit_raw, digit_labels, bias)
        rest = Calibration(temperature, not_a_digit_bias=bias).apply(digit_raw)[:, NOT_A_DIGIT]
        refuse_at = float(max(0.5, np.quantile(rest, 1 - max_digit_refusal) + 1e-6))
        candidate = Calibration(temperature, refuse_at, bias)
        error = answer_ece(candidate, digit_raw, digit_labels)
        if best is None or error < best[0]:
            best = (error, candidate)
    return best[1]


def expected_calibration_error(confidences, correct, bins=ECE_BINS):
    """ECE: the bin-weighted gap between confidence and accuracy over equal-width confidence bins."""
    confidences, correct = np.asarray(confidences, np.float64), np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidences, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidences[members].mean() - correct[members].mean())
    return float(error)


def answer_ece(calibration, raw, labels, head_scores=None):
    """ECE of the service's answers (a digit, or a refusal for label 10) on raw outputs with labels 0-10."""
    calibrated = calibration.apply(raw, head_scores)
    answers = calibration.classes(calibrated)
    return expected_calibration_error(calibration.confidences(calibrated), answers == np.asarray(labels))


def _threshold_allowing(values, allowed):
    """The lowest threshold t with at most `allowed` of the values >= t."""
    ordered = np.sort(np.asarray(values, np.float64))[::-1]
    return -np.inf if allowed >= len(ordered) else float(np.nextafter(ordered[allowed], np.inf))


def fit_head_threshold(calibration, digit_raw, digit_scores, negative_raw, negative_scores, max_digit_refusal):
    """The calibration with the refusal head's threshold (and refuse_at) chosen together on validation data.

    Refuse when P(not a digit) >= refuse_at or the head's score >= head_at: of the pairs that refuse at most
    `max_digit_refusal` of the digits (refuse_at never below an even chance), the one refusing most non-digits.
    """
    rest = calibration.apply(digit_raw)[:, NOT_A_DIGIT].astype(np.float64)
    negative_rest = calibration.apply(negative_raw)[:, NOT_A_DIGIT].astype(np.float64)
    digit_scores, negative_scores = np.asarray(digit_scores), np.asarray(negative_scores)
    allowed = int(max_digit_refusal * len(rest))
    best = None
    for by_output in range(allowed + 1):
        # Below 1, so that the head's lifted probability can reach it.
        refuse_at = min(max(0.5, _threshold_allowing(rest, by_output)), 1.0 - 1e-7)
        refused = rest >= refuse_at
        if refused.sum() > allowed:
            continue
        head_at = _threshold_allowing(digit_scores[~refused], allowed - int(refused.sum()))
        caught = float(((negative_rest >= refuse_at) | (negative_scores >= head_at)).mean())
        if best is None or caught > best[0]:
            best = (caught, refuse_at, head_at)
    return dataclasses.replace(calibration, refuse_at=float(best[1]), head_at=float(best[2]))
