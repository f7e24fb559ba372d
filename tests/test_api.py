"""The HTTP API: every endpoint, every kind of bad input, and a fuzzer that never sees a 5xx."""

import base64
import io
import json
import uuid

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from images import cross_png, png_header_only
from mnist_web.limits import MAX_UPLOAD_BYTES

FIELDS = {"id", "digit", "verdict", "confidence", "probabilities", "not_a_digit", "created_at", "model_version"}


def data_url(png):
    return "data:image/png;base64," + base64.b64encode(png).decode()


def as_format(png, ext):
    ok, out = cv2.imencode(ext, cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR))
    return out.tobytes()


def assert_prediction(response, digit, source):
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert FIELDS <= body.keys() and "client_ip" not in body and "image" not in body
    assert body["digit"] == digit and body["source"] == source and body["verdict"] == "digit"
    # Ten digits' probabilities; with the probability of "not a digit" they sum to 1.
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) + body["not_a_digit"] - 1) < 1e-3
    assert body["confidence"] == max(body["probabilities"])
    assert body["created_at"].endswith("Z") and body["model_version"].startswith("cnn-")
    assert uuid.UUID(body["id"]).version == 1
    assert response.headers["Location"] == f"/api/v1/predictions/{body['id']}"
    assert body["model_input"].startswith("data:image/png;base64,")
    return body


def test_canvas_endpoint_takes_the_raw_data_url(client, drawing, mnist_test):
    response = client.post("/predict/", data=data_url(drawing(0, "transparent")), content_type="text/plain")
    assert_prediction(response, mnist_test[1][0], "canvas")


def test_multipart_upload(client, drawing, mnist_test):
    response = client.post("/api/v1/predictions", data={"file": (io.BytesIO(drawing(1)), "anything.txt")})
    assert_prediction(response, mnist_test[1][1], "upload")


@pytest.mark.parametrize("ext, content_type", [(".png", "image/png"), (".jpg", "image/jpeg"), (".bmp", "image/bmp")])
def test_raw_body(client, drawing, mnist_test, ext, content_type):
    body = as_format(drawing(2), ext)
    response = client.post("/api/v1/predictions", data=body, content_type=content_type)
    assert_prediction(response, mnist_test[1][2], "api")


def test_type_is_judged_by_magic_bytes_not_the_declared_type(client, drawing, mnist_test):
    jpeg = as_format(drawing(3), ".jpg")
    response = client.post("/api/v1/predictions", data={"file": (io.BytesIO(jpeg), "digit.png")})
    body = assert_prediction(response, mnist_test[1][3], "upload")
    assert client.get(f"/api/v1/predictions/{body['id']}/image").mimetype == "image/jpeg"


@pytest.mark.parametrize("as_url", [True, False])
def test_json_body(client, drawing, mnist_test, as_url):
    png = drawing(4)
    image = data_url(png) if as_url else base64.b64encode(png).decode()
    assert_prediction(client.post("/api/v1/predictions", json={"image": image}), mnist_test[1][4], "api")


