"""The trained CNN: loaded once per process, lazily, from model/model_mnist.json + .weights.h5.

It runs on ONNX Runtime (the graph built from the same weights), on TensorFlow, or on NumPy alone.
"""

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from .calibration import DIGIT_CLASSES, NOT_A_DIGIT, Calibration
from .concurrency import serving_plan
from .config import Config
from .folding import folded_forward
from .limits import VERDICTS
from .numpy_forward import CHUNK as NUMPY_CHUNK
from .numpy_forward import NumpyForward
from .onnx_forward import OnnxForward
from .onnx_forward import available as onnx_available
from .refusal_head import HEAD_FILE, RefusalHead, head_features

log = logging.getLogger(__name__)

MODEL_JSON = "model_mnist.json"
MODEL_WEIGHTS = "model_mnist.weights.h5"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The model's answer for one image: a digit, or None when the drawing is refused as not a digit."""

    digit: int | None
    confidence: float  # calibrated probability of the answer: the digit, or "not a digit" when refused
    probabilities: tuple  # the ten digits' calibrated probabilities (with not_a_digit they sum to 1)
    not_a_digit: float = 0.0  # calibrated probability that the drawing is not a digit

    @property
    def verdict(self):
        """ "digit" or "not_a_digit"."""
        return VERDICTS[self.digit is None]

    @classmethod
    def from_calibrated(cls, row, calibration):
        """The answer for one calibrated row (ten digits, then not-a-digit)."""
        digits = tuple(float(p) for p in row[:DIGIT_CLASSES])
        rest = float(row[NOT_A_DIGIT])
        if rest >= calibration.refuse_at:
            return cls(None, rest, digits, rest)
        digit = int(np.argmax(digits))
        return cls(digit, digits[digit], digits, rest)


INFERENCE_CHOICES = ("auto", "onnx", "tensorflow", "numpy")
# Batches up to this size (a number's pieces, read during a request) run on the one-image runtime: with
# "auto", a request never loads TensorFlow (seconds, and hundreds of MiB per worker).
REQUEST_BATCH = 256


