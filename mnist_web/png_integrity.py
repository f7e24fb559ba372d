"""Refuse damaged PNG files: every chunk's CRC, the chunk order, and a complete zlib stream of the right size.

libpng (inside OpenCV) only warns about some damage (extra compressed data, too much image data,
bytes after IEND) and hands back whatever pixels it got; the service must not guess a digit from
those, so the bytes are checked here first.

The check has to inflate the image data, which is most of what decoding a PNG costs. So that the
normal path does not pay for inflating twice, `checked_png` hands the inflated data on: for images of
up to REPACK_MAX_BYTES it returns the same PNG with its image data re-packed as stored (uncompressed)
deflate blocks, which libpng copies instead of inflating. Inflating uses ISA-L (isal), about three
times as fast as zlib here; larger images are only checked, in bounded pieces, and decoded as sent.
"""

import struct
import zlib

from isal import isal_zlib

from .errors import InvalidImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel for each colour type, and the bit depths the PNG specification allows for it.
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# Adam7 passes: (first row, first column, row step, column step).
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
_PIECE = 1 << 20
# Images whose inflated data is at most this many bytes are re-packed (a 1000x1000 RGBA canvas is 4 MB);
# bigger ones would hold a second full-size copy, against the decode-memory budget.
REPACK_MAX_BYTES = 4 << 20
# A stored deflate block holds at most 65,535 bytes.
_STORED_MAX = 0xFFFF
# zlib header: deflate, 32 KiB window, no preset dictionary, check bits valid.
_ZLIB_HEADER = b"\x78\x01"


def _chunks(data):
    """Yield (type, start, end, payload) for each chunk, checking lengths and CRCs; stop after IEND."""
    view = memoryview(data)
    pos = len(SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise InvalidImage("PNG is truncated")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise InvalidImage("PNG is truncated")
        payload = view[pos + 8 : end - 4]
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(payload, zlib.crc32(kind)) & 0xFFFFFFFF != crc:
            raise InvalidImage(f"PNG chunk {kind.decode('latin-1')!r} is damaged (CRC mismatch)")
        yield kind, pos, end, payload
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
    checked_png(data)


def checked_png(data):
    """Check the PNG as check_png does and return bytes for the decoder: re-packed if small, else `data`."""
    width, height, depth, color, interlaced = header(data)
    expected = raw_size(width, height, depth, color, interlaced)
    keep = expected <= REPACK_MAX_BYTES
    inflater = isal_zlib.decompressobj()
    pieces, produced = [], 0
    idat_span = None  # (start of the first IDAT chunk, end of the last)
    stream_tail = b""  # the last 4 bytes of the zlib stream so far (its adler-32 once it has ended)
    idat_done = False
    for kind, start, end, payload in _chunks(data):
        if kind == b"IDAT":
            if idat_done:
                raise InvalidImage("PNG image data is split by other chunks")
            idat_span = (idat_span[0] if idat_span else start, end)
            stream_tail = (stream_tail + bytes(payload[-4:]))[-4:]
            produced = _inflate(inflater, payload, expected, produced, pieces if keep else None)
        elif idat_span:
            idat_done = True
    if idat_span is None:
        raise InvalidImage("PNG has no image data")
    if not inflater.eof or inflater.unused_data or produced != expected:
        raise InvalidImage("PNG image data is truncated or damaged")
    if not keep:
        return data
    # The stream ended exactly at the end of the image data (checked above): its last 4 bytes are the
    # adler-32 of the inflated data, which is also the checksum of the re-packed stream.
    return b"".join((data[: idat_span[0]], _stored_idat(b"".join(pieces), stream_tail), data[idat_span[1] :]))


def _inflate(inflater, payload, expected, produced, keep):
    """Inflate one IDAT payload in bounded pieces; return the bytes produced so far (kept in `keep` if given)."""
    try:
        out = inflater.decompress(payload, _PIECE)
        while True:
            produced += len(out)
            if produced > expected:
                raise InvalidImage("PNG image data is longer than the image")
            if keep is not None:
                keep.append(out)
            if not inflater.unconsumed_tail:
                return produced
            out = inflater.decompress(inflater.unconsumed_tail, _PIECE)
    except isal_zlib.error:
        raise InvalidImage("PNG image data is damaged (zlib error)") from None


def _stored_idat(raw, adler):
    """One IDAT chunk holding `raw` as a zlib stream of stored deflate blocks, ending with `adler`."""
    parts = [_ZLIB_HEADER]
    view = memoryview(raw)
    for offset in range(0, max(len(raw), 1), _STORED_MAX):
        block = view[offset : offset + _STORED_MAX]
        final = offset + _STORED_MAX >= len(raw)
        parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(adler)
    payload = b"".join(parts)
    crc = isal_zlib.crc32(payload, isal_zlib.crc32(b"IDAT")) & 0xFFFFFFFF
    return b"".join((struct.pack(">I", len(payload)), b"IDAT", payload, struct.pack(">I", crc)))
