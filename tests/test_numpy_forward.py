"""The NumPy and ONNX runtimes compute what Keras does, refuse what they cannot run; MNIST_INFERENCE picks one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers
from test_folding import as_if_trained, small_model

from mnist_web import create_app
from mnist_web.folding import Unfoldable, folded_forward
from mnist_web.numpy_forward import NumpyForward
from mnist_web.onnx_forward import OnnxForward
from mnist_web.recognizer import (
    MODEL_JSON,
    MODEL_WEIGHTS,
    REQUEST_BATCH,
    Recognizer,
    get_recognizer,
    keras_forward,
    runtime_for,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", params=["numpy", "onnx"])
def light_recognizer(request, app_config_model_dir):
    """The committed model on a runtime without TensorFlow."""
    return Recognizer(app_config_model_dir, request.param)


def saved(model, folder):
    """Save a Keras model the way the committed one is saved (JSON config + .weights.h5)."""
    (folder / MODEL_JSON).write_text(model.to_json())
    model.save_weights(folder / MODEL_WEIGHTS)
    return folder


def test_committed_model_on_the_whole_mnist_test_set(light_recognizer, keras_recognizer, mnist_test):
    images, labels = mnist_test
    inputs = (images / 255.0).astype("float32")
    expected = keras_recognizer.model.predict(inputs[..., None], batch_size=500, verbose=0)  # Keras itself, unfolded
    got = light_recognizer.predict_batch(inputs)
    assert got.shape == expected.shape == (10000, light_recognizer.classes)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    answers = light_recognizer.calibration.answers(light_recognizer.calibration.apply(got))
    assert (answers == labels).mean() >= 0.995  # a refusal counts as wrong


def test_single_image_path_and_version(light_recognizer, keras_recognizer, mnist_test):
    assert light_recognizer.runtime in ("numpy", "onnx") and keras_recognizer.runtime == "tensorflow"
    assert light_recognizer.version == keras_recognizer.version
    images = (mnist_test[0][:32] / 255.0).astype("float32")
    batch = light_recognizer.classify_batch(images)
    answers = light_recognizer.calibration.answers(batch)
    for image, row, answer in zip(images, batch, answers, strict=True):
        prediction = light_recognizer.predict(image)
        np.testing.assert_allclose([*prediction.probabilities, prediction.not_a_digit], row, rtol=0, atol=1e-6)
        digit = keras_recognizer.predict(image).digit
        assert prediction.digit == (None if answer < 0 else int(answer)) == digit
    assert light_recognizer.predict_batch(images[:0]).shape == (0, light_recognizer.classes)


def test_does_not_write_into_the_callers_images(light_recognizer, mnist_test):
    images = (mnist_test[0][:4] / 255.0).astype("float32")
    before = images.copy()
    light_recognizer.predict_batch(images)
    light_recognizer.predict(images[0])
    assert np.array_equal(images, before)


@pytest.mark.parametrize("runtime", [NumpyForward, OnnxForward])
def test_strides_padding_and_dense_batch_norm(tmp_path, runtime):
    model = as_if_trained(
        small_model(
            layers.Conv2D(8, 5, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(pool_size=3, strides=2, padding="same"),
            layers.Conv2D(8, 3, use_bias=False, activation="relu"),
            layers.Conv2D(6, (2, 3), strides=(1, 2), padding="same"),
            layers.BatchNormalization(scale=False),
            layers.ReLU(),
            layers.MaxPooling2D(pool_size=2, padding="same"),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(16),
            layers.BatchNormalization(center=False),
            layers.ReLU(),
            layers.Dense(10, activation="softmax"),
        )
    )
    forward = runtime.from_files(*(saved(model, tmp_path) / name for name in (MODEL_JSON, MODEL_WEIGHTS)))
    images = np.random.default_rng(1).random((64, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(forward.batch(images), np.asarray(model(images, training=False)), rtol=0, atol=1e-5)


def branched():
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.Add()([x, layers.Conv2D(4, 1)(inputs)])
    return keras.Model(inputs, layers.Dense(10)(layers.Flatten()(x)))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: small_model(layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(), layers.Dense(10)), "not supported"),
        (
            lambda: small_model(layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization(), layers.Flatten()),
            "does not follow a linear",
        ),
        (lambda: small_model(layers.Conv2D(4, 3), layers.ReLU(max_value=6.0), layers.Flatten()), "not a plain ReLU"),
        (lambda: small_model(layers.Conv2D(4, 3, dilation_rate=2), layers.Flatten()), "dilated"),
        (lambda: small_model(layers.Conv2D(4, 3, activation="tanh"), layers.Flatten()), "activation 'tanh'"),
        (lambda: small_model(layers.Conv2D(4, 3), layers.Dense(10)), "Dense layer on (n, h, w, c)"),
        (branched, "not a plain chain"),
    ],
    ids=["unknown-layer", "norm-after-relu", "relu6", "dilated", "tanh", "dense-on-maps", "add"],
)
@pytest.mark.parametrize("runtime", ["numpy", "onnx"])
def test_models_it_cannot_run_are_refused(tmp_path, build, message, runtime):
    folder = saved(as_if_trained(build()), tmp_path)
    with pytest.raises(Unfoldable, match=message.replace("(", r"\(").replace(")", r"\)")):
        Recognizer(folder, runtime)


def test_channels_first_is_refused(tmp_path, app_config_model_dir):
    # Edit the committed config (Keras on CPU cannot build a channels_first convolution to save one).
    config = json.loads((Path(app_config_model_dir) / MODEL_JSON).read_text())
    config["config"]["layers"][1]["config"]["data_format"] = "channels_first"
    (tmp_path / MODEL_JSON).write_text(json.dumps(config))
    (tmp_path / MODEL_WEIGHTS).write_bytes((Path(app_config_model_dir) / MODEL_WEIGHTS).read_bytes())
    with pytest.raises(Unfoldable, match="conv2d is not channels_last"):
        Recognizer(tmp_path, "numpy")


def test_mnist_inference_picks_the_runtime(app_config_model_dir, monkeypatch):
    assert Recognizer(app_config_model_dir, "numpy").model is None
    assert Recognizer(app_config_model_dir, "tensorflow").model is not None
    assert Recognizer(app_config_model_dir, "onnx").model is None
    auto = Recognizer(app_config_model_dir, "auto")
    # auto: ONNX Runtime for one image; TensorFlow (installed here) for batches, loaded only when a batch comes.
    assert (auto.runtime, auto.batch_runtime, auto.model) == ("onnx", "tensorflow", None)
    # A request's few pieces (up to REQUEST_BATCH) stay on ONNX Runtime; more are a batch for TensorFlow.
    images = np.random.default_rng(1).random((REQUEST_BATCH + 1, 28, 28), dtype=np.float32)
    auto.predict_batch(images[:16])
    assert auto.model is None
    batch = auto.classify_batch(images)
    assert auto.model is not None
    singles = np.array([(*auto.predict(image).probabilities, auto.predict(image).not_a_digit) for image in images[:16]])
    np.testing.assert_allclose(batch[:16], singles, atol=1e-5)
    with pytest.raises(ValueError, match="MNIST_INFERENCE='torch'"):
        Recognizer(app_config_model_dir, "torch")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not installed: ONNX Runtime for batches too
    assert Recognizer(app_config_model_dir, "auto").batch_runtime == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # and without ONNX Runtime: NumPy for both
    assert (Recognizer(app_config_model_dir, "auto").runtime, runtime_for("auto", batch=True)) == ("numpy", "numpy")


def test_requests_never_load_tensorflow_by_default(tmp_path, drawing, mnist_test):
    """With the default setting a prediction runs without importing TensorFlow (a fresh interpreter)."""
    (tmp_path / "digit.png").write_bytes(drawing(0))
    code = (
        "import sys, mnist_web\n"
        f"app = mnist_web.create_app({{'TESTING': True, 'MNIST_DATABASE_URL': 'sqlite:///{tmp_path}/db'}})\n"
        f"body = open('{tmp_path}/digit.png', 'rb').read()\n"
        "answer = app.test_client().post('/api/v1/predictions', data=body, content_type='image/png')\n"
        "print(answer.status_code, answer.json['digit'], 'tensorflow' in sys.modules)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "MNIST_INFERENCE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["201", str(mnist_test[1][0]), "False"]


def test_the_app_uses_the_configured_runtime(tmp_path):
    """create_app's MNIST_INFERENCE reaches the recognizer the request path uses."""
    app = create_app({"TESTING": True, "MNIST_INFERENCE": "numpy", "MNIST_DATABASE_URL": f"sqlite:///{tmp_path}/db"})
    with app.app_context():
        from mnist_web.predictions import recognizer

        assert recognizer().runtime == "numpy"
    app.extensions["mnist_web.store"].close()
    model_dir = app.config["MNIST_MODEL_DIR"]
    assert get_recognizer(model_dir, "numpy") is get_recognizer(model_dir, "numpy") is not get_recognizer(model_dir)


