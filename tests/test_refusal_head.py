"""The refusal head: fitted on features, folded into one matrix product, saved with the model, run by every runtime."""

import dataclasses
import shutil

import numpy as np
import pytest

from mnist_web.calibration import Calibration
from mnist_web.folding import Dense, Flatten, Relu, Tap, output_width, tapped
from mnist_web.numpy_forward import NumpyForward
from mnist_web.recognizer import MODEL_JSON, MODEL_WEIGHTS, Recognizer
from mnist_web.refusal_head import HEAD_FILE, RefusalHead, fit_refusal_head, head_features


def blobs(rng, count, shift):
    """Features on very unlike scales (as the model's are), the second class moved along a few of them."""
    scale = np.geomspace(1e-3, 1e3, 24)
    x = rng.normal(0, 1, (count, 24)) * scale + 500.0
    x[:, :3] += shift * scale[:3]
    return x.astype(np.float32)


def test_the_folded_ensemble_separates_what_it_was_trained_on(tmp_path):
    rng = np.random.default_rng(0)
    head = fit_refusal_head(blobs(rng, 600, 0.0), blobs(rng, 300, 4.0), seed=1, members=2, epochs=15)
    assert head.hidden.shape == (24, 2 * 64) and head.out.shape == (2 * 64,)
    digits, others = head.scores(blobs(rng, 500, 0.0)), head.scores(blobs(rng, 500, 4.0))
    # Standardisation folded in: features around 500 on scales 1e-3..1e3 still separate.
    assert np.median(others) > np.percentile(digits, 95) and np.median(digits) < np.percentile(others, 5)
    head.save(tmp_path)
    samples = blobs(rng, 50, 2.0)
    np.testing.assert_array_equal(RefusalHead.load(tmp_path).scores(samples), head.scores(samples))
    assert RefusalHead.load(tmp_path / "nowhere") is None


def test_head_features_are_the_taps_then_the_log_probabilities():
    answered = np.array([[0.25, 0.75, 3.0, 4.0, 5.0], [1.0, 0.0, 0.0, 1.0, 2.0]], np.float32)
    features = head_features(answered, 2)
    np.testing.assert_allclose(features[:, :3], answered[:, 2:])
    np.testing.assert_allclose(features[0, 3:], np.log([0.25, 0.75]), rtol=1e-6)
    assert features[1, 4] == pytest.approx(np.log(1e-12))  # a zero probability stays finite


def test_taps_sit_before_every_dense_layer():
    steps = [
        Flatten(),
        Dense(np.zeros((12, 5)), np.zeros(5), "linear"),
        Relu(),
        Dense(np.zeros((5, 3)), None, "softmax"),
    ]
    with_taps = tapped(steps)
    assert [type(step) for step in with_taps] == [Flatten, Tap, Dense, Relu, Tap, Dense]
    assert output_width(steps) == 3 and output_width(with_taps) == 3 + 12 + 5


def with_constant_head(folder, score, head_at):
    """The model folder with a head that scores every drawing `score`, refusing at `head_at`."""
    width = NumpyForward.from_files(folder / MODEL_JSON, folder / MODEL_WEIGHTS, taps=True).outputs
    RefusalHead(np.zeros((width, 1), np.float32), np.ones(1, np.float32), np.array([score]), 0.0).save(folder)
    base = Calibration.load(folder)
    Calibration(base.temperature, base.refuse_at, base.not_a_digit_bias, head_at).save(folder)
    return folder


@pytest.mark.parametrize("runtime", ["numpy", "onnx"])
def test_every_runtime_asks_the_head(tmp_path, app_config_model_dir, mnist_test, runtime):
    images = (mnist_test[0][:40] / 255.0).astype(np.float32)
    folder = tmp_path / "model"
    shutil.copytree(app_config_model_dir, folder)
    (folder / HEAD_FILE).unlink(missing_ok=True)
    plain = Recognizer(folder, runtime)
    assert plain.head is None
    # A head that refuses everything: every answer, one by one or in a batch, is a refusal.
    refusing = Recognizer(with_constant_head(folder, 1.0, 0.5), runtime)
    assert refusing.head is not None
    batch = refusing.classify_batch(images)
    assert refusing.calibration.refused(batch).all()
    assert all(refusing.predict(image).verdict == "not_a_digit" for image in images[:5])
    np.testing.assert_allclose(refusing.predict_batch(images), plain.predict_batch(images), atol=1e-6)
    # Under its threshold the head changes no answer.
    lenient = Recognizer(with_constant_head(folder, 1.0, 2.0), runtime)
    expected = Calibration(*dataclasses.astuple(lenient.calibration)[:3]).answers(plain.classify_batch(images))
    assert (lenient.calibration.answers(lenient.classify_batch(images)) == expected).all()
    assert [lenient.predict(image).digit for image in images[:5]] == [int(a) for a in expected[:5]]
    # A head threshold without the head's file: the model's own output decides.
    (folder / HEAD_FILE).unlink()
    assert Recognizer(folder, runtime).head is None
