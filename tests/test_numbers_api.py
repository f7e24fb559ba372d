"""Number mode through the HTTP API: canvas numbers and paper photos, several digits in digit mode, labels, limits."""

import base64
import copy
import dataclasses
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mnist_web import create_app, exif
from mnist_web.answers import number_answer
from mnist_web.evaluation import read_number
from mnist_web.limits import MAX_UPLOAD_BYTES
from mnist_web.numbers import NUMBER_CANVAS, canvas_numbers, paper_photos
from mnist_web.preprocessing import image_ink
from mnist_web.segmentation import read_digits

NUMBERS_SEED = 1313
PHOTOS_SEED = 1314


@pytest.fixture(scope="module")
def numbers(mnist_test):
    """Eight canvas numbers of 2-3 MNIST test digits (PNG bytes, digit string)."""
    images, labels = mnist_test
    return list(canvas_numbers(images, labels, 8, seed=NUMBERS_SEED, lengths=(2, 3)))


@pytest.fixture(scope="module")
def photos(mnist_test):
    """Three paper photos of 2-4 digits (JPEG bytes, digit string)."""
    images, labels = mnist_test
    return list(paper_photos(images, labels, 3, seed=PHOTOS_SEED, lengths=(2, 4)))


def data_url(png):
    return "data:image/png;base64," + base64.b64encode(png).decode()


def assert_number_answer(response, size, source):
    """The shape of a number-mode answer; returns the body."""
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["mode"] == "number" and body["source"] == source and body["digit"] is None
    assert body["verdict"] in ("number", "not_a_digit")
    width, height = size
    for digit in body["digits"]:
        x, y, w, h = digit["box"]
        assert 0 <= x and 0 <= y and 0 < w and 0 < h and x + w <= width + 1 and y + h <= height + 1
        assert len(digit["probabilities"]) == 10 and 0 <= digit["not_a_digit"] <= 1
        assert digit["model_input"].startswith("data:image/png;base64,")
        pixels = cv2.imdecode(np.frombuffer(base64.b64decode(digit["model_input"].split(",", 1)[1]), np.uint8), 0)
        assert pixels.shape == (28, 28) and pixels.max() > 0
    if body["verdict"] == "number":
        assert body["number"] == "".join(str(d["digit"]) for d in body["digits"])
        assert body["confidence"] == pytest.approx(math.prod(d["confidence"] for d in body["digits"]), rel=1e-6)
    return body


def test_canvas_numbers_are_read_with_boxes_and_inputs(client, numbers, recognizer):
    right = 0
    for png, truth in numbers:
        response = client.post("/api/v1/predictions?mode=number", data=png, content_type="image/png")
        body = assert_number_answer(response, NUMBER_CANVAS, "api")
        assert body["number"] == read_number(recognizer, png)  # the same reading as the evaluation's
        right += body["number"] == truth
        # Boxes run left to right in the drawing's pixels.
        lefts = [d["box"][0] for d in body["digits"]]
        assert lefts == sorted(lefts)
    assert right >= 6, f"{right} of {len(numbers)} numbers read right"