def test_record_endpoints(client, drawing, mnist_test):
    png = drawing(0)
    created = client.post("/api/v1/predictions", data=png, content_type="image/png").get_json()
    record_id = created["id"]

    fetched = client.get(f"/api/v1/predictions/{record_id}").get_json()
    assert fetched["digit"] == created["digit"] and fetched["label"] is None

    image = client.get(f"/api/v1/predictions/{record_id}/image")
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data == png

    seen = client.get(f"/api/v1/predictions/{record_id}/input")
    pixels = cv2.imdecode(np.frombuffer(seen.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert seen.mimetype == "image/png" and pixels.shape == (28, 28) and pixels.max() == 255

    labelled = client.put(f"/api/v1/predictions/{record_id}/label", json={"label": 7})
    assert labelled.status_code == 200 and labelled.get_json()["label"] == 7
    assert client.get(f"/api/v1/predictions/{record_id}").get_json()["label"] == 7


def test_listing_pages_newest_first_with_a_cursor(client, drawing):
    ids = [
        client.post("/api/v1/predictions", data=drawing(i % 5, seed=i), content_type="image/png").get_json()["id"]
        for i in range(7)
    ]
    seen, cursor = [], None
    for _ in range(10):
        query = "/api/v1/predictions?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_stats_count_digits_and_accuracy(client, drawing, mnist_test):
    digits = []
    for index in (0, 1, 2):
        body = client.post("/api/v1/predictions", data=drawing(index), content_type="image/png").get_json()
        digits.append(body["digit"])
        label = body["digit"] if index < 2 else (body["digit"] + 1) % 10
        client.put(f"/api/v1/predictions/{body['id']}/label", json={"label": label})
    stats = client.get("/api/v1/stats").get_json()
    assert stats["total"] == 3 and stats["labelled"] == 3 and stats["correct"] == 2
    assert stats["accuracy"] == pytest.approx(2 / 3)
    assert sum(stats["per_digit"].values()) == 3
    for digit in digits:
        assert stats["per_digit"][str(digit)] >= 1


def assert_refused_and_labelled(client, record_id, image=None):
    """A refused record reads back refused (listing, stats) and can be labelled with a digit: a wrong answer."""
    stored = client.get(f"/api/v1/predictions/{record_id}").get_json()
    assert (stored["digit"], stored["verdict"], stored["label"]) == (None, "not_a_digit", None)
    assert len(stored["probabilities"]) == 10
    if image is not None:  # what was drawn is kept
        assert client.get(f"/api/v1/predictions/{record_id}/image").data == image
    listed = client.get("/api/v1/predictions?limit=1").get_json()["items"][0]
    assert (listed["id"], listed["digit"], listed["verdict"]) == (record_id, None, "not_a_digit")
    stats = client.get("/api/v1/stats").get_json()
    assert (stats["total"], stats["not_a_digit"], sum(stats["per_digit"].values())) == (1, 1, 0)
    labelled = client.put(f"/api/v1/predictions/{record_id}/label", json={"label": 4})
    assert labelled.status_code == 200, labelled.get_json()
    assert (labelled.get_json()["label"], labelled.get_json()["verdict"]) == (4, "not_a_digit")
    stats = client.get("/api/v1/stats").get_json()
    assert (stats["labelled"], stats["correct"], stats["accuracy"]) == (1, 0, 0.0)


@pytest.mark.parametrize("endpoint", ["/api/v1/predictions", "/predict/"])
def test_an_x_is_not_a_digit_and_still_recorded(client, endpoint):
    """Needs a model that refuses (11 classes): 201, digit null, verdict not_a_digit, and a record."""
    png = cross_png()
    if endpoint == "/predict/":
        response = client.post(endpoint, data=data_url(png), content_type="text/plain")
    else:
        response = client.post(endpoint, data=png, content_type="image/png")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["digit"], body["verdict"]) == (None, "not_a_digit"), body
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) + body["not_a_digit"] - 1) < 1e-3
    assert body["confidence"] == body["not_a_digit"]
    assert body["model_input"].startswith("data:image/png;base64,")
    assert response.headers["Location"] == f"/api/v1/predictions/{body['id']}"
    assert 'mnist_predictions_total{digit="not_a_digit"} 1.0' in client.get("/metrics").data.decode()
    assert_refused_and_labelled(client, body["id"], png)


def test_a_refused_record_reads_back_and_takes_a_label(app, client):
    """Without the model: a refused record put in the app's store, through every read endpoint and a label."""
    from test_store_contract import make_refusal

    from mnist_web.db import get_store

    refused = make_refusal()
    with app.app_context():
        get_store().add(refused)
    body = client.get(f"/api/v1/predictions/{refused.id}").get_json()
    assert body["not_a_digit"] == refused.not_a_digit and body["confidence"] == refused.confidence
    assert_refused_and_labelled(client, str(refused.id), refused.image)


def test_health_readiness_metrics_and_openapi(client, drawing):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    detail = ready.get_json()
    assert detail["model"]["ready"] and detail["store"] == {"backend": "sqlite", "ready": True}
    assert detail["spool_depth"] == 0

    digit = client.post("/api/v1/predictions", data=drawing(0), content_type="image/png").get_json()["digit"]
    text = client.get("/metrics").data.decode()
    assert f'mnist_predictions_total{{digit="{digit}"}} 1.0' in text
    assert 'mnist_http_requests_total{endpoint="/api/v1/predictions",method="POST",status="201"} 1.0' in text
    assert "mnist_http_request_duration_seconds_bucket" in text
    assert "mnist_spool_depth 0.0" in text

    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/predict/",
        "/api/v1/predictions",
        "/api/v1/predictions/{record_id}",
        "/api/v1/predictions/{record_id}/image",
        "/api/v1/predictions/{record_id}/label",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"]


