"""The trained model as a chain of inference steps, each batch norm folded into the layer before it.

At inference a batch norm is a fixed scale and shift per channel, so it can be merged into the weights of
the Conv2D or Dense layer that feeds it. That saves a pass over every activation map and makes batched
prediction about 30 % faster on CPU. `fold` does this once, from (class name, config, weights) triples that
come either from a loaded Keras model (`keras_layers`) or from the saved files (mnist_web/saved_model.py);
its steps are then run by TensorFlow ops (`folded_forward`, here) or by NumPy (mnist_web/numpy_forward.py).
"""

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)

ACTIVATIONS = ("linear", "relu", "softmax")
PADDINGS = ("valid", "same")


class Unfoldable(Exception):
    """The model has a layer or setting this module does not translate."""


@dataclasses.dataclass(frozen=True)
class Conv:
    """A 2-D convolution (kernel height, width, in, out channels), plus bias and activation."""

    kernel: np.ndarray
    bias: np.ndarray
    strides: tuple
    padding: str
    activation: str


@dataclasses.dataclass(frozen=True)
class Dense:
    """x @ kernel + bias, then the activation."""

    kernel: np.ndarray
    bias: np.ndarray
    activation: str


@dataclasses.dataclass(frozen=True)
class Relu:
    """max(x, 0)."""


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """2-D max pooling."""

    size: tuple
    strides: tuple
    padding: str


@dataclasses.dataclass(frozen=True)
class Flatten:
    """(n, h, w, c) to (n, h*w*c), channels last."""


@dataclasses.dataclass(frozen=True)
class Tap:
    """Keep the activations here: the run answers them too, after the output (see `tapped`)."""


def block_groups(kernel, most=8):
    """How many equal independent groups a (..., in, out) kernel's channels fall into (1 if not block-diagonal).

    A merged ensemble's convolutions (mnist_web/ensemble.py) are block-diagonal: group g's outputs read only
    group g's inputs, which a runtime can compute as a grouped convolution at a fraction of the work.
    """
    inputs, outputs = kernel.shape[-2:]
    for groups in range(min(most, inputs), 1, -1):
        if inputs % groups or outputs % groups:
            continue
        rows, cols = inputs // groups, outputs // groups
        blocks = kernel.reshape(-1, groups, rows, groups, cols)
        off_diagonal = ~np.eye(groups, dtype=bool)
        if not np.any(blocks.transpose(1, 3, 0, 2, 4)[off_diagonal]):
            return groups
    return 1


