"""Calibration fitted on validation outputs: temperature, the not-a-digit bias, the refusal thresholds."""

import json

import numpy as np

from mnist_web.calibration import Calibration, answer_ece, fit_calibration, fit_head_threshold, fit_temperature


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
    fitted = fit_calibration(digits, labels, max_digit_refusal=0.0005)
    assert fitted.not_a_digit_bias < 0
    plain = fit_calibration(digits[:, :10], labels, max_digit_refusal=0.0005)  # a 10-class model
    assert plain.not_a_digit_bias == 0
    no_bias = Calibration(fitted.temperature, fitted.refuse_at)
    assert answer_ece(fitted, digits, labels) < answer_ece(no_bias, digits, labels)
    assert answer_ece(fitted, digits, labels) <= 0.015  # this synthetic model's best at any temperature: 1.1 %
    assert fitted.refused(fitted.apply(digits)).mean() <= 0.0005 + 1e-9  # the refusal budget holds
    assert fitted.refused(fitted.apply(negatives)).all()


def test_non_digits_the_model_misses_do_not_make_the_digits_under_confident():
    """Their likelihood would ask for a high temperature; the digits' answers must still mean what they say."""
    rng = np.random.default_rng(11)
    digits, labels, negatives = synthetic_outputs(rng, 6000, lent=0.05)
    # Half the non-digits look like a confident digit to the model (the head's job to catch them).
    missed = np.concatenate([negatives, digits[rng.permutation(len(digits))[: len(negatives)]]])
    fitted = fit_calibration(digits, labels, max_digit_refusal=0.0005)
    # What a temperature fitted on the digits and these non-digits together would have done.
    joint = fit_temperature(
        np.concatenate([digits, missed]), np.r_[labels, np.full(len(missed), 10)], fitted.not_a_digit_bias
    )
    assert joint > fitted.temperature
    pulled = Calibration(joint, fitted.refuse_at, fitted.not_a_digit_bias)
    assert answer_ece(pulled, digits, labels) > answer_ece(fitted, digits, labels) + 0.01


def test_the_bias_is_saved_and_loaded(tmp_path):
    Calibration(0.7, 0.99, -1.5).save(tmp_path, note="x")
    assert json.loads((tmp_path / "calibration.json").read_text())["not_a_digit_bias"] == -1.5
    assert Calibration.load(tmp_path) == Calibration(0.7, 0.99, -1.5)
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 0.6, "refuse_at": 0.99}))
    assert Calibration.load(tmp_path).not_a_digit_bias == 0.0  # files written before the bias existed


def test_the_head_refuses_exactly_at_its_threshold_and_the_eleven_still_sum_to_one():
    rng = np.random.default_rng(3)
    digits, _, negatives = synthetic_outputs(rng, 400, lent=0.0)
    raw = np.concatenate([digits, negatives])
    calibration = Calibration(0.8, 0.99, head_at=2.0)
    scores = rng.normal(0, 3, len(raw))
    scores[:5] = [2.0, np.nextafter(2.0, -np.inf), 50.0, -50.0, 1.0]
    plain, judged = calibration.apply(raw), calibration.apply(raw, scores)
    np.testing.assert_allclose(judged.sum(axis=1), 1.0, atol=1e-5)
    expected = (plain[:, 10] >= 0.99) | (scores >= 2.0)
    assert (calibration.refused(judged) == expected).all()
    assert expected[0] and not calibration.refused(plain[:2]).any() and not calibration.refused(judged[1:2]).any()
    # The digits keep their ranking (where the head leaves them any probability at all).
    kept = judged[:, :10].sum(axis=1) > 1e-6
    assert kept.mean() > 0.5
    assert (judged[kept, :10].argmax(axis=1) == plain[kept, :10].argmax(axis=1)).all()
    assert (judged[:, 10] >= plain[:, 10] - 1e-6).all()
    # Without a head threshold, or without scores, nothing changes.
    np.testing.assert_array_equal(Calibration(0.8, 0.99).apply(raw, scores), plain)
    np.testing.assert_array_equal(calibration.apply(raw), plain)


def test_the_head_threshold_keeps_the_digit_budget_and_catches_the_most_non_digits():
    rng = np.random.default_rng(5)
    digits, labels, negatives = synthetic_outputs(rng, 4000, lent=0.05)
    fitted = fit_calibration(digits, labels, max_digit_refusal=0.001)
    # The model's own output misses these non-digits: they look like a confident digit to it.
    fooled = digits[:1000].copy()
    digit_scores = rng.normal(0, 1, len(digits))
    negative_scores = np.r_[rng.normal(6, 1, len(negatives)), rng.normal(6, 1, len(fooled))]
    negative_raw = np.concatenate([negatives, fooled])
    judged = fit_head_threshold(fitted, digits, digit_scores, negative_raw, negative_scores, max_digit_refusal=0.001)
    assert judged.temperature == fitted.temperature and judged.head_at is not None
    assert 0.5 <= judged.refuse_at < 1
    refused_digits = judged.refused(judged.apply(digits, digit_scores))
    assert refused_digits.sum() <= int(0.001 * len(digits))  # the budget: 4 digits
    caught = judged.refused(judged.apply(negative_raw, negative_scores)).mean()
    assert caught > 0.95 and caught > fitted.refused(fitted.apply(negative_raw)).mean() + 0.15


def test_the_head_threshold_is_saved_and_loaded(tmp_path):
    Calibration(0.7, 0.99, -1.5, 3.25).save(tmp_path)
    assert Calibration.load(tmp_path) == Calibration(0.7, 0.99, -1.5, 3.25)
    Calibration(0.7, 0.99).save(tmp_path)
    assert Calibration.load(tmp_path).head_at is None


def test_a_row_just_under_the_threshold_is_not_refused():
    """Thresholds sit between float32 values; the comparison must not round them onto the row's value."""
    row = np.zeros((1, 11), np.float32)
    row[0, 10] = np.float32(0.99)
    just_above = float(np.nextafter(np.float64(row[0, 10]), np.inf))
    assert not Calibration(1.0, just_above).refused(row).any()
    assert Calibration(1.0, float(row[0, 10])).refused(row).all()
