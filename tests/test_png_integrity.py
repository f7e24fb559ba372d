"""The checked PNG handed to libpng (image data re-packed as stored blocks) decodes to the very same pixels."""

import struct
import zlib

import cv2
import numpy as np

from images import make_png
from mnist_web import png_integrity


def decode(data):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def parts(png):
    """(chunks before the image data, the zlib stream, chunks after it)."""
    pos, before, stream, after = 8, b"", b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, whole = png[pos + 4 : pos + 8], png[pos : pos + 12 + length]
        if kind == b"IDAT":
            stream += png[pos + 8 : pos + 8 + length]
        elif stream:
            after += whole
        else:
            before += whole
        pos += 12 + length
    return before, stream, after


def with_idat_sizes(png, sizes):
    """The same PNG with its zlib stream spread over IDAT chunks of the given sizes (the rest in the last)."""
    before, stream, after = parts(png)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(stream[start : start + size])
        start += size
    pieces.append(stream[start:])
    return png[:8] + before + b"".join(chunk(b"IDAT", p) for p in pieces) + after


def variants(drawing):
    canvas = cv2.imdecode(np.frombuffer(drawing(0), np.uint8), cv2.IMREAD_UNCHANGED)
    gray = cv2.cvtColor(canvas, cv2.COLOR_BGRA2GRAY)
    noise = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)  # incompressible
    yield "canvas RGBA", drawing(0)
    yield "gray", cv2.imencode(".png", gray)[1].tobytes()
    yield "RGB noise", cv2.imencode(".png", noise)[1].tobytes()
    yield "16-bit RGB", cv2.imencode(".png", noise.astype(np.uint16) * 257)[1].tobytes()
    yield "gray + alpha", make_png(np.dstack([gray, 255 - gray])[:90, :70], color_type=4)
    palette = [[0, 0, 0], [90, 90, 90], [180, 180, 180], [255, 255, 255]]
    yield "palette + tRNS", make_png(gray[:64, :64] // 64, 3, palette=palette, transparency=[255, 255, 255, 0])
    # 1480 x 2120 RGB noise: over REPACK_MAX_BYTES once inflated, so checked and passed on as sent
    yield "large RGB", cv2.imencode(".png", np.tile(noise, (40, 40, 1)))[1].tobytes()


def test_checked_png_decodes_to_the_same_pixels(drawing):
    for name, png in variants(drawing):
        stream_length = len(parts(png)[1])
        # one IDAT; many tiny ones; the adler-32 split over the last two chunks (2 bytes in the last)
        for sizes in ((), (1, 1, 1, 5), (stream_length - 2,)):
            data = with_idat_sizes(png, sizes)
            checked = png_integrity.checked_png(data)
            assert decode(checked) is not None, name
            np.testing.assert_array_equal(decode(checked), decode(data), err_msg=f"{name}, IDAT sizes {sizes}")
            if name == "large RGB":
                assert checked is data
            else:
                assert checked is not data  # re-packed as stored blocks
