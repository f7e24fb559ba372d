"""Merging models into one wider model (mnist_web/ensemble.py): it answers the members' mean logits."""

import numpy as np
import pytest

from mnist_web.ensemble import merge


def small_cnn(seed, outputs=11):
    """A small model of the shipped architecture's layer kinds, with random weights and batch-norm statistics."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters in (3, 4):
        x = layers.Conv2D(filters, 3, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.4)(layers.Flatten()(x))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(5, use_bias=False)(x)))
    model = keras.Model(inputs, layers.Dense(outputs, activation="softmax")(layers.Dropout(0.4)(x)))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 2, gamma.shape),
                    rng.normal(size=beta.shape),
                    rng.normal(size=mean.shape),
                    rng.uniform(0.5, 2, variance.shape),
                ]
            )
    return model


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("count", [2, 3])
def test_merged_model_answers_the_members_mean_logits(count):
    members = [small_cnn(seed) for seed in range(count)]
    merged = merge(members)
    x = np.random.default_rng(7).uniform(0, 1, (16, 28, 28, 1)).astype("float32")

    member_logs = [np.log(np.asarray(m(x, training=False), np.float64)) for m in members]
    expected = log_softmax(np.mean(member_logs, axis=0))  # a log-probability is a logit up to a constant
    answered = np.log(np.asarray(merged(x, training=False), np.float64))

    np.testing.assert_allclose(answered, expected, atol=2e-4)
    assert merged.layers[1].filters == 3 * count
    assert not np.allclose(member_logs[0], member_logs[1], atol=1e-2)  # the members really differ


def test_a_member_with_the_not_a_digit_output_gives_only_its_digit_logits():
    digits_only, with_refusal = small_cnn(0, outputs=10), small_cnn(1, outputs=11)
    x = np.random.default_rng(8).uniform(0, 1, (16, 28, 28, 1)).astype("float32")
    merged = merge([with_refusal, digits_only])
    assert merged.layers[-1].units == 10
    # The first ten log-probabilities of the 11-output member are its digit logits up to a constant per image.
    member_logs = [np.log(np.asarray(m(x, training=False), np.float64))[:, :10] for m in (with_refusal, digits_only)]
    answered = np.log(np.asarray(merged(x, training=False), np.float64))
    np.testing.assert_allclose(answered, log_softmax(np.mean(member_logs, axis=0)), atol=2e-4)


def test_merging_needs_two_members():
    with pytest.raises(ValueError):
        merge([small_cnn(0)])


def test_runtimes_compute_a_merged_model_by_groups_and_agree_with_keras():
    from mnist_web.folding import Conv, Dense, block_groups, dense_groups, fold, keras_layers
    from mnist_web.numpy_forward import NumpyForward
    from mnist_web.onnx_forward import OnnxForward

    merged = merge([small_cnn(seed) for seed in (3, 4)])
    steps = fold(keras_layers(merged))
    convs = [step for step in steps if isinstance(step, Conv)]
    dense = [step for step in steps if isinstance(step, Dense)]
    # The first convolution reads the shared input; later ones and the hidden Dense are two independent blocks.
    assert [block_groups(step.kernel) for step in convs] == [1, 2]
    assert dense_groups(dense[0].kernel, convs[-1].kernel.shape[-1]) == 2
    assert dense_groups(dense[1].kernel, dense[0].kernel.shape[-1]) == 1  # the logits are shared
    assert block_groups(small_cnn(5).layers[4].get_weights()[0]) == 1

    x = np.random.default_rng(8).uniform(0, 1, (9, 28, 28, 1)).astype("float32")
    expected = np.asarray(merged(x, training=False))
    for runtime in (OnnxForward(steps), NumpyForward(steps)):
        np.testing.assert_allclose(runtime(x), expected, atol=1e-5)
