"""Preprocessing: real-drawing cases become MNIST-like 28x28 inputs the model reads correctly."""

import base64

import cv2
import numpy as np
import pytest

from images import make_png, png_header_only
from mnist_web.errors import ImageTooLarge, InvalidImage, NoDigitFound, UnsupportedImageType
from mnist_web.preprocessing import decode_image, preprocess

# Test-set digits used throughout: 7, 2, 1, 0, 4 (indices 0..4 of the MNIST test set).
SAMPLES = [0, 1, 2, 3, 4]


def assert_mnist_like(image):
    """28x28 float32 in 0..1, ink fitted to a 20-pixel box and centred by mass near (14, 14)."""
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() == pytest.approx(1.0)
    rows = np.flatnonzero(image.max(axis=1) > 0)
    cols = np.flatnonzero(image.max(axis=0) > 0)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)
    r, c = np.indices(image.shape)
    assert abs((r * image).sum() / image.sum() - 14) < 1.0
    assert abs((c * image).sum() / image.sum() - 14) < 1.0


def encode(pixels, ext, *params):
    ok, data = cv2.imencode(ext, pixels, list(params))
    assert ok
    return data.tobytes()


def page(ink, background="white"):
    """Black ink (0..1 array) on a white page as 8-bit gray, or on a transparent page as BGRA."""
    alpha = np.round(ink * 255).astype(np.uint8)
    if background == "white":
        return 255 - alpha
    return np.dstack([np.zeros_like(alpha)] * 3 + [alpha])


def place(digit, side, top, left, canvas=280):
    """Scale a 28x28 MNIST digit to side x side and put it at (top, left) on a canvas of ink ("end": flush)."""
    ink = np.zeros((canvas, canvas), np.float32)
    rows = np.flatnonzero(digit.max(axis=1) > 25)
    cols = np.flatnonzero(digit.max(axis=0) > 25)
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255
    scale = side / max(crop.shape)
    scaled = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))))
    top = canvas - scaled.shape[0] if top == "end" else top
    left = canvas - scaled.shape[1] if left == "end" else left
    ink[top : top + scaled.shape[0], left : left + scaled.shape[1]] = np.clip(scaled, 0, 1)
    return ink


@pytest.mark.parametrize("background", ["transparent", "white"])
@pytest.mark.parametrize("index", SAMPLES)
def test_canvas_drawing_is_recognized(drawing, mnist_test, recognizer, background, index):
    image = preprocess(drawing(index, background, seed=index))
    assert_mnist_like(image)
    assert recognizer.predict(image).digit == mnist_test[1][index]


def test_data_url_is_accepted(drawing, mnist_test, recognizer):
    url = "data:image/png;base64," + base64.b64encode(drawing(1, "transparent")).decode()
    assert recognizer.predict(preprocess(url)).digit == mnist_test[1][1]
    assert np.array_equal(preprocess(url), preprocess(url.encode()))


def test_white_on_black_mnist_digit_is_kept_almost_unchanged(mnist_test, recognizer):
    digit = mnist_test[0][2]
    image = preprocess(encode(digit, ".png"))
    assert np.abs(image - digit / 255.0).mean() < 0.03
    assert recognizer.predict(image).digit == mnist_test[1][2]


@pytest.mark.parametrize("corner", [(2, 2), (2, 250), (250, 2), (250, 250)])
def test_tiny_digit_in_a_corner(mnist_test, recognizer, corner):
    digit = mnist_test[0][1]  # a 2
    image = preprocess(encode(page(place(digit, 26, *corner)), ".png"))
    assert_mnist_like(image)
    assert recognizer.predict(image).digit == 2


@pytest.mark.parametrize("where", ["top", "left", "bottom", "right"])
def test_digit_touching_the_edge(mnist_test, recognizer, where):
    digit = mnist_test[0][0]  # a 7
    positions = {"top": (0, 100), "left": (100, 0), "bottom": ("end", 100), "right": (100, "end")}
    ink = place(digit, 150, *positions[where])
    assert ink[0].any() or ink[:, 0].any() or ink[-1].any() or ink[:, -1].any()
    image = preprocess(encode(page(ink, "transparent"), ".png"))
    assert_mnist_like(image)
    assert recognizer.predict(image).digit == 7


def test_very_thick_strokes(mnist_test, recognizer):
    ink = place(mnist_test[0][3], 200, 40, 40)  # a 0
    thick = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    image = preprocess(encode(page(thick), ".png"))
    assert_mnist_like(image)
    assert recognizer.predict(image).digit == 0


@pytest.mark.parametrize(
    "label, path",
    [
        (1, [(140, 40), (140, 240)]),
        (7, [(80, 50), (200, 50), (120, 240)]),
        (4, [(150, 40), (80, 170), (210, 170), (175, 100), (175, 240)]),
    ],
)
def test_very_thin_strokes(recognizer, label, path):
    """A 1-pixel pen on a 280x280 canvas, as a fast tablet stroke might deliver."""
    canvas = np.full((280, 280), 255, np.uint8)
    cv2.polylines(canvas, [np.array(path, np.int32)], False, 0, thickness=1, lineType=cv2.LINE_AA)
    image = preprocess(encode(canvas, ".png"))
    assert_mnist_like(image)
    assert recognizer.predict(image).digit == label


