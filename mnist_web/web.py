"""The drawing page and the endpoint its jQuery posts the canvas to."""

from flask import Blueprint, current_app, jsonify, render_template, request

from .answers import parse_mode
from .errors import InvalidImage
from .predictions import model_input_data_urls, predict_and_record
from .request_ids import record_id_for

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """The drawing page."""
    return render_template("index.html")


@bp.post("/predict/")
def predict_canvas():
    """Classify the canvas: the body is the raw `data:image/png;base64,...` URL; ?mode=number reads a number."""
    mode = parse_mode(request.args.get("mode"))
    body = request.get_data(cache=False)
    if not body.strip():
        raise InvalidImage("empty body: send the canvas as a data URL")
    return prediction_response(predict_request(body, source="canvas", mode=mode))


def predict_request(data, source, mode="digit"):
    """Predict and record the current request's image, under its client address and its retry-safe id."""
    record_id = record_id_for(request.headers, trusted_proxy=current_app.config["MNIST_PROXY_COUNT"] > 0)
    return predict_and_record(data, source=source, client_ip=request.remote_addr, record_id=record_id, mode=mode)


def prediction_response(record):
    """201 with the record's summary and the model input as a data URL (and each digit's, for numbers)."""
    body = record.summary()
    body["model_input"], each = model_input_data_urls(record)
    if record.digits:  # copies: the record's own list stays as stored
        body["digits"] = [{**d, "model_input": url} for d, url in zip(record.digits, each, strict=True)]
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/predictions/{record.id}"
    return response
