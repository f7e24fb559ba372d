"""The committed model: loads from JSON + weights and meets both accuracy targets."""

import json
from pathlib import Path

import keras
import numpy as np

from mnist_web.evaluation import canvas_accuracy, mnist_test_accuracy
from mnist_web.recognizer import MODEL_JSON, MODEL_WEIGHTS

MNIST_TARGET = 0.996
CANVAS_TARGET = 0.993


def test_model_loads_from_json_and_weights(app_config_model_dir):
    model_dir = Path(app_config_model_dir)
    model = keras.models.model_from_json((model_dir / MODEL_JSON).read_text())
    model.load_weights(model_dir / MODEL_WEIGHTS)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Conv2D", "MaxPooling2D", "Dense"} <= kinds
    assert model.output_shape == (None, 10)


def test_recognizer_probabilities_are_a_distribution(recognizer, mnist_test):
    prediction = recognizer.predict(mnist_test[0][0] / 255.0)
    assert len(prediction.probabilities) == 10
    assert abs(sum(prediction.probabilities) - 1.0) < 1e-4
    assert prediction.confidence == max(prediction.probabilities)
    assert prediction.digit == int(np.argmax(prediction.probabilities))


def test_single_and_batched_paths_agree(recognizer, mnist_test):
    images = mnist_test[0][:64] / 255.0
    batch = recognizer.predict_batch(images)
    singles = np.array([recognizer.predict(image).probabilities for image in images])
    assert np.allclose(batch, singles, atol=1e-4)


def test_mnist_test_accuracy(recognizer, app_config_model_dir):
    accuracy = mnist_test_accuracy(recognizer)
    assert accuracy >= MNIST_TARGET
    recorded = json.loads((Path(app_config_model_dir) / "metrics.json").read_text())
    assert abs(recorded["test_accuracy"] - accuracy) < 1e-3


def test_canvas_set_accuracy(recognizer):
    accuracy, refused = canvas_accuracy(recognizer)
    assert refused == 0
    assert accuracy >= CANVAS_TARGET