@pytest.mark.parametrize("ext, params", [(".png", ()), (".jpg", (cv2.IMWRITE_JPEG_QUALITY, 80)), (".bmp", ())])
def test_png_jpeg_and_bmp_give_the_same_answer(mnist_test, recognizer, ext, params):
    pixels = cv2.cvtColor(page(place(mnist_test[0][4], 180, 50, 60)), cv2.COLOR_GRAY2BGR)
    reference = preprocess(encode(pixels, ".png"))
    image = preprocess(encode(pixels, ext, *params))
    assert np.abs(image - reference).mean() < 0.02
    assert recognizer.predict(image).digit == 4


def test_sixteen_bit_png_matches_eight_bit(mnist_test):
    gray8 = page(place(mnist_test[0][0], 160, 60, 60))
    gray16 = gray8.astype(np.uint16) * 257
    assert np.allclose(
        preprocess(make_png(gray16, color_type=0, bit_depth=16)), preprocess(encode(gray8, ".png")), atol=1e-3
    )


def test_palette_png_with_transparency(mnist_test, recognizer):
    """A palette PNG (colour type 3) whose index 0 is fully transparent and 1..255 are black of rising alpha."""
    ink = place(mnist_test[0][1], 170, 50, 50)
    indices = np.round(ink * 255).astype(np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    transparency = np.arange(256, dtype=np.uint8)
    image = preprocess(make_png(indices, color_type=3, palette=palette, transparency=transparency))
    assert_mnist_like(image)
    assert recognizer.predict(image).digit == 2


def test_gray_alpha_png(mnist_test, recognizer):
    ink = place(mnist_test[0][2], 170, 50, 50)
    pixels = np.dstack([np.zeros_like(ink, np.uint8), np.round(ink * 255).astype(np.uint8)])
    assert recognizer.predict(preprocess(make_png(pixels, color_type=4))).digit == 1


def test_faint_specks_away_from_the_digit_are_ignored(mnist_test):
    ink = place(mnist_test[0][0], 120, 80, 80)
    clean = preprocess(encode(page(ink), ".png"))
    for y, x in [(5, 5), (270, 10), (10, 265), (268, 268)]:
        ink[y : y + 3, x : x + 3] = 1.0
    ink += np.random.default_rng(1).uniform(0, 0.08, ink.shape).astype(np.float32)  # paper texture
    noisy = preprocess(encode(page(np.clip(ink, 0, 1)), ".png"))
    assert np.abs(noisy - clean).mean() < 0.02


@pytest.mark.parametrize("background", ["white", "transparent", "black"])
def test_blank_canvas_raises_no_digit_found(background):
    if background == "black":
        pixels = np.zeros((280, 280), np.uint8)
    else:
        pixels = page(np.zeros((280, 280), np.float32), background)
    with pytest.raises(NoDigitFound):
        preprocess(encode(pixels, ".png"))


def test_only_faint_noise_raises_no_digit_found():
    noise = np.random.default_rng(2).uniform(0, 0.1, (280, 280)).astype(np.float32)
    with pytest.raises(NoDigitFound):
        preprocess(encode(page(noise), ".png"))


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", InvalidImage),
        (b"hello, world", UnsupportedImageType),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", UnsupportedImageType),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', UnsupportedImageType),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, InvalidImage),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, InvalidImage),
        (b"BM" + b"\xff" * 40, InvalidImage),
        (b"data:image/png;base64,@@@@", InvalidImage),
        (b"data:text/plain;base64,aGVsbG8=", InvalidImage),
        (b"data:image/svg+xml;base64,PHN2Zy8+", UnsupportedImageType),
        (b"data:image/png,not-base64", InvalidImage),
        (b"data:garbage", InvalidImage),
    ],
)
def test_corrupt_or_unsupported_data_is_refused(data, error):
    with pytest.raises(error):
        preprocess(data)


def test_truncated_png_and_jpeg_are_refused(drawing):
    png = drawing(0)
    with pytest.raises(InvalidImage):
        preprocess(png[: len(png) // 2])
    ok, jpeg = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(InvalidImage):
        preprocess(jpeg.tobytes()[: len(jpeg) // 2])


def test_oversized_image_is_refused_before_decoding():
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_only(100_000, 100_000))


def test_decompression_bomb_is_refused():
    """A 6000x6000 blank PNG is a few kilobytes but 36 megapixels once decoded."""
    bomb = encode(np.zeros((6000, 6000), np.uint8), ".png", cv2.IMWRITE_PNG_COMPRESSION, 9)
    assert len(bomb) < 200_000
    with pytest.raises(ImageTooLarge):
        preprocess(bomb)
    with pytest.raises(ImageTooLarge):
        preprocess(encode(np.zeros((100, 100), np.uint8), ".png"), max_pixels=5_000)
