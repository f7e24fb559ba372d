"""Hostile input, in process: strict ids and numbers, corrupt and costly images, bounded metrics."""

import struct
import threading
import time
import uuid
import zlib

import cv2
import numpy as np
import pytest

from images import make_png
from mnist_web.decode_budget import MemoryBudget
from mnist_web.errors import ImageTooLarge, InvalidImage, ServerBusy
from mnist_web.metrics import KNOWN_METHODS
from mnist_web.preprocessing import DEFAULT_MAX_DECODED_BYTES, decode_image, preprocess


def post_png(client, data, content_type="image/png"):
    return client.post("/api/v1/predictions", data=data, content_type=content_type)


def jpeg_of(png):
    return cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE))[1].tobytes()


# ---- strict numbers, ids and cursors ---------------------------------------------------------


@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A1", "%EF%BC%95", "1%20", "+5", "5.0", "0x5", "9" * 5000, ""])
def test_limit_takes_ascii_digits_only(client, limit):
    response = client.get(f"/api/v1/predictions?limit={limit}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "bad_request"


def test_a_plain_limit_still_works(client):
    assert client.get("/api/v1/predictions?limit=7").status_code == 200


def _id_spellings(record_id):
    text = str(record_id)
    return [
        text.upper(),
        text.replace("-", ""),
        "{" + text + "}",
        "urn:uuid:" + text,
        text[:8] + text[9:13] + "-" + text[13:],
        " " + text,
    ]


def test_only_the_canonical_id_spelling_finds_a_record(client, drawing):
    record_id = post_png(client, drawing(0)).get_json()["id"]
    assert client.get(f"/api/v1/predictions/{record_id}").status_code == 200
    for spelling in _id_spellings(uuid.UUID(record_id)):
        for suffix in ("", "/image", "/input"):
            response = client.get(f"/api/v1/predictions/{spelling}{suffix}")
            assert response.status_code == 404, (spelling, suffix)
            assert response.get_json()["error"] == "not_found"
        assert client.put(f"/api/v1/predictions/{spelling}/label", json={"label": 1}).status_code == 404


def test_only_the_canonical_cursor_spelling_is_accepted(client, drawing):
    for _ in range(2):
        post_png(client, drawing(0))
    cursor = client.get("/api/v1/predictions?limit=1").get_json()["next_cursor"]
    assert client.get(f"/api/v1/predictions?limit=1&cursor={cursor}").status_code == 200
    for spelling in _id_spellings(uuid.UUID(cursor)):
        response = client.get("/api/v1/predictions", query_string={"limit": "1", "cursor": spelling})
        assert response.status_code == 400, spelling


# ---- corrupt images are refused, not guessed from ----------------------------------------------


def _chunks(png):
    pos, out = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        out.append((pos, png[pos + 4 : pos + 8], length))
        pos += 12 + length
    return out


def test_png_with_a_bad_crc_is_refused(client, drawing):
    png = bytearray(drawing(0))
    for pos, kind, length in _chunks(bytes(png)):
        if kind == b"IDAT":
            png[pos + 8 + length + 3] ^= 0xFF  # the IDAT chunk's CRC
    response = post_png(client, bytes(png))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_image"


def _png_with_idat(png, new_idat):
    out = png[:8]
    for pos, kind, length in _chunks(png):
        if kind == b"IDAT":
            data = new_idat
            out += struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
        else:
            out += png[pos : pos + 12 + length]
    return out


@pytest.mark.parametrize("damage", ["truncated zlib", "flipped zlib byte", "too little data", "extra data"])
def test_png_with_damaged_image_data_but_good_crcs_is_refused(drawing, damage):
    png = drawing(0)
    idat = b"".join(png[p + 8 : p + 8 + n] for p, k, n in _chunks(png) if k == b"IDAT")
    raw = zlib.decompress(idat)
    if damage == "truncated zlib":
        new = idat[: len(idat) * 2 // 3]
    elif damage == "flipped zlib byte":
        new = bytearray(idat)
        new[len(new) // 2] ^= 0x55
        new = bytes(new)
    elif damage == "too little data":
        new = zlib.compress(raw[: len(raw) // 2])
    else:
        new = zlib.compress(raw + b"\x00" * 100)
    with pytest.raises(InvalidImage):
        decode_image(_png_with_idat(png, new))


def test_png_cut_anywhere_is_refused(drawing):
    png = drawing(0)
    for cut in range(8, len(png), max(1, len(png) // 97)):
        with pytest.raises(InvalidImage):
            decode_image(png[:cut])


def _scan_start(jpeg):
    return jpeg.index(b"\xff\xda") + 2 + struct.unpack(">H", jpeg[jpeg.index(b"\xff\xda") + 2 :][:2])[0]


@pytest.mark.parametrize("damage", ["premature end", "extraneous bytes before marker", "bad huffman code"])
def test_jpeg_that_libjpeg_calls_corrupt_is_refused(client, drawing, damage):
    jpeg = jpeg_of(drawing(0))
    start, end = _scan_start(jpeg), len(jpeg) - 2
    if damage == "premature end":
        broken = jpeg[: (start + end) // 2] + b"\xff\xd9"
    elif damage == "extraneous bytes before marker":
        sos = jpeg.index(b"\xff\xda")
        broken = jpeg[:sos] + b"\x12\x34\x56" + jpeg[sos:]
    else:
        broken = jpeg[:start] + b"\xff\x00" * 64 + jpeg[start + 128 :]
    # OpenCV still hands back pixels for it (libjpeg only warns) ...
    assert cv2.imdecode(np.frombuffer(broken, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    # ... the service refuses it.
    response = post_png(client, broken, "image/jpeg")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_image", response.get_json()


def test_mutated_jpegs_are_accepted_only_when_libjpeg_sees_no_damage(drawing):
    """Every mutant the service accepts decodes without a libjpeg warning (strict simplejpeg agrees with lax)."""
    import random

    import simplejpeg

    jpeg = jpeg_of(drawing(0))
    rng = random.Random(7)
    refused = 0
    for _ in range(300):
        mutant = bytearray(jpeg)
        mutant[rng.randrange(_scan_start(jpeg), len(jpeg) - 2)] ^= 1 << rng.randrange(8)
        mutant = bytes(mutant)
        try:
            decode_image(mutant)
        except InvalidImage:
            refused += 1
            continue
        simplejpeg.decode_jpeg(mutant, colorspace="GRAY", strict=True)  # raises on any libjpeg warning
    assert refused > 0


# ---- bounded cost per image ----------------------------------------------------------------------


def _page_with_digit(side):
    page = np.full((side, side), 255, np.uint8)
    cv2.putText(page, "7", (side // 5, side * 4 // 5), cv2.FONT_HERSHEY_SIMPLEX, side / 45, 0, max(2, side // 13))
    return page


def test_sixteen_bit_rgba_4000_square_is_refused_before_decoding():
    page = _page_with_digit(4000).astype(np.uint16) * 257
    png = make_png(np.dstack([page] * 3 + [np.full_like(page, 65535)]), color_type=6, bit_depth=16)
    assert len(png) < 400_000
    started = time.process_time()
    with pytest.raises(ImageTooLarge):
        preprocess(png)
    assert time.process_time() - started < 0.5  # refused from the header, long before any decoding


def test_large_images_are_reduced_and_still_read_right(recognizer):
    page = _page_with_digit(4000)
    for data in (cv2.imencode(".jpg", page)[1].tobytes(), make_png(page, color_type=0)):
        assert recognizer.predict(preprocess(data)).digit == 7


def test_decoded_size_limit_is_configurable(client, app, drawing):
    app.config["MNIST_MAX_DECODED_BYTES"] = 1000
    response = post_png(client, drawing(0))
    assert response.status_code == 413 and response.get_json()["error"] == "image_too_large"
    assert DEFAULT_MAX_DECODED_BYTES > 1000


def test_memory_budget_makes_big_decodes_take_turns():
    budget = MemoryBudget(100)
    inside, peak, lock = [0], [0], threading.Lock()

    def decode():
        with budget.reserve(60, timeout=10):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=decode) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 1 and budget.free == 100


def test_memory_budget_answers_busy_when_the_wait_is_too_long():
    budget = MemoryBudget(100)
    with budget.reserve(100, timeout=1):
        with pytest.raises(ServerBusy):
            with budget.reserve(1, timeout=0.05):
                pass
    assert budget.free == 100


# ---- bounded metrics ------------------------------------------------------------------------------


def test_made_up_methods_and_paths_add_no_metric_series(client):
    for i in range(30):
        client.open(f"/made/up/{i}", method=f"FOO{i}")
        client.open(f"/api/v1/predictions/{uuid.uuid4()}", method="BREW")
    text = client.get("/metrics").get_data(as_text=True)
    series = [line for line in text.splitlines() if line.startswith("mnist_http_requests_total{")]
    methods = {line.split('method="')[1].split('"')[0] for line in series}
    assert methods <= KNOWN_METHODS | {"other"} and "other" in methods
    assert not any("/made/up" in line for line in series)
    assert len(series) < 10
