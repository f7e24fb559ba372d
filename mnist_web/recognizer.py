"""The trained CNN: loaded once per process, lazily, from model/model_mnist.json + .weights.h5."""

import dataclasses
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from .folding import folded_forward

log = logging.getLogger(__name__)

MODEL_JSON = "model_mnist.json"
MODEL_WEIGHTS = "model_mnist.weights.h5"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    digit: int
    confidence: float
    probabilities: tuple


class Recognizer:
    """A loaded model with compiled call paths for one image and for batches."""

    def __init__(self, model_dir):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        model_dir = Path(model_dir)
        weights = model_dir / MODEL_WEIGHTS
        self.model = keras.models.model_from_json((model_dir / MODEL_JSON).read_text())
        self.model.load_weights(weights)
        self.version = "cnn-" + hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        # model.predict costs ~40 ms a call in setup alone. A concrete function (traced once, called
        # without tf.function's argument dispatch) costs well under 1 ms: XLA-compiled for one image,
        # oneDNN's kernels for batches, where they are faster. Batch norm folded into the weights saves
        # oneDNN a pass over every activation map (XLA fuses it anyway).
        self._tf = tf
        forward = folded_forward(self.model) or (lambda x: self.model(x, training=False))
        self._one = tf.function(forward, jit_compile=True).get_concrete_function(
            tf.TensorSpec([1, 28, 28, 1], tf.float32)
        )
        self._many = tf.function(forward).get_concrete_function(tf.TensorSpec([None, 28, 28, 1], tf.float32))
        self._one(tf.zeros([1, 28, 28, 1]))  # compile now, not on the first request
        log.info("model %s loaded from %s", self.version, model_dir)

    def predict(self, image):
        """Classify one 28x28 float32 image (white on black, 0..1)."""
        batch = self._tf.convert_to_tensor(np.asarray(image, np.float32).reshape(1, 28, 28, 1))
        probabilities = self._one(batch).numpy()[0]
        digit = int(probabilities.argmax())
        return Prediction(digit, float(probabilities[digit]), tuple(float(p) for p in probabilities))

    def predict_batch(self, images, batch_size=1024):
        """Return the (n, 10) probabilities for n 28x28 images."""
        images = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
        convert = self._tf.convert_to_tensor
        parts = [self._many(convert(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 10), np.float32)


_lock = threading.Lock()
_loaded = {}


def get_recognizer(model_dir):
    """The process's recognizer for a model folder, loaded on first use (after any fork)."""
    key = (os.getpid(), str(model_dir))
    if key not in _loaded:
        with _lock:
            if key not in _loaded:
                _loaded[key] = Recognizer(model_dir)
    return _loaded[key]


def loaded_recognizer(model_dir):
    """The recognizer if this process has loaded it already, else None (for readiness checks)."""
    return _loaded.get((os.getpid(), str(model_dir)))
