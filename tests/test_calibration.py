"""Calibration fitted on validation outputs: temperature, the not-a-digit bias, the refusal threshold."""

import json

import numpy as np

from mnist_web.calibration import Calibration, answer_ece, fit_calibration


def synthetic_outputs(rng, count, lent):
    """Softmax outputs of a model that is right 98 % of the time and lends `lent` of each digit's mass to class 10."""
    labels = rng.integers(0, 10, count)
    answered = np.where(rng.random(count) < 0.98, labels, (labels + 1) % 10)
    logits = rng.normal(0, 1, (count, 11))
    logits[np.arange(count), answered] += 6.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities[:, 10] = 0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[:, :10] *= 1 - lent
    probabilities[:, 10] += lent
    negatives = np.full((count // 4, 11), 0.02 / 10)
    negatives[:, 10] = 0.98
    return probabilities, labels, negatives


def test_a_lent_not_a_digit_mass_is_handed_back_by_the_bias():
    rng = np.random.default_rng(7)
    digits, labels, negatives = synthetic_outputs(rng, 6000, lent=0.15)
    fitted = fit_calibration(digits, labels, negatives, max_digit_refusal=0.0005)
    assert fitted.not_a_digit_bias < 0
    plain = fit_calibration(digits[:, :10], labels, negatives[:, :10], max_digit_refusal=0.0005)  # a 10-class model
    assert plain.not_a_digit_bias == 0
    no_bias = Calibration(fitted.temperature, fitted.refuse_at)
    assert answer_ece(fitted, digits, labels) < answer_ece(no_bias, digits, labels)
    assert answer_ece(fitted, digits, labels) <= 0.01
    assert fitted.refused(fitted.apply(digits)).mean() <= 0.0005 + 1e-9  # the refusal budget holds
    assert fitted.refused(fitted.apply(negatives)).all()


def test_the_bias_is_saved_and_loaded(tmp_path):
    Calibration(0.7, 0.99, -1.5).save(tmp_path, note="x")
    assert json.loads((tmp_path / "calibration.json").read_text())["not_a_digit_bias"] == -1.5
    assert Calibration.load(tmp_path) == Calibration(0.7, 0.99, -1.5)
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 0.6, "refuse_at": 0.99}))
    assert Calibration.load(tmp_path).not_a_digit_bias == 0.0  # files written before the bias existed
