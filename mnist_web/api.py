"""The JSON API under /api/v1: post images, list and fetch predictions, label them."""

import base64
import binascii
import re
import uuid

from flask import Blueprint, Response, current_app, jsonify, request

from .db import get_store
from .errors import InvalidImage, MnistWebError, RecordNotFound
from .limits import ACCEPTED_IMAGE_TYPES, IMAGE_TYPES
from .predictions import model_input_png
from .web import predict_request, prediction_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# The one spelling of a record id this API accepts: lower-case, hyphenated, 36 characters.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ASCII digits only (str.isdigit also takes superscripts and other scripts' digits), and short.
ASCII_COUNT = re.compile(r"[0-9]{1,6}")


class UnsupportedMediaType(MnistWebError):
    """Send multipart/form-data with a `file` field, a raw image/png|jpeg|bmp body, or JSON {"image": ...}."""

    status = 415
    code = "unsupported_media_type"


class BadRequestBody(MnistWebError):
    """The request body is not what this endpoint takes."""

    status = 400
    code = "bad_request"


@bp.post("/predictions")
def create_prediction():
    """Classify an uploaded file, a raw image body, or JSON {"image": data URL or base64}."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequestBody("no `file` field in the form")
        data, source = upload.read(), "upload"
    elif mimetype in ACCEPTED_IMAGE_TYPES:
        data, source = request.get_data(cache=False), "api"
    elif mimetype == "application/json":
        data, source = _image_from_json(), "api"
    else:
        raise UnsupportedMediaType()
    if not data:
        raise InvalidImage("empty image")
    return prediction_response(predict_request(data, source=source))


def _image_from_json():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("image"), str):
        raise BadRequestBody('send JSON {"image": "<data URL or base64>"}')
    text = body["image"].strip()
    if text[:5].lower() == "data:":
        return text.encode("ascii", errors="replace")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("the image is not valid base64") from None


def _record_id(text):
    if not CANONICAL_UUID.fullmatch(text):
        raise RecordNotFound()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise RecordNotFound() from None
    if parsed.version != 1:
        raise RecordNotFound()
    return parsed


@bp.get("/predictions")
def list_predictions():
    """Newest first: ?limit=1..100 and ?cursor= from the previous page's next_cursor."""
    limit_text = request.args.get("limit", "20")
    if not ASCII_COUNT.fullmatch(limit_text) or not 1 <= int(limit_text) <= current_app.config["MNIST_HISTORY_LIMIT"]:
        raise BadRequestBody(f"limit must be an integer from 1 to {current_app.config['MNIST_HISTORY_LIMIT']}")
    cursor_text = request.args.get("cursor")
    cursor = None
    if cursor_text:
        try:
            cursor = _record_id(cursor_text)
        except RecordNotFound:
            raise BadRequestBody("invalid cursor") from None
    records, next_cursor = get_store().recent(int(limit_text), cursor)
    return jsonify(items=[r.summary() for r in records], next_cursor=str(next_cursor) if next_cursor else None)


@bp.get("/predictions/<record_id>")
def get_prediction(record_id):
    """One prediction's details."""
    return jsonify(get_store().get(_record_id(record_id)).summary())


@bp.get("/predictions/<record_id>/image")
def get_image(record_id):
    """The image as it was submitted."""
    record = get_store().get(_record_id(record_id))
    return Response(record.image, mimetype=record.image_type)


@bp.get("/predictions/<record_id>/input")
def get_model_input(record_id):
    """The 28x28 image the model saw, as PNG."""
    return Response(model_input_png(get_store().get(_record_id(record_id))), mimetype=IMAGE_TYPES["png"])


@bp.put("/predictions/<record_id>/label")
def put_label(record_id):
    """Store the user's correct digit: JSON {"label": 0-9}."""
    record_id = _record_id(record_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "label" not in body:
        raise BadRequestBody('send JSON {"label": <0-9>}')
    return jsonify(get_store().set_label(record_id, body["label"]).summary())


@bp.get("/stats")
def stats():
    """Counts per predicted digit, refusals, and the accuracy over labelled records."""
    found = get_store().stats()
    return jsonify(
        total=found.total,
        per_digit={str(d): n for d, n in sorted(found.per_digit.items())},
        not_a_digit=found.not_a_digit,
        labelled=found.labelled,
        correct=found.correct,
        accuracy=found.accuracy,
    )
