"""Build image files by hand for tests: PNG colour types and depths OpenCV cannot write."""

import struct
import zlib

import numpy as np


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_png(pixels, color_type, bit_depth=8, palette=None, transparency=None):
    """Encode an array as PNG: pixels is (h, w) or (h, w, c) of the given colour type and depth."""
    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\x00" + pixels[y].astype(dtype).tobytes() for y in range(height))
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if transparency is not None:
        out += _chunk(b"tRNS", bytes(np.asarray(transparency, np.uint8).ravel()))
    return out + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def png_header_only(width, height):
    """A PNG that claims the given size (for refusing oversized images before decoding)."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def cross_png(side=280, width=18):
    """A canvas-sized PNG of an X drawn in black on white: a drawing that is no digit."""
    import cv2

    page = np.full((side, side), 255, np.uint8)
    low, high = side * 3 // 14, side * 11 // 14
    cv2.line(page, (low, low), (high, high), 0, width, cv2.LINE_AA)
    cv2.line(page, (high, low), (low, high), 0, width, cv2.LINE_AA)
    return cv2.imencode(".png", page)[1].tobytes()