def test_number_record_round_trips_with_its_inputs_side_by_side(client, numbers):
    png, _ = numbers[0]
    body = client.post("/predict/?mode=number", data=data_url(png), content_type="text/plain").get_json()
    assert body["source"] == "canvas" and body["mode"] == "number"
    stored = client.get(f"/api/v1/predictions/{body['id']}").get_json()
    for key in ("number", "digits", "verdict", "mode", "confidence"):
        if key == "digits":
            assert stored[key] == [{k: v for k, v in d.items() if k != "model_input"} for d in body[key]]
        else:
            assert stored[key] == body[key]
    strip = client.get(f"/api/v1/predictions/{body['id']}/input")
    pixels = cv2.imdecode(np.frombuffer(strip.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert pixels.shape == (28, 28 * len(body["digits"]))
    listed = client.get("/api/v1/predictions?limit=1").get_json()["items"][0]
    assert listed["id"] == body["id"] and listed["number"] == body["number"]


def test_mode_as_form_field_and_json_key(client, numbers):
    png, _ = numbers[1]
    form = client.post("/api/v1/predictions", data={"file": (io.BytesIO(png), "n.png"), "mode": "number"})
    assert assert_number_answer(form, NUMBER_CANVAS, "upload")["digits"]
    as_json = client.post("/api/v1/predictions", json={"image": data_url(png), "mode": "number"})
    assert assert_number_answer(as_json, NUMBER_CANVAS, "api")["number"] == form.get_json()["number"]


def test_paper_photos_in_number_mode(client, photos, recognizer):
    right = 0
    for jpeg, truth in photos:
        width, height = _upright_size(jpeg)
        response = client.post("/api/v1/predictions", data={"file": (io.BytesIO(jpeg), "photo.jpg"), "mode": "number"})
        body = assert_number_answer(response, (width, height), "upload")
        right += body["number"] == truth
    assert right >= 2, f"{right} of {len(photos)} photos read right"


def _upright_size(jpeg):
    """(width, height) of a JPEG as its EXIF orientation shows it."""
    pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_GRAYSCALE)
    height, width = pixels.shape
    return (height, width) if exif.orientation(jpeg) in exif.TRANSPOSING else (width, height)


def test_digit_mode_says_several_digits_instead_of_guessing(client, numbers, drawing, mnist_test):
    several = 0
    for png, _ in numbers:
        body = client.post("/predict/", data=data_url(png), content_type="text/plain").get_json()
        assert body["mode"] == "digit"
        if body["verdict"] == "several_digits":
            several += 1
            assert body["digit"] is None and len(body["number"]) >= 2 and len(body["digits"]) >= 2
        else:  # not said to be several digits: answered as one digit, or refused as none
            assert (body["digit"] is not None) == (body["verdict"] == "digit")
    assert several >= 6, f"{several} of {len(numbers)} numbers answered several_digits"
    single = client.post("/predict/", data=data_url(drawing(0)), content_type="text/plain").get_json()
    assert single["verdict"] == "digit" and single["digit"] == mnist_test[1][0] and single["number"] is None
    stats = client.get("/api/v1/stats").get_json()
    assert stats["several_digits"] == several and stats["total"] == len(numbers) + 1


@pytest.mark.parametrize(
    "query, fields",
    [
        ("?mode=numbers", None),
        ("?mode=", None),
        ("?mode=DIGIT", None),
        ("", {"mode": "x"}),
        ("?mode=digit", {"mode": "number"}),
    ],
)
def test_bad_mode_is_400(client, numbers, query, fields):
    png, _ = numbers[0]
    form = {"file": (io.BytesIO(png), "n.png"), **(fields or {})}
    response = client.post(f"/api/v1/predictions{query}", data=form)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_mode"
    canvas = client.post("/predict/?mode=2", data=data_url(png), content_type="text/plain")
    assert canvas.status_code == 400 and canvas.get_json()["error"] == "invalid_mode"
    assert client.get("/api/v1/stats").get_json()["total"] == 0  # nothing was recorded


def test_numbers_are_labelled_with_digit_strings(client, numbers, drawing):
    png, truth = numbers[2]
    body = client.post("/api/v1/predictions?mode=number", data=png, content_type="image/png").get_json()
    url = f"/api/v1/predictions/{body['id']}/label"
    for bad in (4, 42, "4a", "", " 42", "٤٢", True, None, "1" * 33):
        response = client.put(url, json={"label": bad})
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_label", bad
    labelled = client.put(url, json={"label": "0" + truth}).get_json()
    assert labelled["number_label"] == "0" + truth and labelled["label"] is None
    stats = client.get("/api/v1/stats").get_json()
    assert stats["numbers"] == {"total": 1, "read": 1, "refused": 0, "labelled": 1, "correct": 0, "accuracy": 0.0}
    client.put(url, json={"label": body["number"]})
    stats = client.get("/api/v1/stats").get_json()
    assert (stats["numbers"]["correct"], stats["numbers"]["accuracy"]) == (1, 1.0)
    assert (stats["labelled"], stats["accuracy"]) == (0, None)  # digit accuracy is apart
    digit_id = client.post("/api/v1/predictions", data=drawing(0), content_type="image/png").get_json()["id"]
    response = client.put(f"/api/v1/predictions/{digit_id}/label", json={"label": "7"})
    assert response.status_code == 400  # digit records keep integer labels


def phone_photo(jpeg, size=(4032, 3024), orientation=6):
    """A paper photo made phone-sized: 12 MP, grain at full resolution, quality 95, EXIF orientation 6."""
    pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    upright = exif.upright(pixels, exif.orientation(jpeg))
    if upright.shape[0] > upright.shape[1]:
        upright = np.rot90(upright)
    big = cv2.resize(np.ascontiguousarray(upright), size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big += np.random.default_rng(7).normal(0, 8, big.shape[:2])[..., None]  # sensor noise, as phones have
    stored = exif.stored(np.clip(big, 0, 255).astype(np.uint8), orientation)
    ok, encoded = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return exif.with_orientation(encoded.tobytes(), orientation)


def test_a_12_megapixel_phone_jpeg_is_accepted(client, photos):
    jpeg, truth = photos[0]
    big = phone_photo(jpeg)
    assert 5 * 1024 * 1024 < len(big) < MAX_UPLOAD_BYTES, len(big)  # over the old limit, within the new
    response = client.post("/api/v1/predictions?mode=number", data=big, content_type="image/jpeg")
    body = assert_number_answer(response, (3024, 4032), "api")  # orientation 6: upright it stands tall
    single = client.post("/api/v1/predictions", data={"file": (io.BytesIO(big), "IMG_0001.JPG")})
    assert single.status_code == 201 and single.get_json()["mode"] == "digit"
    assert body["number"] is not None


def test_bodies_over_the_limit_and_bombs_are_still_refused(client, photos):
    jpeg, _ = photos[0]
    too_big = jpeg + b"\x00" * (MAX_UPLOAD_BYTES + 1 - len(jpeg))
    response = client.post("/api/v1/predictions?mode=number", data=too_big, content_type="image/jpeg")
    assert response.status_code == 413
    # A small file whose header claims 20000 x 20000 pixels: refused from the header, never decoded.
    pixels = np.full((64, 64), 255, np.uint8)
    ok, small = cv2.imencode(".jpg", pixels)
    header = small.tobytes()
    sof = header.index(b"\xff\xc0") + 5
    bomb = header[:sof] + (20000).to_bytes(2, "big") + (20000).to_bytes(2, "big") + header[sof + 4 :]
    response = client.post("/api/v1/predictions?mode=number", data=bomb, content_type="image/jpeg")
    assert response.status_code == 413 and response.get_json()["error"] == "image_too_large"
    assert client.get("/api/v1/stats").get_json()["total"] == 0


@pytest.mark.parametrize("mode", [["number"], {"number": 1}, 1, True])
def test_a_mode_that_is_not_a_string_is_400(client, numbers, mode):
    png, _ = numbers[0]
    response = client.post("/api/v1/predictions", json={"image": data_url(png), "mode": mode})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_mode"


@pytest.fixture
def refusing_client(tmp_path, app_config_model_dir):
    """An app whose calibration refuses everything (refuse_at 0): every part of a number is "not a digit"."""
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model_mnist.json", "model_mnist.weights.h5"):
        (model / name).symlink_to(Path(app_config_model_dir) / name)
    (model / "calibration.json").write_text(json.dumps({"temperature": 1.0, "refuse_at": 0.0}))
    app = create_app(
        {"TESTING": True, "MNIST_DATABASE_URL": f"sqlite:///{tmp_path}/records.sqlite3", "MNIST_MODEL_DIR": str(model)}
    )
    yield app.test_client()
    app.extensions["mnist_web.store"].close()


def test_a_part_that_is_not_a_digit_refuses_the_number(refusing_client, numbers):
    png, _ = numbers[0]
    response = refusing_client.post("/api/v1/predictions?mode=number", data=png, content_type="image/png")
    body = assert_number_answer(response, NUMBER_CANVAS, "api")
    assert body["verdict"] == "not_a_digit" and body["number"] is None and body["digit"] is None
    assert body["digits"] and all(d["digit"] is None for d in body["digits"])
    assert body["confidence"] == max(d["not_a_digit"] for d in body["digits"])
    stats = refusing_client.get("/api/v1/stats").get_json()
    assert stats["numbers"]["refused"] == 1 and stats["numbers"]["read"] == 0
    label = refusing_client.put(f"/api/v1/predictions/{body['id']}/label", json={"label": "17"}).get_json()
    assert label["number_label"] == "17"


def test_more_digits_than_a_number_may_have_is_422(client):
    # 40 bars side by side, each read as a 1: more than limits.MAX_NUMBER_DIGITS.
    ink = np.zeros((120, 40 * 30 + 20), np.float32)
    for i in range(40):
        cv2.line(ink, (20 + 30 * i, 20), (20 + 30 * i, 100), 1.0, 5)
    png = cv2.imencode(".png", np.round(255 - ink * 255).astype(np.uint8))[1].tobytes()
    response = client.post("/api/v1/predictions?mode=number", data=png, content_type="image/png")
    assert response.status_code == 422 and response.get_json()["error"] == "too_many_digits"
    assert client.get("/api/v1/stats").get_json()["total"] == 0


def test_a_grid_of_hundreds_of_strokes_is_refused_at_once(client):
    # 900 rings: reading them as a number would take seconds of model time; they are refused first.
    page = np.full((600, 600), 255, np.uint8)
    for i in range(30):
        for j in range(30):
            cv2.circle(page, (10 + 20 * i, 10 + 20 * j), 5, 0, 2)
    png = cv2.imencode(".png", page)[1].tobytes()
    response = client.post("/api/v1/predictions?mode=number", data=png, content_type="image/png")
    assert response.status_code == 422 and response.get_json()["error"] == "too_many_digits"
    single = client.post("/api/v1/predictions", data=png, content_type="image/png")
    assert single.status_code == 201 and single.get_json()["verdict"] != "several_digits"


def test_a_part_the_refusal_head_refuses_at_its_threshold_refuses_the_number(recognizer, numbers):
    """The number's parts are refused by the calibration's own rule, the head's threshold included."""
    if recognizer.head is None:
        pytest.skip("the committed model has no refusal head")
    png, _ = numbers[0]
    ink, _ = image_ink(png)
    parts = read_digits(ink, recognizer)
    _, scores = recognizer.outputs(np.stack([part.model_input for part in parts]))
    # A threshold just under the most doubtful part's score (by more than the 1e-6 a different batch makes of a
    # score): that part is refused by the head, with P(not a digit) within float32 rounding of refuse_at.
    at_threshold = copy.copy(recognizer)
    at_threshold.calibration = dataclasses.replace(recognizer.calibration, head_at=float(scores.max()) - 1e-5)
    answer = number_answer(ink, 1.0, at_threshold)
    assert answer["verdict"] == "not_a_digit" and answer["number"] is None
    refuse_at = recognizer.calibration.refuse_at
    assert any(d["digit"] is None for d in answer["digits"])
    for digit in answer["digits"]:
        assert (digit["digit"] is None) == (digit["not_a_digit"] >= refuse_at)
