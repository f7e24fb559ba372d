"""Batch norm folded into the weights computes what the Keras model computes, or is refused."""

import keras
import numpy as np
import pytest
from keras import layers

from mnist_web.folding import folded_forward
from mnist_web.recognizer import MODEL_JSON, MODEL_WEIGHTS, Recognizer


def as_if_trained(model, seed=0):
    """Give every bias and batch norm non-trivial values, as training would, so that folding has work to do."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape).astype("float32"))
        if isinstance(layer, layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, channels).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.3, channels).astype("float32"))
    return model


def small_model(*middle):
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for layer in middle:
        x = layer(x)
    return keras.Model(inputs, x)


def test_committed_model_folds_to_the_same_answers(keras_recognizer, mnist_test):
    images = (mnist_test[0][:512] / 255.0).astype("float32")[..., None]
    forward = folded_forward(keras_recognizer.model)
    assert forward is not None
    folded = np.asarray(forward(images))
    expected = np.asarray(keras_recognizer.model(images, training=False))
    assert np.allclose(folded, expected, atol=1e-5)
    assert (folded.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_strides_padding_and_dense_batch_norm_fold():
    model = as_if_trained(
        small_model(
            layers.Conv2D(8, 5, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(pool_size=3, strides=2, padding="same"),
            layers.Conv2D(8, 3, use_bias=False),
            layers.BatchNormalization(scale=False),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(16),
            layers.BatchNormalization(center=False),
            layers.ReLU(),
            layers.Dense(10, activation="softmax"),
        )
    )
    images = np.random.default_rng(1).random((64, 28, 28, 1), dtype=np.float32)
    forward = folded_forward(model)
    assert forward is not None
    assert np.allclose(np.asarray(forward(images)), np.asarray(model(images, training=False)), atol=1e-5)


@pytest.mark.parametrize(
    "middle",
    [
        # a layer the module does not translate
        (layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax")),
        # batch norm behind a non-linearity cannot merge into the weights
        (layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization(), layers.Flatten(), layers.Dense(10)),
        # a capped ReLU is not a plain one
        (layers.Conv2D(4, 3), layers.ReLU(max_value=6.0), layers.Flatten(), layers.Dense(10)),
    ],
    ids=["unknown-layer", "norm-after-relu", "relu6"],
)
def test_models_it_cannot_fold_are_refused(middle):
    assert folded_forward(as_if_trained(small_model(*middle))) is None


def test_recognizer_falls_back_to_the_keras_model(tmp_path, mnist_test):
    model = as_if_trained(
        small_model(
            layers.Conv2D(8, 3),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax"),
        )
    )
    (tmp_path / MODEL_JSON).write_text(model.to_json())
    model.save_weights(tmp_path / MODEL_WEIGHTS)
    recognizer = Recognizer(tmp_path, "tensorflow")
    images = (mnist_test[0][:16] / 255.0).astype("float32")
    expected = np.asarray(model(images[..., None], training=False))
    assert np.allclose(recognizer.predict_batch(images), expected, atol=1e-5)
    assert np.allclose(recognizer.predict(images[0]).probabilities, expected[0], atol=1e-5)
