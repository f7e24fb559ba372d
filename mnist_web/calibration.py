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


def _scaled(raw, temperature):
    raw = np.asarray(raw, np.float64)
    logits = np.log(np.maximum(raw, 1e-12)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """How raw model outputs become the probabilities the service reports, and when it refuses."""

    temperature: float = 1.0
    refuse_at: float = 1.0  # refuse when P(not a digit) reaches this (1.0 with a 10-class model: never)

    @classmethod
    def load(cls, model_dir):
        """The model folder's calibration.json, or the identity where there is none."""
        path = Path(model_dir) / CALIBRATION
        if not path.exists():
            return cls()
        found = json.loads(path.read_text())
        return cls(float(found["temperature"]), float(found["refuse_at"]))

    def save(self, model_dir, **facts):
        """Write calibration.json (with any facts worth keeping beside it, such as validation figures)."""
        body = {"temperature": self.temperature, "refuse_at": self.refuse_at, **facts}
        (Path(model_dir) / CALIBRATION).write_text(json.dumps(body, indent=1) + "\n")

    def apply(self, raw):
        """(n, 11) calibrated probabilities (ten digits, then not-a-digit) from (n, 10|11) softmax outputs."""
        scaled = _scaled(raw, self.temperature)
        if scaled.shape[1] == DIGIT_CLASSES:
            scaled = np.concatenate([scaled, np.zeros((len(scaled), 1))], axis=1)
        return scaled.astype(np.float32)

    def refused(self, calibrated):
        """Boolean (n,): which calibrated rows are answered "not a digit"."""
        return np.asarray(calibrated)[:, NOT_A_DIGIT] >= self.refuse_at

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


def fit_temperature(raw, labels):
    """The temperature that minimises the negative log-likelihood of labels (0-10) under raw softmax outputs."""
    labels = np.asarray(labels)
    best = None
    # A coarse log grid, then a fine one around the best: the NLL is smooth and unimodal in log T.
    for grid in (np.exp(np.linspace(np.log(0.2), np.log(5.0), 41)), None):
        if grid is None:
            grid = best * np.exp(np.linspace(-0.1, 0.1, 41))
        losses = [-np.log(_scaled(raw, t)[np.arange(len(labels)), labels] + 1e-12).mean() for t in grid]
        best = float(grid[int(np.argmin(losses))])
    return best


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


def answer_ece(calibration, raw, labels):
    """ECE of the service's answers (a digit, or a refusal for label 10) on raw outputs with labels 0-10."""
    calibrated = calibration.apply(raw)
    answers = calibration.classes(calibrated)
    return expected_calibration_error(calibration.confidences(calibrated), answers == np.asarray(labels))
