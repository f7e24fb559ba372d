"""EXIF orientation of JPEG photos: read the tag from the APP1 segment, turn the pixels upright, write it.

Phones store the sensor's pixels as they come and say in EXIF how to turn them; libjpeg (simplejpeg)
ignores that, so a portrait photo would otherwise reach the model lying on its side.
"""

import struct

import numpy as np

# Orientations (EXIF tag 0x0112) that swap width and height.
TRANSPOSING = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112
_SHORT = 3


def orientation(data):
    """The EXIF orientation (1..8) of JPEG bytes; 1 (as stored) when there is none or it is unreadable."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan or end: the metadata segments are all before it
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            return _tiff_orientation(segment[6:])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff):
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for i in range(count):
            entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag == _ORIENTATION_TAG and kind == _SHORT:
                (value,) = struct.unpack(order + "H", entry[8:10])
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        pass  # a damaged EXIF block is ignored, as cameras' readers do: the pixels are still good
    return 1


def upright(pixels, value):
    """Turn stored pixels (rows first) as EXIF orientation `value` says, so they show upright."""
    turns = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(turns.get(value, turns[1])(pixels))


def stored(pixels, value):
    """The inverse of upright: how a camera stores upright pixels it tags with orientation `value`."""
    inverse = {6: 8, 8: 6}.get(value, value)  # every other orientation is its own inverse
    return upright(pixels, inverse)


def with_orientation(jpeg, value):
    """JPEG bytes with a minimal APP1/EXIF segment holding only the orientation tag, right after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIH2x", _ORIENTATION_TAG, _SHORT, 1, value) + struct.pack(">I", 0)
    payload = b"Exif\0\0" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
