"""The drawing page and the endpoint its jQuery posts the canvas to."""

from flask import Blueprint, jsonify, render_template, request

from .errors import InvalidImage
from .predictions import model_input_data_url, predict_and_record

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """The drawing page."""
    return render_template("index.html")


@bp.post("/predict/")
def predict_canvas():
    """Classify the canvas: the body is the raw `data:image/png;base64,...` URL."""
    body = request.get_data(cache=False)
    if not body.strip():
        raise InvalidImage("empty body: send the canvas as a data URL")
    record = predict_and_record(body, source="canvas", client_ip=request.remote_addr)
    return prediction_response(record)


def prediction_response(record):
    """201 with the record's summary and the 28x28 model input as a data URL."""
    body = record.summary()
    body["model_input"] = model_input_data_url(record)
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/predictions/{record.id}"
    return response
