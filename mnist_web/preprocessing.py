"""Turn submitted image bytes into the 28x28 white-on-black input the model was trained on.

MNIST digits were scaled to fit a 20x20 box (keeping the aspect ratio) and centred by centre of mass
in a 28x28 field; drawings from a browser canvas are black ink on a transparent or white page, of any
size and position. This module brings the second to the first, in memory.
"""

import base64
import binascii
import math
import re
import struct

import cv2
import numpy as np
import pyspng
import simplejpeg

from . import exif, photo, png_integrity
from .errors import ImageTooLarge, InvalidImage, NoDigitFound, UnsupportedImageType
from .limits import ACCEPTED_IMAGE_TYPES, MAX_DECODED_BYTES, MAX_IMAGE_PIXELS

SIDE = 28
BOX = 20
# Mean centre of mass of the MNIST training digits, in pixel-index coordinates (row, column).
MNIST_CENTRE = (14.0, 14.0)
# Stroke width (2 * ink mass / contour length) of a typical MNIST training digit, in 28x28 pixels.
MNIST_STROKE_WIDTH = 2.3
DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS
# Most bytes one decoded (full-size) image may take; bigger ones are refused rather than decoded.
DEFAULT_MAX_DECODED_BYTES = MAX_DECODED_BYTES
# Measured peak memory of a decode (codec buffers, the reduced copy) relative to the decoded size.
DECODE_PEAK_FACTOR = 2
# Larger images are reduced to this longest side before the float work: plenty for a 20-pixel box.
WORK_SIDE = 1024
# Ink below this (0..1) is paper texture, JPEG ringing or scanner dust, not a stroke.
NOISE_FLOOR = 0.12
STROKE_THRESHOLD = 0.3

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"  # what \s matches in a bytes pattern
_DATA_URL = re.compile(rb"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<payload>.*)$", re.S)
_SUPPORTED_MIME = {mime.encode() for mime in ACCEPTED_IMAGE_TYPES}


def parse_data_url(data):
    """Return the bytes inside a `data:image/...;base64,` URL; raise InvalidImage if malformed."""
    if isinstance(data, str):
        data = data.encode("ascii", errors="replace")
    match = _DATA_URL.match(data.strip())
    if not match:
        raise InvalidImage("malformed data URL")
    mime = match["mime"].strip().lower()
    if not mime.startswith(b"image/"):
        raise InvalidImage("the data URL does not hold an image")
    if mime not in _SUPPORTED_MIME:
        raise UnsupportedImageType(f"unsupported image type {mime.decode('ascii', 'replace')}: send PNG, JPEG or BMP")
    if b";base64" not in match["params"].lower():
        raise InvalidImage("the data URL must be base64-encoded")
    payload = match["payload"].translate(None, _ASCII_WHITESPACE)  # line breaks some clients insert
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("the data URL's base64 is malformed") from None


def image_format(data):
    """Name the format from the magic bytes ('png', 'jpeg', 'bmp'); raise for anything else."""
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    if not data:
        raise InvalidImage("empty image")
    raise UnsupportedImageType()


def _png_size(data):
    width, height, _, _, _ = png_integrity.header(data)
    return width, height


def _jpeg_size(data):
    # Walk the marker segments up to the first start-of-frame, which holds the dimensions.
    sof_markers = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidImage("JPEG header is damaged")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in sof_markers:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if data.rfind(b"\xff\xd9") < pos:
                raise InvalidImage("JPEG is truncated")
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    raise InvalidImage("JPEG has no frame header")


def _bmp_size(data):
    (file_size,) = struct.unpack("<I", data[2:6])
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
    elif header_size >= 40:
        width, height = struct.unpack("<ii", data[18:26])
    else:
        raise InvalidImage("BMP header is damaged")
    if file_size > len(data):
        raise InvalidImage("BMP is truncated")
    return abs(width), abs(height)


_SIZE_READERS = {"png": _png_size, "jpeg": _jpeg_size, "bmp": _bmp_size}


