"""Bound the memory that concurrent image decodes take in one worker process.

Each decode reserves its estimated full-size cost (preprocessing.check_image_size) from a per-process
budget before decoding and returns it after; a decode that does not fit waits its turn, and one
that waits too long is answered 503, so a burst of large images cannot push a worker out of memory.
"""

import contextlib
import threading

from flask import current_app

from .errors import ServerBusy
from .preprocessing import DECODE_PEAK_FACTOR

EXTENSION = "mnist_web.decode_budget"


class MemoryBudget:
    """A counting semaphore measured in bytes."""

    def __init__(self, total_bytes):
        self.total = total_bytes
        self.free = total_bytes
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, cost, timeout):
        """Hold `cost` bytes of the budget for the block; raise ServerBusy after `timeout` seconds."""
        cost = min(cost, self.total)  # check_image_size already refused anything over the per-image cap
        with self._changed:
            if not self._changed.wait_for(lambda: self.free >= cost, timeout):
                raise ServerBusy("too many large images are being decoded; try again shortly")
            self.free -= cost
        try:
            yield
        finally:
            with self._changed:
                self.free += cost
                self._changed.notify_all()


def get_budget():
    """This app's decode budget."""
    return current_app.extensions[EXTENSION]


def init_app(app):
    """Make the per-process budget: at least one largest-allowed image fits in it."""
    largest = DECODE_PEAK_FACTOR * app.config["MNIST_MAX_DECODED_BYTES"]
    total = max(app.config["MNIST_DECODE_MEMORY_BUDGET"], largest)
    app.extensions[EXTENSION] = MemoryBudget(total)
