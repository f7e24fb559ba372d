"""Configuration from environment variables, with defaults that run on a laptop."""

import os
from pathlib import Path

from . import limits

REPO_ROOT = Path(__file__).resolve().parent.parent


def _int(name, default):
    return int(os.environ.get(name, default))


def _days(name):
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    days = int(value)
    if days < 1:
        raise ValueError(f"{name} must be a whole number of days, at least 1 (or empty: keep forever)")
    return days


class Config:
    """Every setting the service reads; each comes from the environment variable of the same name."""

    # Where records go: sqlite:///path, cassandra://host1,host2:9042/keyspace?..., redis://host:6379/0.
    # Empty means SQLite in the Flask instance folder.
    MNIST_DATABASE_URL = os.environ.get("MNIST_DATABASE_URL", "")
    MNIST_MODEL_DIR = os.environ.get("MNIST_MODEL_DIR", str(REPO_ROOT / "model"))
    # What runs the model: auto (TensorFlow when installed, else NumPy), tensorflow, or numpy.
    MNIST_INFERENCE = os.environ.get("MNIST_INFERENCE", "auto")
    # Durable local spool for records the database could not take (SQLite file); empty: instance folder.
    MNIST_SPOOL_PATH = os.environ.get("MNIST_SPOOL_PATH", "")
    MNIST_SPOOL_MAX_RECORDS = _int("MNIST_SPOOL_MAX_RECORDS", 100_000)
    # Largest request body (bytes) and decoded image (pixels) accepted.
    MAX_CONTENT_LENGTH = _int("MNIST_MAX_UPLOAD_BYTES", limits.MAX_UPLOAD_BYTES)
    MNIST_MAX_IMAGE_PIXELS = _int("MNIST_MAX_IMAGE_PIXELS", limits.MAX_IMAGE_PIXELS)
    # Most bytes one image may take decoded at full size (larger ones get 413), and the bytes all the
    # decodes running at once in one worker process may take together (others wait, then 503).
    MNIST_MAX_DECODED_BYTES = _int("MNIST_MAX_DECODED_BYTES", limits.MAX_DECODED_BYTES)
    MNIST_DECODE_MEMORY_BUDGET = _int("MNIST_DECODE_MEMORY_BUDGET", 192 * 1024 * 1024)
    MNIST_DECODE_WAIT_SECONDS = float(os.environ.get("MNIST_DECODE_WAIT_SECONDS", "10"))
    # Seconds a store operation may take before the record is spooled instead.
    MNIST_STORE_TIMEOUT = float(os.environ.get("MNIST_STORE_TIMEOUT", "2.0"))
    # Whole UTC days records are kept after the day they were made (then deleted, and no longer counted in
    # stats); empty: forever. Cassandra and Redis expire them (TTL), SQLite purges them in the background.
    MNIST_RETENTION_DAYS = _days("MNIST_RETENTION_DAYS")
    MNIST_HISTORY_LIMIT = _int("MNIST_HISTORY_LIMIT", limits.HISTORY_LIMIT)
    # How many proxies in front set X-Forwarded-For (0: use the socket address as the client IP).
    MNIST_PROXY_COUNT = _int("MNIST_PROXY_COUNT", 0)
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