def decoded_bytes(data, kind, width, height):
    """Bytes the full-size decode of this image takes (JPEG is reduced while decoding: its bound is lower)."""
    if kind == "png":
        _, _, depth, color, _ = png_integrity.header(data)
        # OpenCV keeps plain gray (1) and RGB (3) as they are and widens the rest (alpha, palettes) to 4.
        channels = 4 if color in (3, 4, 6) or b"tRNS" in data else 1 if color == 0 else 3
        return width * height * channels * (2 if depth == 16 else 1)
    if kind == "jpeg":
        return _jpeg_work_size(width, height)
    header_size = struct.unpack("<I", data[14:18])[0]
    bits = struct.unpack("<H", data[24:26] if header_size == 12 else data[28:30])[0] if len(data) >= 30 else 32
    return width * height * (4 if bits == 32 else 3)


def _work_shape(width, height):
    """The (width, height) images are reduced to before the float work: longest side WORK_SIDE at most."""
    scale = min(1.0, WORK_SIDE / max(width, height))
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _jpeg_work_size(width, height):
    # libjpeg scales by 1/8..1 in the DCT domain; the result is at most twice the working side.
    work_width, work_height = _work_shape(width, height)
    return min(width * height, 4 * work_width * work_height)


def check_image_size(data, max_pixels=DEFAULT_MAX_PIXELS, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
    """Return (kind, width, height, peak bytes of decoding) from the headers; raise before decoding if too large."""
    kind = image_format(data)
    width, height = _SIZE_READERS[kind](data)
    if width == 0 or height == 0:
        raise InvalidImage("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image is {width}x{height}; at most {max_pixels} pixels are accepted")
    cost = decoded_bytes(data, kind, width, height)
    if cost > max_decoded_bytes:
        raise ImageTooLarge(
            f"the image is {width}x{height} and would take {cost} bytes decoded; at most {max_decoded_bytes}"
        )
    return kind, width, height, DECODE_PEAK_FACTOR * cost


def _decode_jpeg(data, width, height):
    # strict: libjpeg's "corrupt data" warnings (premature end, bad Huffman code, extraneous bytes) are errors.
    work_width, work_height = _work_shape(width, height)
    try:
        return simplejpeg.decode_jpeg(
            data, colorspace="GRAY", min_width=work_width, min_height=work_height, strict=True
        )[..., 0]
    except ValueError as exc:
        raise InvalidImage(f"the JPEG data is corrupt: {exc}") from None


def _decode_png8(data):
    """An 8-bit PNG (checked, re-packed) as RGBA pixels, decoded by libspng: 4x faster than libpng here."""
    try:
        return pyspng.load(data, "RGBA")
    except Exception:  # pyspng raises plain exceptions; the data passed png_integrity's checks, so rarely
        raise InvalidImage("the PNG data could not be decoded") from None


def _decode_other(data, kind, width, height):
    """(pixels at working size, their channel order: "rgb" or OpenCV's "bgr") of a PNG or BMP."""
    # libspng takes every canvas. OpenCV decodes the rest: BMP, 16-bit PNGs (it keeps the depth) and
    # transparency given by a tRNS chunk, which pyspng does not apply. Decided on the submitted bytes, before
    # they are re-packed much larger (a "tRNS" inside the compressed pixels only costs the fast path).
    libspng = kind == "png" and png_integrity.header(data)[2] <= 8 and b"tRNS" not in data
    if kind == "png":
        data = png_integrity.checked_png(data)  # checked, and re-packed so the decoder need not inflate again
    if libspng:
        image, order = _decode_png8(data), "rgb"
    else:
        image, order = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), "bgr"
    if image is None or image.shape[0] != height or image.shape[1] != width:
        raise InvalidImage(f"the {kind.upper()} data could not be decoded")
    work_width, work_height = _work_shape(width, height)
    if (work_width, work_height) != (width, height):
        image = cv2.resize(image, (work_width, work_height), interpolation=cv2.INTER_AREA)
    return image, order


