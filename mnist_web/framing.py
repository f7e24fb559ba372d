"""Bodies sent without a Content-Length (chunked): read them whole, within the size limit, before any view.

Werkzeug caps such a stream at MAX_CONTENT_LENGTH by cutting it short, so an over-long chunked body
would be truncated and accepted; and a malformed chunk raises inside whichever view reads first.
Reading the body here, once, turns both into clear 4xx answers in one place.
"""

import io
import logging

from flask import request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

log = logging.getLogger(__name__)
_PIECE = 64 * 1024


class MalformedBody(BadRequest):
    """The request body's framing is broken (e.g. an invalid chunk size)."""

    description = "the request body is malformed (bad chunked encoding or a premature end)"


def read_unsized_body(environ, limit):
    """Read a server-terminated body of unknown length; raise 413 past `limit` bytes, 400 if malformed."""
    stream = environ["wsgi.input"]
    pieces, total = [], 0
    try:
        while True:
            piece = stream.read(min(_PIECE, limit + 1 - total))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
            if total > limit:
                raise RequestEntityTooLarge(f"the request body is larger than {limit} bytes")
    except RequestEntityTooLarge:
        raise
    except Exception as exc:  # the WSGI server's own parse errors (gunicorn's InvalidChunkSize, NoMoreData...)
        log.info("malformed request body: %s: %s", type(exc).__name__, exc)
        raise MalformedBody() from None
    return b"".join(pieces)


def init_app(app):
    """Buffer chunked bodies up front so that every view sees a complete, size-checked body."""

    @app.before_request
    def buffer_unsized_body():
        environ = request.environ
        if environ.get("CONTENT_LENGTH") or not environ.get("wsgi.input_terminated"):
            return
        body = read_unsized_body(environ, app.config["MAX_CONTENT_LENGTH"])
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
