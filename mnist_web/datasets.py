"""MNIST loading: the IDX files from a local folder, or the Keras download as a fallback."""

import gzip
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# IDX magic numbers: 0x0803 is a 3-d uint8 tensor (images), 0x0801 a 1-d one (labels).
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}


def read_idx(path):
    """Read one gzipped (or plain) IDX file into a uint8 numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if ndim not in _IDX_MAGIC or magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"{path}: not a uint8 IDX file (magic {magic:#010x})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {shape}, found {data.size} bytes")
    return data.reshape(shape)


def default_data_dir():
    """The folder named by MNIST_DATA_DIR, or ../shared/mnist beside the repo if it exists."""
    env = os.environ.get("MNIST_DATA_DIR")
    if env:
        return Path(env)
    beside_repo = Path(__file__).resolve().parent.parent.parent / "shared" / "mnist"
    return beside_repo if beside_repo.is_dir() else None


def load_mnist(data_dir=None):
    """Return ((x_train, y_train), (x_test, y_test)) as uint8 arrays, images 28x28 white on black."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if data_dir and all((data_dir / name).exists() for name in IDX_FILES.values()):
        log.info("loading MNIST from %s", data_dir)
        parts = {key: read_idx(data_dir / name) for key, name in IDX_FILES.items()}
        return (
            (parts["train_images"], parts["train_labels"]),
            (parts["test_images"], parts["test_labels"]),
        )
    log.info("no local MNIST IDX files in %s; using the Keras download", data_dir)
    import keras

    return keras.datasets.mnist.load_data()