def decode_image(data, max_pixels=DEFAULT_MAX_PIXELS, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
    """Decode PNG/JPEG/BMP bytes (or a data URL) to a float32 grayscale array in 0..1, alpha over white.

    Damaged files are refused, not guessed from; images larger than WORK_SIDE are reduced while (JPEG)
    or right after (PNG, BMP) decoding, so the cost is bounded by max_decoded_bytes. A JPEG's EXIF
    orientation is applied, so the array is the picture as the camera's owner saw it.
    """
    return decode_upright(data, max_pixels, max_decoded_bytes)[0]


def decode_upright(data, max_pixels=DEFAULT_MAX_PIXELS, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
    """Return (gray 0..1 at working size, kind, (width, height) of the upright full-size image)."""
    if isinstance(data, str) or data[:5].lower() == b"data:":
        data = parse_data_url(data)
    data = bytes(data)
    kind, width, height, _ = check_image_size(data, max_pixels, max_decoded_bytes)
    if kind != "jpeg":
        return _to_gray(*_decode_other(data, kind, width, height)), kind, (width, height)
    orientation = exif.orientation(data)
    gray = exif.upright(_to_gray(_decode_jpeg(data, width, height)), orientation)
    if orientation in exif.TRANSPOSING:
        width, height = height, width
    return gray, kind, (width, height)


def image_ink(data, max_pixels=DEFAULT_MAX_PIXELS, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
    """Return (ink 0..1 white on black, scale from ink pixels to the submitted image's pixels).

    Photos (a JPEG that photo.looks_like_photo) go through photo.photo_ink; everything else,
    every canvas drawing included, through extract_ink as before.
    """
    gray, kind, (width, _) = decode_upright(data, max_pixels, max_decoded_bytes)
    scale = width / gray.shape[1]
    ink = photo.ink_if_photo(gray) if kind == "jpeg" else None
    if ink is not None:
        return ink, scale
    return extract_ink(gray), scale


# Colour to gray (ITU-R BT.601 luma weights, as OpenCV's conversion), by channel count and order.
_GRAY = {
    ("bgr", 3): cv2.COLOR_BGR2GRAY,
    ("bgr", 4): cv2.COLOR_BGRA2GRAY,
    ("rgb", 3): cv2.COLOR_RGB2GRAY,
    ("rgb", 4): cv2.COLOR_RGBA2GRAY,
}


def _to_gray(image, order="bgr"):
    """Gray 0..1 (float32) of 8- or 16-bit pixels, gray or colour, with any alpha laid over a white page."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 2 or image.shape[2] == 1:
        return image.reshape(image.shape[:2]).astype(np.float32) / scale
    if image.dtype == np.uint8:
        # Luma at 8 bits (rounded, within half a level of the float result), then one float channel: a
        # quarter of the float work on a canvas, whose every request passes here.
        gray = cv2.cvtColor(image, _GRAY[order, image.shape[2]]).astype(np.float32)
    else:
        gray = cv2.cvtColor(image.astype(np.float32), _GRAY[order, image.shape[2]])
    if image.shape[2] == 3:
        gray *= 1.0 / scale
        return gray
    # Over white: gray * alpha + (1 - alpha) = 1 - alpha * (1 - gray), in place (fewer passes, no temporaries).
    gray -= scale
    gray *= image[..., 3]
    gray *= 1.0 / (scale * scale)
    gray += 1.0
    return gray


def extract_ink(gray):
    """Return ink strength 0..1 (white on black) whatever the page's polarity and shade."""
    border = np.sort(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    background = float(border[(len(border) - 1) // 2] + border[len(border) // 2]) / 2  # the median, sooner
    if background > 0.5:
        ink = (background - gray) / max(background, 1e-6)
    else:
        ink = (gray - background) / max(1.0 - background, 1e-6)
    np.clip(ink, 0.0, 1.0, out=ink)  # ink is a new array either way
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def stroke_components(ink):
    """(box, (top, left), count, labels, stats) of the strokes' 8-connected pieces, or None without strokes.

    Only the box around all strokes is labelled: the same components, at a fraction of the canvas's cost;
    `labels` and `stats` are in the box's coordinates, whose corner in the ink is (top, left).
    """
    strokes = ink >= STROKE_THRESHOLD
    rows = np.flatnonzero(strokes.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(strokes.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    box = strokes[top : rows[-1] + 1, left : cols[-1] + 1].astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(box, connectivity=8)
    return box, (top, left), count, labels, stats


def digit_mask(ink, found):
    """The strokes of the digit, less specks that lie away from it (None without strokes).

    `found` is stroke_components(ink): digit mode also looks at it for several digits, so it is made once.
    """
    if found is None:
        return None
    box, (top, left), count, labels, stats = found
    areas = stats[1:, cv2.CC_STAT_AREA]
    major = [i + 1 for i, area in enumerate(areas) if area >= 0.1 * areas.max()]
    left_edge = min(stats[i, cv2.CC_STAT_LEFT] for i in major)
    top_edge = min(stats[i, cv2.CC_STAT_TOP] for i in major)
    right = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in major)
    bottom = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in major)
    margin = 0.25 * max(right - left_edge, bottom - top_edge)
    keep = np.zeros(count, bool)
    for i in range(1, count):
        x, y, w, h = stats[i, :4]
        near = x < right + margin and x + w > left_edge - margin and y < bottom + margin and y + h > top_edge - margin
        keep[i] = i in major or near
    mask = np.zeros(ink.shape, bool)
    mask[top : top + box.shape[0], left : left + box.shape[1]] = box.astype(bool) if keep[1:].all() else keep[labels]
    return mask


def _stroke_width(ink):
    """Mean stroke width in pixels: twice the ink mass over the contour length."""
    mask = (ink >= STROKE_THRESHOLD).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(ink.sum()) / max(perimeter, 1.0)


def normalize_ink(ink, mask=None):
    """Crop, stroke-normalize, scale into the 20x20 box and centre by mass in 28x28 (float32 0..1).

    `mask` names the digit's stroke pixels when the caller knows them (the segmentation does); by
    default they are the strokes, less specks lying away from the digit.
    """
    mask = digit_mask(ink, stroke_components(ink)) if mask is None else (mask if mask.any() else None)
    if mask is None:
        raise NoDigitFound()
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    first_row, end_row, first_col, end_col = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = np.where(mask[first_row:end_row, first_col:end_col], ink[first_row:end_row, first_col:end_col], 0.0)
    crop = crop.astype(np.float32)
    height, width = crop.shape
    if max(height, width) < max(3, 0.03 * max(ink.shape)):
        raise NoDigitFound("no digit found: the ink is only a speck")
    scale = BOX / max(height, width)

    # A hairline drawn on a big canvas would fade to nothing at 20 px; thicken it to MNIST's pen.
    wanted = MNIST_STROKE_WIDTH / scale
    width_now = _stroke_width(crop)
    if width_now < 0.7 * wanted:
        radius = int(round((wanted - width_now) / 2))
        if radius > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            crop = cv2.dilate(np.pad(crop, radius), kernel)
            height, width = crop.shape
            scale = BOX / max(height, width)

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    box = cv2.resize(crop, size, interpolation=interpolation)
    peak = float(box.max())
    if peak <= 0:
        raise NoDigitFound()
    box = np.clip(box / peak, 0.0, 1.0)

    # The centre of mass, from the row and column sums (in double precision).
    rows_mass, cols_mass = box.sum(axis=1, dtype=np.float64), box.sum(axis=0, dtype=np.float64)
    total = rows_mass.sum()
    centre_row = float(rows_mass @ np.arange(len(rows_mass)) / total)
    centre_col = float(cols_mass @ np.arange(len(cols_mass)) / total)
    top = int(np.clip(round(MNIST_CENTRE[0] - centre_row), 0, SIDE - box.shape[0]))
    left = int(np.clip(round(MNIST_CENTRE[1] - centre_col), 0, SIDE - box.shape[1]))
    field = np.zeros((SIDE, SIDE), np.float32)
    field[top : top + box.shape[0], left : left + box.shape[1]] = box
    return field


def preprocess(data, max_pixels=DEFAULT_MAX_PIXELS, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
    """Image bytes (PNG, JPEG, BMP) or a data URL -> the 28x28 float32 model input, white on black."""
    return normalize_ink(image_ink(data, max_pixels, max_decoded_bytes)[0])