def dense_groups(kernel, width):
    """block_groups of a Dense kernel whose input is `width` channels at each of several flattened positions."""
    inputs, outputs = kernel.shape
    if inputs % width:
        return 1
    return block_groups(kernel.reshape(inputs // width, width, outputs))


def tapped(steps):
    """The steps with a Tap before every Dense: a run answers [output, each Dense layer's input] side by side.

    Those inputs (the flattened convolution features, the penultimate layer) are what the refusal head reads.
    """
    out = []
    for step in steps:
        if isinstance(step, Dense):
            out.append(Tap())
        out.append(step)
    return out


def output_width(steps):
    """Width of a run's answer: the last layer's units, plus the width of every tapped activation."""
    last = next(step for step in reversed(steps) if isinstance(step, (Conv, Dense)))
    pairs = zip(steps, steps[1:], strict=False)
    taps = sum(after.kernel.shape[0] for before, after in pairs if isinstance(before, Tap))
    return last.kernel.shape[-1] + taps


def keras_layers(model):
    """A Keras model's layers as (class name, config, weights) triples, the input `fold` takes."""
    return [(type(layer).__name__, layer.get_config(), layer.get_weights()) for layer in model.layers]


def fold(layers):
    """The inference steps of a chain of (class name, config, weights) layers, batch norm folded in.

    Raises Unfoldable for any layer or setting the executors do not compute exactly as Keras does.
    """
    steps = []
    rank = 4  # (n, h, w, c) images in
    pending = None  # (kind, config, kernel, bias) of a Conv2D/Dense whose batch norm may follow
    for kind, config, weights in layers:
        name = config.get("name", kind)
        weights = [np.asarray(w, np.float32) for w in weights]
        if kind == "BatchNormalization":
            if pending is None or _activation(pending[1]) != "linear":
                raise Unfoldable(f"{name} does not follow a linear Conv2D or Dense")
            pending = _fold(pending, config, weights, rank)
            continue
        if pending is not None:
            steps.append(_weighted_step(*pending))
            pending = None
        if kind == "InputLayer":
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            if shape is not None and len(shape) != 4:
                raise Unfoldable(f"input {name} has shape {shape}, not (n, h, w, c)")
        elif kind == "Dropout":
            continue  # dropout does nothing at inference
        elif kind in ("Conv2D", "Dense"):
            _check_weighted(kind, config, rank)
            count = 1 + bool(config.get("use_bias", True))
            if len(weights) != count:
                raise Unfoldable(f"{name} has {len(weights)} weight arrays, expected {count}")
            kernel = weights[0]
            bias = weights[1] if count == 2 else np.zeros(kernel.shape[-1], np.float32)
            pending = (kind, config, kernel, bias)
        elif kind == "ReLU":
            if config.get("max_value") is not None or any(
                float(config.get(key) or 0) != 0 for key in ("negative_slope", "threshold")
            ):
                raise Unfoldable(f"{name} is not a plain ReLU")
            steps.append(Relu())
        elif kind == "MaxPooling2D":
            _check_image_layer(name, config, rank)
            strides = config.get("strides") or config["pool_size"]
            steps.append(MaxPool(tuple(config["pool_size"]), tuple(strides), _padding(name, config)))
        elif kind == "Flatten":
            _check_image_layer(name, config, rank)
            steps.append(Flatten())
            rank = 2
        else:
            raise Unfoldable(f"layer {name} ({kind}) is not supported")
    if pending is not None:
        steps.append(_weighted_step(*pending))
    return steps


def _check_image_layer(name, config, rank):
    if rank != 4:
        raise Unfoldable(f"{name} needs (n, h, w, c) input")
    if config.get("data_format", "channels_last") != "channels_last":
        raise Unfoldable(f"{name} is not channels_last")


def _check_weighted(kind, config, rank):
    name = config.get("name", kind)
    if kind == "Dense":
        if rank != 2:
            raise Unfoldable(f"{name} is a Dense layer on (n, h, w, c) input")
    else:
        _check_image_layer(name, config, rank)
        _padding(name, config)
        if tuple(config.get("dilation_rate", (1, 1))) != (1, 1) or config.get("groups", 1) != 1:
            raise Unfoldable(f"{name} is dilated or grouped")
    if _activation(config) not in ACTIVATIONS:
        raise Unfoldable(f"{name} has activation {config.get('activation')!r}")


def _padding(name, config):
    padding = config.get("padding", "valid")
    if padding not in PADDINGS:
        raise Unfoldable(f"{name} has padding {padding!r}")
    return padding


def _activation(config):
    activation = config.get("activation") or "linear"
    return activation if isinstance(activation, str) else None  # a dict: a custom or configured one


def _fold(pending, config, weights, rank):
    kind, layer_config, kernel, bias = pending
    name = config.get("name", "BatchNormalization")
    axis = config.get("axis", -1)
    axis = axis if isinstance(axis, int) else axis[0] if len(axis) == 1 else None
    if axis not in (-1, rank - 1):
        raise Unfoldable(f"{name} normalizes axis {config.get('axis')}, not the channels")
    if config.get("renorm"):
        raise Unfoldable(f"{name} uses batch renormalization")
    scale, center = config.get("scale", True), config.get("center", True)
    if len(weights) != scale + center + 2:
        raise Unfoldable(f"{name} has {len(weights)} weight arrays, expected {scale + center + 2}")
    channels = kernel.shape[-1]
    gamma = weights.pop(0) if scale else np.ones(channels, np.float32)
    beta = weights.pop(0) if center else np.zeros(channels, np.float32)
    moving_mean, moving_variance = weights
    factor = gamma / np.sqrt(moving_variance + config.get("epsilon", 1e-3))
    shift = beta - moving_mean * factor
    return kind, layer_config, kernel * factor, bias * factor + shift


def _weighted_step(kind, config, kernel, bias):
    if kind == "Dense":
        return Dense(kernel, bias, _activation(config))
    strides = tuple(config.get("strides", (1, 1)))
    return Conv(kernel, bias, strides, config.get("padding", "valid"), _activation(config))


# ---- the TensorFlow executor ---------------------------------------------------------------------


def folded_forward(model, probe=None, taps=False):
    """A function computing model(x, training=False) with batch norm folded in, or None if it can't be built.

    With `taps`, it answers the output and then each Dense layer's input, side by side (see `tapped`).

    The result is checked against the Keras model on `probe` images (random ones by default) and refused
    if it differs, so an unexpected model falls back to the plain Keras call instead of answering wrongly.
    """
    import tensorflow as tf

    try:
        folded = fold(keras_layers(model))
        steps = [_tf_step(step) for step in (tapped(folded) if taps else folded)]
    except Unfoldable as error:
        log.info("batch norm not folded: %s", error)
        return None

    def forward(x):
        kept = []
        for step in steps:
            if step is None:
                kept.append(x)
            else:
                x = step(x)
        return tf.concat([x, *kept], axis=1) if kept else x

    if probe is None:
        probe = np.random.default_rng(0).random((32, *model.input_shape[1:]), dtype=np.float32)
    expected = np.asarray(model(probe, training=False))
    try:
        agrees = np.allclose(np.asarray(forward(probe))[:, : expected.shape[1]], expected, atol=1e-5)
    except (ValueError, TypeError, RuntimeError) as error:  # TensorFlow's shape errors are ValueErrors
        log.warning("folded model failed (%s); using the Keras model", error)
        return None
    if not agrees:
        log.warning("folded model disagrees with the Keras model; using the Keras model")
        return None
    return forward


def _tf_step(step):
    import tensorflow as tf

    if isinstance(step, Tap):
        return None  # forward() keeps the activations here
    if isinstance(step, Relu):
        return tf.nn.relu
    if isinstance(step, Flatten):
        return lambda x: tf.reshape(x, [tf.shape(x)[0], -1])
    if isinstance(step, MaxPool):
        size, strides, padding = list(step.size), list(step.strides), step.padding.upper()
        return lambda x: tf.nn.max_pool2d(x, size, strides, padding)
    kernel, bias = tf.constant(step.kernel, tf.float32), tf.constant(step.bias, tf.float32)
    activation = {"linear": tf.identity, "relu": tf.nn.relu, "softmax": tf.nn.softmax}[step.activation]
    if isinstance(step, Dense):
        return lambda x: activation(tf.matmul(x, kernel) + bias)
    strides, padding = list(step.strides), step.padding.upper()
    return lambda x: activation(tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides, padding), bias))
