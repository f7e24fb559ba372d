"""The one path every prediction takes, in either mode: decode, read (answers.py), record."""

import base64
import time

import cv2
import numpy as np
from flask import current_app

from .answers import digit_answer, number_answer
from .db import get_store
from .decode_budget import get_budget
from .limits import IMAGE_TYPES
from .metrics import metrics
from .preprocessing import check_image_size, image_ink, parse_data_url
from .recognizer import get_recognizer
from .store.base import Record, new_record_id, record_time


def recognizer():
    """The process's recognizer for the configured model folder."""
    return get_recognizer(current_app.config["MNIST_MODEL_DIR"], current_app.config["MNIST_INFERENCE"])


def predict_and_record(data, source, client_ip, record_id=None, mode="digit"):
    """Read image bytes or a data URL in a mode (answers.py); store the record (under record_id or a fresh id)."""
    model = recognizer()  # loaded once per process; not part of the request's latency
    started = time.perf_counter()
    if isinstance(data, str) or bytes(data[:5]).lower() == b"data:":
        data = parse_data_url(data)
    data = bytes(data)
    config = current_app.config
    limits = config["MNIST_MAX_IMAGE_PIXELS"], config["MNIST_MAX_DECODED_BYTES"]
    kind, _, _, cost = check_image_size(data, *limits)
    with get_budget().reserve(cost, config["MNIST_DECODE_WAIT_SECONDS"]):
        ink, scale = image_ink(data, *limits)
        answer = (number_answer if mode == "number" else digit_answer)(ink, scale, model)
    latency_ms = (time.perf_counter() - started) * 1000.0

    record_id = record_id or new_record_id()
    record = Record(
        id=record_id,
        created_at=record_time(record_id),
        source=source,
        client_ip=client_ip or "",
        image=data,
        image_type=IMAGE_TYPES[kind],
        model_version=model.version,
        latency_ms=round(latency_ms, 3),
        **answer,
    )
    get_store().add(record)
    found = metrics()
    found.predictions.labels(str(record.digit) if record.digit is not None else record.verdict).inc()
    found.inference.observe(latency_ms / 1000.0)
    return record


def model_input_png(record):
    """The 28x28 image the model saw, as PNG bytes; a number's inputs side by side (28 x 28n)."""
    return input_png(np.frombuffer(record.model_input, np.uint8).reshape(-1, 28, 28))


def input_png(inputs):
    """(n, 28, 28) uint8 model inputs side by side, as PNG bytes."""
    ok, encoded = cv2.imencode(".png", np.concatenate(list(inputs), axis=1))
    return encoded.tobytes()


def png_data_url(png):
    """PNG bytes as a data URL the page can show at once."""
    return f"data:{IMAGE_TYPES['png']};base64," + base64.b64encode(png).decode("ascii")


def model_input_data_urls(record):
    """(the model input as a data URL, one data URL per digit read) for a prediction's answer."""
    inputs = np.frombuffer(record.model_input, np.uint8).reshape(-1, 28, 28)
    each = [png_data_url(input_png(i[None])) for i in inputs] if record.digits else []
    return png_data_url(input_png(inputs)), each
