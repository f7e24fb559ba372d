"""The drawing page and the endpoint its jQuery posts the canvas to."""

from flask import Blueprint, current_app, jsonify, render_template, request

from .errors import InvalidImage
from .predictions import model_input_data_url, predict_and_record
from .request_ids import record_id_for

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
    return prediction_response(predict_request(body, source="canvas"))


def predict_request(data, source):
    """Predict and record the current request's image, under its client address and its retry-safe id."""
    record_id = record_id_for(request.headers, trusted_proxy=current_app.config["MNIST_PROXY_COUNT"] > 0)
    return predict_and_record(data, source=source, client_ip=request.remote_addr, record_id=record_id)


def prediction_response(record):
    """201 with the record's summary and the 28x28 model input as a data URL."""
    body = record.summary()
    body["model_input"] = model_input_data_url(record)
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/predictions/{record.id}"
    return response