def blas_setting(**env):
    """OPENBLAS_NUM_THREADS in a fresh interpreter that imports mnist_web, then NumPy."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MNIST_INFERENCE")}
    code = "import os, mnist_web, numpy; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_one_blas_thread_per_worker_by_default():
    assert blas_setting() == "1"
    assert blas_setting(MNIST_INFERENCE="numpy") == "1"
    assert blas_setting(OPENBLAS_NUM_THREADS="4") == "4"
    assert blas_setting(MNIST_INFERENCE="tensorflow") == "None"


def test_tapped_runs_answer_the_same_features_on_every_runtime(app_config_model_dir, keras_recognizer, mnist_test):
    """With taps (the refusal head's inputs) every runtime answers the output, then each Dense layer's input."""
    model = keras_recognizer.model
    images = (mnist_test[0][:64] / 255.0).astype("float32")[..., None]
    files = Path(app_config_model_dir) / MODEL_JSON, Path(app_config_model_dir) / MODEL_WEIGHTS
    reference = np.asarray(keras_forward(model, taps=True)(images))  # Keras itself, unfolded
    dense_inputs = [layer.input.shape[-1] for layer in model.layers if isinstance(layer, layers.Dense)]
    assert reference.shape == (64, keras_recognizer.classes + sum(dense_inputs))
    np.testing.assert_allclose(reference[:, : keras_recognizer.classes], model.predict(images, verbose=0), atol=1e-6)
    runs = {
        "numpy": NumpyForward.from_files(*files, taps=True)(images),
        "onnx": OnnxForward.from_files(*files, taps=True)(images),
        "tensorflow": np.asarray(folded_forward(model, taps=True)(images)),
    }
    for name, answered in runs.items():
        assert answered.shape == reference.shape, name
        np.testing.assert_allclose(answered, reference, rtol=0, atol=1e-4, err_msg=name)
    # Without taps the answer is the output alone, the same numbers.
    np.testing.assert_array_equal(NumpyForward.from_files(*files)(images), runs["numpy"][:, : keras_recognizer.classes])
