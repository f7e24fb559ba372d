"""The one path every prediction takes: decode, normalize, classify, record."""

import base64
import time

import cv2
import numpy as np
from flask import current_app

from .db import get_store
from .decode_budget import get_budget
from .limits import IMAGE_TYPES
from .metrics import metrics
from .preprocessing import check_image_size, parse_data_url, preprocess
from .recognizer import get_recognizer
from .store.base import Record, new_record_id, record_time


def recognizer():
    """The process's recognizer for the configured model folder."""
    return get_recognizer(current_app.config["MNIST_MODEL_DIR"], current_app.config["MNIST_INFERENCE"])


def predict_and_record(data, source, client_ip, record_id=None):
    """Classify image bytes or a data URL, store the record (under record_id, or a fresh id), and return it."""
    model = recognizer()  # loaded once per process; not part of the request's latency
    started = time.perf_counter()
    if isinstance(data, str) or bytes(data[:5]).lower() == b"data:":
        data = parse_data_url(data)
    data = bytes(data)
    config = current_app.config
    limits = config["MNIST_MAX_IMAGE_PIXELS"], config["MNIST_MAX_DECODED_BYTES"]
    kind, _, _, cost = check_image_size(data, *limits)
    with get_budget().reserve(cost, config["MNIST_DECODE_WAIT_SECONDS"]):
        model_input = preprocess(data, *limits)
    prediction = model.predict(model_input)
    latency_ms = (time.perf_counter() - started) * 1000.0

    record_id = record_id or new_record_id()
    record = Record(
        id=record_id,
        created_at=record_time(record_id),
        digit=prediction.digit,
        confidence=prediction.confidence,
        probabilities=list(prediction.probabilities),
        source=source,
        client_ip=client_ip or "",
        image=data,
        image_type=IMAGE_TYPES[kind],
        model_input=np.round(model_input * 255).astype(np.uint8).tobytes(),
        model_version=model.version,
        latency_ms=round(latency_ms, 3),
        verdict=prediction.verdict,
        not_a_digit=prediction.not_a_digit,
    )
    get_store().add(record)
    found = metrics()
    found.predictions.labels(prediction.verdict if prediction.digit is None else str(prediction.digit)).inc()
    found.inference.observe(latency_ms / 1000.0)
    return record


def model_input_png(record):
    """The 28x28 image the model saw, as PNG bytes."""
    pixels = np.frombuffer(record.model_input, np.uint8).reshape(28, 28)
    ok, encoded = cv2.imencode(".png", pixels)
    return encoded.tobytes()


def model_input_data_url(record):
    """The 28x28 image the model saw, as a data URL the page can show at once."""
    return f"data:{IMAGE_TYPES['png']};base64," + base64.b64encode(model_input_png(record)).decode("ascii")
