"""Getting a gunicorn worker ready before it takes its first request (called from gunicorn.conf.py)."""

import logging

import cv2
import numpy as np

from .concurrency import serving_plan
from .db import EXTENSION as STORE
from .errors import StoreUnavailable

log = logging.getLogger(__name__)


def configure_tf_threads(intra_op, inter_op):
    """Size TensorFlow's thread pools; only possible before TensorFlow runs its first op in this process."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as exc:  # already initialized: keep what it has
        log.warning("TensorFlow thread pools already set: %s", exc)


def _sample_drawing():
    """A 280x280 canvas PNG with one stroke, to run the whole request path once."""
    page = np.full((280, 280), 255, np.uint8)
    cv2.line(page, (140, 40), (140, 240), 0, 18)
    return cv2.imencode(".png", page)[1].tobytes()


def prepare_worker(app, notify=lambda: None):
    """Load and warm the model and open the store (schema ensured) in this process, before it serves.

    The app itself stays lazy (nothing heavy at import or in gunicorn's master, since TensorFlow and
    database sessions must not cross a fork); gunicorn calls this in each worker after the fork and
    before the worker accepts a connection. `notify` tells gunicorn's master the worker is alive.
    Apps that are not mnist_web (the benchmark's constant endpoint) are left alone.
    """
    if STORE not in getattr(app, "extensions", {}):
        return
    from .predictions import recognizer
    from .preprocessing import preprocess
    from .recognizer import runtime_for

    plan = serving_plan()
    cv2.setNumThreads(plan["opencv"])
    if runtime_for(app.config["MNIST_INFERENCE"]) == "tensorflow":  # the image serves without TensorFlow
        configure_tf_threads(plan["tf_intra_op"], plan["tf_inter_op"])
    with app.app_context():
        try:
            model = recognizer()
            notify()
            for _ in range(3):  # the first calls of OpenCV and the compiled model are slower
                model.predict(preprocess(_sample_drawing(), app.config["MNIST_MAX_IMAGE_PIXELS"]))
        except Exception:  # a broken model shows in /readyz and in this log; the worker still starts
            log.exception("could not load the model")
        notify()
        try:
            app.extensions[STORE].store().ping()
        except StoreUnavailable as exc:  # records are spooled (or answered 503) until it answers
            log.warning("record store not reachable yet: %s", exc)
    log.info("worker ready: %s", plan)
