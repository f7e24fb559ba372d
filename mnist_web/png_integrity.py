"""Refuse damaged PNG files: every chunk's CRC, the chunk order, and a complete zlib stream of the right size.

libpng (inside OpenCV) only warns about some damage and hands back whatever pixels it got; the
service must not guess a digit from those, so the bytes are checked here first.
"""

import struct
import zlib

from .errors import InvalidImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel for each colour type, and the bit depths the PNG specification allows for it.
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# Adam7 passes: (first row, first column, row step, column step).
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
_PIECE = 1 << 20


def _chunks(data):
    """Yield (type, payload) for each chunk, checking lengths and CRCs; stop after IEND."""
    pos = len(SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise InvalidImage("PNG is truncated")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise InvalidImage("PNG is truncated")
        payload = data[pos + 8 : end - 4]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + payload) & 0xFFFFFFFF != crc:
            raise InvalidImage(f"PNG chunk {kind.decode('latin-1')!r} is damaged (CRC mismatch)")
        yield kind, payload
        if kind == b"IEND":
            if end != len(data):
                raise InvalidImage("PNG has data after its end")
            return
        pos = end


def header(data):
    """(width, height, bit depth, colour type, interlaced) from a PNG's IHDR, checked for sense."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InvalidImage("PNG header is damaged")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth not in _DEPTHS.get(color, ()) or compression or filtering or interlace > 1:
        raise InvalidImage("PNG header is damaged")
    return width, height, depth, color, bool(interlace)


def raw_size(width, height, depth, color, interlaced):
    """Bytes the decompressed image data must have: each row's filter byte plus its packed samples."""
    bits = _SAMPLES[color] * depth
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for row0, col0, row_step, col_step in passes:
        cols = (width - col0 + col_step - 1) // col_step if width > col0 else 0
        rows = (height - row0 + row_step - 1) // row_step if height > row0 else 0
        if cols and rows:
            total += rows * (1 + (cols * bits + 7) // 8)
    return total


def check_png(data):
    """Raise InvalidImage unless every chunk is intact and the image data inflates to exactly its size."""
    width, height, depth, color, interlaced = header(data)
    expected = raw_size(width, height, depth, color, interlaced)
    inflater = zlib.decompressobj()
    produced = 0
    seen_idat = idat_done = False
    for kind, payload in _chunks(data):
        if kind == b"IDAT":
            if idat_done:
                raise InvalidImage("PNG image data is split by other chunks")
            seen_idat = True
            try:
                # Inflate in bounded pieces and drop them: only the count matters here.
                out = inflater.decompress(payload, _PIECE)
                while True:
                    produced += len(out)
                    if produced > expected:
                        raise InvalidImage("PNG image data is longer than the image")
                    if not inflater.unconsumed_tail:
                        break
                    out = inflater.decompress(inflater.unconsumed_tail, _PIECE)
            except zlib.error:
                raise InvalidImage("PNG image data is damaged (zlib error)") from None
        elif seen_idat:
            idat_done = True
    if not seen_idat:
        raise InvalidImage("PNG has no image data")
    if not inflater.eof or inflater.unused_data or produced != expected:
        raise InvalidImage("PNG image data is truncated or damaged")
