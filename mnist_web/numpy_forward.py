"""The folded model (mnist_web/folding.py) run with NumPy alone: no TensorFlow needed to serve.

A convolution is im2col (a strided view of every window, no copy until the reshape) and one matrix product,
so the work is in BLAS. Set OPENBLAS_NUM_THREADS=1 before NumPy loads when each worker process should use one
core (the container image does): these matrices are small, and the workers are the parallelism.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .folding import Conv, Dense, Flatten, MaxPool, Relu, Tap, Unfoldable, fold, output_width, tapped
from .saved_model import saved_layers

# Images per pass in `NumpyForward.batch`: im2col of the widest layer is ~0.65 MB an image; passes this
# small stay in the CPU's caches and, with one BLAS thread, ran faster than passes of 16 to 64 (~+20 %).
CHUNK = 8


class NumpyForward:
    """Probabilities for (n, h, w, c) float32 images, computed step by step with NumPy."""

    def __init__(self, steps):
        self.steps = [self._prepared(step) for step in steps]
        self.outputs = output_width(steps)  # width of an answer row

    @classmethod
    def from_files(cls, json_path, weights_path, taps=False):
        """Load the JSON config and .weights.h5 (with `taps`, see folding.tapped); Unfoldable if it cannot run it."""
        steps = fold(saved_layers(json_path, weights_path))
        return cls(tapped(steps) if taps else steps)

    def __call__(self, x):
        """The model's output for one batch of images (then the tapped activations, if any)."""
        x = np.asarray(x, np.float32)
        owned = False  # never write into the caller's array
        kept = []
        for kind, *args in self.steps:
            if kind is Tap:
                kept.append(x)  # the next step makes a new array: nothing writes into this one
                continue
            if kind is Relu:
                x = np.maximum(x, 0, out=x) if owned else np.maximum(x, 0)
            elif kind is Flatten:
                x = x.reshape(len(x), -1)
            elif kind is MaxPool:
                x = _max_pool(x, *args)
            elif kind is Conv:
                x = _activate(_conv(x, *args[:-1]), args[-1])
            else:
                x = _activate(x @ args[0] + args[1], args[2])
            owned = True
        return np.concatenate([x, *kept], axis=1) if kept else x

    def batch(self, images, chunk=CHUNK):
        """The model's output for any number of images, computed CHUNK at a time."""
        parts = [self(images[i : i + chunk]) for i in range(0, len(images), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, self.outputs), np.float32)

    @staticmethod
    def _prepared(step):
        # Tuples with the kernels as im2col needs them, so a call does no per-step setup.
        if isinstance(step, Conv):
            height, width, channels, filters = step.kernel.shape
            kernel = np.ascontiguousarray(step.kernel.reshape(height * width * channels, filters))
            return Conv, kernel, step.bias, (height, width), step.strides, step.padding, step.activation
        if isinstance(step, Dense):
            return Dense, np.ascontiguousarray(step.kernel), step.bias, step.activation
        if isinstance(step, MaxPool):
            return MaxPool, step.size, step.strides, step.padding
        if isinstance(step, (Relu, Flatten, Tap)):
            return (type(step),)
        raise Unfoldable(f"no NumPy step for {step!r}")


def _same_padding(size, window, stride):
    # TensorFlow's SAME: output ceil(size / stride), the extra row/column at the end.
    total = max((-(-size // stride) - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def _pad(x, window, strides, padding, value):
    if padding == "valid":
        return x
    (top, bottom), (left, right) = (_same_padding(x.shape[axis], window[i], strides[i]) for i, axis in ((0, 1), (1, 2)))
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x, window, strides):
    """(n, out_h, out_w, c, window_h, window_w): a view, no copy."""
    return sliding_window_view(x, window, axis=(1, 2))[:, :: strides[0], :: strides[1]]


def _conv(x, kernel, bias, window, strides, padding):
    windows = _windows(_pad(x, window, strides, padding, 0.0), window, strides)
    n, out_h, out_w, channels = windows.shape[:4]
    # im2col rows in the kernel's (h, w, c) order
    columns = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * out_h * out_w, -1)
    out = columns @ kernel
    out += bias
    return out.reshape(n, out_h, out_w, -1)


def _max_pool(x, size, strides, padding):
    n, height, width, channels = x.shape
    if padding == "valid" and tuple(size) == tuple(strides):
        # Non-overlapping windows: a reshape, much faster than the general view.
        rows, cols = height // size[0], width // size[1]
        x = x[:, : rows * size[0], : cols * size[1]]
        return x.reshape(n, rows, size[0], cols, size[1], channels).max(axis=(2, 4))
    return _windows(_pad(x, size, strides, padding, -np.inf), size, strides).max(axis=(4, 5))


def _activate(x, activation):
    if activation == "relu":
        return np.maximum(x, 0, out=x)
    if activation == "softmax":
        x = np.exp(x - x.max(axis=-1, keepdims=True))
        x /= x.sum(axis=-1, keepdims=True)
    return x