def test_security_headers(client):
    for path in ("/", "/healthz", "/api/v1/predictions/missing"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"


def _blank_png():
    ok, out = cv2.imencode(".png", np.full((280, 280), 255, np.uint8))
    return out.tobytes()


def _bomb():
    ok, out = cv2.imencode(".png", np.zeros((6000, 6000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return out.tobytes()


BAD_POSTS = {
    "no file field": dict(data={"other": (io.BytesIO(b"x"), "x.png")}),
    "empty multipart file": dict(data={"file": (io.BytesIO(b""), "x.png")}),
    "empty raw body": dict(data=b"", content_type="image/png"),
    "not an image": dict(data=b"hello world", content_type="image/png"),
    "truncated png": dict(data="TRUNCATED", content_type="image/png"),
    "svg": dict(data=b'<svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>', content_type="image/png"),
    "svg upload": dict(data={"file": (io.BytesIO(b"<svg/>"), "seven.png")}),
    "gif": dict(
        data=b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x00\x00\x00\x00\x00;",
        content_type="image/gif",
    ),
    "gif with png type": dict(data=b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", content_type="image/png"),
    "over the pixel limit": dict(data=png_header_only(50_000, 50_000), content_type="image/png"),
    "decompression bomb": dict(data="BOMB", content_type="image/png"),
    "body over the size limit": dict(data=b"\x89PNG" + b"\x00" * (MAX_UPLOAD_BYTES + 1), content_type="image/png"),
    "huge json": dict(data=json.dumps({"image": "A" * (MAX_UPLOAD_BYTES + 1)}), content_type="application/json"),
    "json without image": dict(json={"picture": "x"}),
    "json not an object": dict(json=[1, 2, 3]),
    "malformed json": dict(data=b"{not json", content_type="application/json"),
    "json bad base64": dict(json={"image": "@@@not base64@@@"}),
    "json malformed data url": dict(json={"image": "data:image/png;base64,%%%"}),
    "json non-image data url": dict(json={"image": "data:text/html;base64,PGgxPmhpPC9oMT4="}),
    "blank canvas": dict(data="BLANK", content_type="image/png"),
    "unsupported content type": dict(data=b"abc", content_type="text/csv"),
}
EXPECTED = {
    "no file field": (400, "bad_request"),
    "empty multipart file": (400, "invalid_image"),
    "empty raw body": (400, "invalid_image"),
    "not an image": (415, "unsupported_image_type"),
    "truncated png": (400, "invalid_image"),
    "svg": (415, "unsupported_image_type"),
    "svg upload": (415, "unsupported_image_type"),
    "gif": (415, "unsupported_media_type"),
    "gif with png type": (415, "unsupported_image_type"),
    "over the pixel limit": (413, "image_too_large"),
    "decompression bomb": (413, "image_too_large"),
    "body over the size limit": (413, "request_entity_too_large"),
    "huge json": (413, "request_entity_too_large"),
    "json without image": (400, "bad_request"),
    "json not an object": (400, "bad_request"),
    "malformed json": (400, "bad_request"),
    "json bad base64": (400, "invalid_image"),
    "json malformed data url": (400, "invalid_image"),
    "json non-image data url": (400, "invalid_image"),
    "blank canvas": (422, "no_digit_found"),
    "unsupported content type": (415, "unsupported_media_type"),
}


def _resolve(kwargs, drawing):
    placeholders = {"TRUNCATED": lambda: drawing(0)[:300], "BOMB": _bomb, "BLANK": _blank_png}
    data = kwargs.get("data")
    if isinstance(data, str) and data in placeholders:
        return {**kwargs, "data": placeholders[data]()}
    return kwargs


@pytest.mark.parametrize("case", sorted(BAD_POSTS))
def test_bad_posts_get_a_clear_4xx_and_the_server_keeps_serving(client, drawing, case):
    response = client.post("/api/v1/predictions", **_resolve(BAD_POSTS[case], drawing))
    status, code = EXPECTED[case]
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"] == code and body["message"]
    assert client.post("/api/v1/predictions", data=drawing(0), content_type="image/png").status_code == 201


@pytest.mark.parametrize(
    "body, status, code",
    [
        ("", 400, "invalid_image"),
        ("data:image/png;base64,", 400, "invalid_image"),
        ("data:image/png;base64,!!!!", 400, "invalid_image"),
        ("data:text/plain;base64,aGk=", 400, "invalid_image"),
        ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", 415, "unsupported_image_type"),
        ("not a data url at all", 415, "unsupported_image_type"),
        ("BLANK", 422, "no_digit_found"),
    ],
)
def test_bad_canvas_posts(client, body, status, code):
    if body == "BLANK":
        body = data_url(_blank_png())
    response = client.post("/predict/", data=body, content_type="text/plain")
    assert response.status_code == status and response.get_json()["error"] == code


@pytest.mark.parametrize("label", [-1, 10, "3", 3.5, True, None, [1]])
def test_label_outside_0_to_9_is_refused(client, drawing, label):
    record_id = client.post("/api/v1/predictions", data=drawing(0), content_type="image/png").get_json()["id"]
    response = client.put(f"/api/v1/predictions/{record_id}/label", json={"label": label})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_label"
    assert client.get(f"/api/v1/predictions/{record_id}").get_json()["label"] is None


@pytest.mark.parametrize("body", [None, {}, {"lab": 1}, "7"])
def test_label_body_must_be_json_with_label(client, drawing, body):
    record_id = client.post("/api/v1/predictions", data=drawing(0), content_type="image/png").get_json()["id"]
    response = client.put(f"/api/v1/predictions/{record_id}/label", json=body)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/v1/predictions/{uuid1}"),
        ("get", "/api/v1/predictions/{uuid1}/image"),
        ("get", "/api/v1/predictions/{uuid1}/input"),
        ("put", "/api/v1/predictions/{uuid1}/label"),
        ("get", "/api/v1/predictions/not-a-uuid"),
        ("get", "/api/v1/predictions/{uuid4}"),
        ("get", "/no/such/page"),
    ],
)
def test_unknown_ids_are_404(client, method, path):
    path = path.format(uuid1=uuid.uuid1(), uuid4=uuid.uuid4())
    response = getattr(client, method)(path, json={"label": 1})
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    "method, path",
    [("delete", "/api/v1/predictions"), ("get", "/predict/"), ("post", "/healthz"), ("patch", "/api/v1/stats")],
)
def test_wrong_method_is_405(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"
    assert response.headers["Allow"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "cursor=nonsense"])
def test_bad_listing_queries_are_400(client, query):
    assert client.get(f"/api/v1/predictions?{query}").status_code == 400


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=256).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
        st.binary(max_size=256).map(lambda b: b"\xff\xd8\xff" + b),
        st.binary(max_size=256).map(lambda b: b"BM" + b),
        st.text(max_size=512).map(lambda t: ("data:image/png;base64," + t).encode()),
    ),
    target=st.sampled_from(
        [
            ("/predict/", "text/plain"),
            ("/predict/?mode=number", "text/plain"),
            ("/api/v1/predictions", "image/png"),
            ("/api/v1/predictions?mode=number", "image/jpeg"),
            ("/api/v1/predictions", "image/jpeg"),
            ("/api/v1/predictions", "application/json"),
            ("/api/v1/predictions", "multipart/form-data; boundary=xyz"),
            ("/api/v1/predictions", "application/octet-stream"),
        ]
    ),
)
def test_random_bodies_never_get_a_5xx(client, body, target):
    path, content_type = target
    response = client.post(path, data=body, content_type=content_type)
    assert response.status_code < 500, (response.status_code, response.get_json())
    if response.status_code >= 400:
        assert set(response.get_json()) == {"error", "message"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_images_never_get_a_5xx(client, drawing, data):
    original = bytearray(as_format(drawing(0), data.draw(st.sampled_from([".png", ".jpg", ".bmp"]))))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    mode = data.draw(st.sampled_from(["digit", "number"]))
    response = client.post(f"/api/v1/predictions?mode={mode}", data=bytes(original[:cut]), content_type="image/png")
    assert response.status_code in (201, 400, 413, 415, 422), response.get_json()
