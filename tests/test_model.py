"""The committed model: loads from JSON + weights, meets the accuracy targets counting refusals as wrong,
refuses drawings that are not digits, and says confidences that mean what they say."""

import json
from pathlib import Path

import keras
import numpy as np

from mnist_web.evaluation import (
    calibration_errors,
    canvas_accuracy,
    digit_refusals,
    mnist_test_accuracy,
    not_digit_refusals,
    pen_digit_reads,
)
from mnist_web.recognizer import MODEL_JSON, MODEL_WEIGHTS, Recognizer
from mnist_web.refusal_head import HEAD_FILE

# Issue 12's targets, under what the committed model measures (README, "Not a digit"): 99.70 %, 99.53 %,
# 97.35 % of 2,000 freehand non-digits refused (this test draws 1,000), ECE 0.12 % / 0.12 %.
MNIST_TARGET = 0.996
CANVAS_TARGET = 0.995
NOT_DIGITS_REFUSED_TARGET = 0.95
ECE_TARGET = 0.01


def test_model_loads_from_json_and_weights(app_config_model_dir):
    model_dir = Path(app_config_model_dir)
    model = keras.models.model_from_json((model_dir / MODEL_JSON).read_text())
    model.load_weights(model_dir / MODEL_WEIGHTS)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Conv2D", "MaxPooling2D", "Dense"} <= kinds
    assert model.output_shape == (None, 11)  # ten digits, then "not a digit"


def test_recognizer_probabilities_are_a_distribution(recognizer, mnist_test):
    prediction = recognizer.predict(mnist_test[0][0] / 255.0)
    assert prediction.verdict == "digit"
    assert len(prediction.probabilities) == 10
    assert abs(sum(prediction.probabilities) + prediction.not_a_digit - 1.0) < 1e-4
    assert prediction.confidence == max(prediction.probabilities)
    assert prediction.digit == int(np.argmax(prediction.probabilities))


def test_single_and_batched_paths_agree(recognizer, mnist_test):
    images = mnist_test[0][:64] / 255.0
    batch = recognizer.classify_batch(images)
    singles = np.array(
        [(*recognizer.predict(image).probabilities, recognizer.predict(image).not_a_digit) for image in images]
    )
    assert np.allclose(batch, singles, atol=1e-4)


def test_a_drawing_that_is_no_digit_is_refused_with_its_probability(recognizer):
    from mnist_web.evaluation import not_digit_inputs

    inputs, kinds, _ = not_digit_inputs(80)
    refused = [recognizer.predict(image) for image in inputs if recognizer.predict(image).digit is None]
    assert len(refused) >= 0.4 * len(inputs)
    for prediction in refused:
        assert prediction.verdict == "not_a_digit"
        assert prediction.confidence == prediction.not_a_digit >= recognizer.calibration.refuse_at


def test_mnist_test_accuracy(recognizer, app_config_model_dir):
    accuracy = mnist_test_accuracy(recognizer)
    assert accuracy >= MNIST_TARGET
    recorded = json.loads((Path(app_config_model_dir) / "metrics.json").read_text())
    assert abs(recorded["test_accuracy"] - accuracy) < 1e-3


def test_canvas_set_accuracy(recognizer):
    accuracy, unread = canvas_accuracy(recognizer)  # a refusal counts as wrong
    assert unread == 0
    assert accuracy >= CANVAS_TARGET


def test_few_digits_are_refused_and_most_non_digits_are(recognizer):
    wrongly = digit_refusals(recognizer)
    assert wrongly["mnist"] <= 0.002 and wrongly["canvas"] <= 0.002
    share, by_kind = not_digit_refusals(recognizer, 1000)
    assert share >= NOT_DIGITS_REFUSED_TARGET, by_kind


def test_digits_drawn_with_the_page_pen_are_read_and_none_refused(recognizer):
    """The page's uniform round pen is no sign of "not a digit" (the model before pen-traced training digits
    refused 3 of these 600, an open-top 4 and a tall narrow 0 among them)."""
    reads = pen_digit_reads(recognizer, 10)
    right, refused, drawn = (sum(column) for column in zip(*reads.values(), strict=True))
    assert drawn == 600
    assert refused == 0, reads
    assert right >= 0.995 * drawn, reads


def test_confidence_is_calibrated(recognizer):
    for name, (before, after) in calibration_errors(recognizer).items():
        assert after <= ECE_TARGET, (name, before, after)


def test_the_version_names_the_weights_the_calibration_and_the_head_in_use(tmp_path, app_config_model_dir):
    """Records say which model answered: a recalibration is another model, an unused head file is not."""
    source = Path(app_config_model_dir)

    def folder(name, calibration, head):
        path = tmp_path / name
        path.mkdir()
        for file in (MODEL_JSON, MODEL_WEIGHTS) + ((HEAD_FILE,) if head else ()):
            (path / file).symlink_to(source / file)
        (path / "calibration.json").write_text(json.dumps(calibration))
        return Recognizer(path, "numpy").version

    committed = json.loads((source / "calibration.json").read_text())
    assert folder("same", committed, head=True) == Recognizer(source, "numpy").version
    assert folder("recalibrated", {**committed, "temperature": 1.0}, head=True) != Recognizer(source, "numpy").version
    plain = {"temperature": 0.6, "refuse_at": 0.99}
    assert folder("no_head", plain, head=False) == folder("unused_head", plain, head=True)