class Recognizer:
    """A loaded model with fast call paths for one image and for batches, run by ONNX Runtime, TensorFlow or NumPy.

    `inference` (default: Config.MNIST_INFERENCE): "onnx", "tensorflow", "numpy", or "auto": ONNX Runtime
    (else NumPy) for one image and TensorFlow for batches where they are installed (see runtime_for). Every
    runtime gives the same digits; the version names the weights, calibration and head either way.
    """

    def __init__(self, model_dir, inference=None):
        self.model_dir = Path(model_dir)
        self.calibration = Calibration.load(self.model_dir)
        self.classes = _output_width(self.model_dir / MODEL_JSON)
        # The refusal head reads the model's inner features, so the runtimes answer them too (folding.tapped).
        self.head = RefusalHead.load(self.model_dir) if self.calibration.head_at is not None else None
        # Everything that shapes an answer names it: the weights, the calibration's parameters, the head in use.
        digest = hashlib.sha256((self.model_dir / MODEL_WEIGHTS).read_bytes())
        digest.update(json.dumps(dataclasses.asdict(self.calibration), sort_keys=True).encode())
        if self.head is not None:
            digest.update((self.model_dir / HEAD_FILE).read_bytes())
        self.version = "cnn-" + digest.hexdigest()[:12]
        setting = Config.MNIST_INFERENCE if inference is None else inference
        self.runtime = runtime_for(setting)  # what runs one image (the request path)
        self.batch_runtime = runtime_for(setting, batch=True)
        self.model = None  # the Keras model, once TensorFlow runs a path
        self._lock = threading.Lock()
        self._one, self._few = self._load(self.runtime)
        # With "auto", TensorFlow is loaded only when a large batch is first asked for (evaluation, never a
        # request: a number's few pieces run on the request path's runtime, see REQUEST_BATCH).
        self._many = self._few if self.batch_runtime == self.runtime else None
        log.info("model %s loaded from %s (%s runtime)", self.version, self.model_dir, self.runtime)

    def _load(self, runtime):
        """(one-image call, batch call) of a runtime."""
        loaders = {"onnx": self._load_onnx, "numpy": self._load_numpy, "tensorflow": self._load_tensorflow}
        return loaders[runtime]()

    def _load_tensorflow(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        self.model = keras.models.model_from_json((self.model_dir / MODEL_JSON).read_text())
        self.model.load_weights(self.model_dir / MODEL_WEIGHTS)
        # model.predict costs ~40 ms a call in setup alone. A concrete function (traced once, called
        # without tf.function's argument dispatch) costs well under 1 ms: XLA-compiled for one image,
        # oneDNN's kernels for batches, where they are faster. Batch norm folded into the weights saves
        # oneDNN a pass over every activation map (XLA fuses it anyway).
        taps = self.head is not None
        forward = folded_forward(self.model, taps=taps) or keras_forward(self.model, taps)
        one = tf.function(forward, jit_compile=True).get_concrete_function(tf.TensorSpec([1, 28, 28, 1], tf.float32))
        many = tf.function(forward).get_concrete_function(tf.TensorSpec([None, 28, 28, 1], tf.float32))
        one(tf.zeros([1, 28, 28, 1]))  # compile now, not on the first request
        return (
            lambda batch: one(tf.convert_to_tensor(batch)).numpy(),
            lambda batch, size: np.concatenate(
                [many(tf.convert_to_tensor(batch[i : i + size])).numpy() for i in range(0, len(batch), size)]
            ),
        )

    def _load_onnx(self):
        forward = OnnxForward.from_files(
            self.model_dir / MODEL_JSON, self.model_dir / MODEL_WEIGHTS, serving_plan()["onnx"], self.head is not None
        )
        return forward, lambda batch, size: forward.batch(batch, size)

    def _load_numpy(self):
        # Unfoldable (a clear message naming the layer) for a model NumPy cannot run exactly.
        files = self.model_dir / MODEL_JSON, self.model_dir / MODEL_WEIGHTS
        forward = NumpyForward.from_files(*files, taps=self.head is not None)
        return forward, lambda batch, size: forward.batch(batch, min(size, NUMPY_CHUNK))

    def predict(self, image):
        """Classify one 28x28 float32 image (white on black, 0..1): a digit, or a refusal."""
        raw, scores = self._split(self._one(np.asarray(image, np.float32).reshape(1, 28, 28, 1)))
        return Prediction.from_calibrated(self.calibration.apply(raw, scores)[0], self.calibration)

    def classify_batch(self, images, batch_size=1024):
        """(n, 11) calibrated probabilities (ten digits, then not-a-digit) for n 28x28 images."""
        return self.calibration.apply(*self.outputs(images, batch_size))

    def predict_batch(self, images, batch_size=1024):
        """Return the model's raw (n, classes) softmax outputs for n 28x28 images."""
        return self.outputs(images, batch_size)[0]

    def outputs(self, images, batch_size=1024):
        """(raw (n, classes) softmax outputs, the refusal head's (n,) scores or None) for n 28x28 images."""
        images = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
        if len(images) == 0:
            return np.zeros((0, self.classes), np.float32), None if self.head is None else np.zeros(0)
        if len(images) <= REQUEST_BATCH:
            return self._split(self._few(images, batch_size))
        if self._many is None:
            with self._lock:
                if self._many is None:
                    self._many = self._load(self.batch_runtime)[1]
        return self._split(self._many(images, batch_size))

    def _split(self, answered):
        """(raw outputs, head scores or None) from a runtime's answer (outputs, then tapped features)."""
        if self.head is None:
            return answered, None
        return answered[:, : self.classes], self.head.scores(head_features(answered, self.classes))


def keras_forward(model, taps=False):
    """The Keras model called directly (a model folding cannot run); with `taps`, its Dense layers' inputs too."""
    if not taps:
        return lambda x: model(x, training=False)
    import keras
    import tensorflow as tf

    inputs = [layer.input for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    tapped = keras.Model(model.input, [model.output, *inputs])
    return lambda x: tf.concat(tapped(x, training=False), axis=1)


def _output_width(model_json):
    """How many classes a saved model answers: the units of its last Dense layer (10 if it has none)."""
    layers = json.loads(Path(model_json).read_text())["config"]["layers"]
    dense = (layer["config"]["units"] for layer in reversed(layers) if layer["class_name"] == "Dense")
    return next(dense, DIGIT_CLASSES)


def runtime_for(inference, batch=False):
    """The runtime ("onnx", "tensorflow" or "numpy") a MNIST_INFERENCE setting picks for one image, or for batches."""
    if inference not in INFERENCE_CHOICES:
        raise ValueError(f"MNIST_INFERENCE={inference!r}: expected one of {', '.join(INFERENCE_CHOICES)}")
    if inference != "auto":
        return inference
    # Measured (README, Model runtimes): ONNX Runtime runs one image about 3x faster than NumPy, which runs
    # it about 1.5x faster than TensorFlow; a worker without TensorFlow is ready in 0.5 s instead of 4 s, at
    # a seventh of the memory. TensorFlow's oneDNN kernels run large batches about 4x faster than NumPy.
    if batch and importlib.util.find_spec("tensorflow") is not None:
        return "tensorflow"
    return "onnx" if onnx_available() else "numpy"


_lock = threading.Lock()
_loaded = {}


def get_recognizer(model_dir, inference=None):
    """The process's recognizer for a model folder and MNIST_INFERENCE setting, loaded on first use (after any fork)."""
    key = _key(model_dir, inference)
    if key not in _loaded:
        with _lock:
            if key not in _loaded:
                _loaded[key] = Recognizer(model_dir, inference)
    return _loaded[key]


def loaded_recognizer(model_dir, inference=None):
    """The recognizer if this process has loaded it already, else None (for readiness checks)."""
    return _loaded.get(_key(model_dir, inference))


def _key(model_dir, inference):
    return os.getpid(), str(model_dir), Config.MNIST_INFERENCE if inference is None else inference
