"""A gthread worker whose own error answers (bad request line, 414, 431...) are JSON like the app's.

gunicorn answers requests it cannot parse itself, before the app sees them, with an HTML page and
none of the app's security headers. This worker writes those answers as `{"error", "message"}`
with the same headers. gunicorn.conf.py names it as the worker_class.
"""

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from . import SECURITY_HEADERS


def error_code(status, reason):
    """The snake_case error code for a status line's reason ("URI Too Long" -> "uri_too_long")."""
    if status >= 500:
        return "internal_error"
    return "_".join(reason.lower().split()) or "bad_request"


def json_error_response(status, reason, message):
    """The bytes of a complete HTTP/1.1 error response with a JSON body and the security headers."""
    body = json.dumps({"error": error_code(status, reason), "message": message or reason}).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body


# gunicorn answers an unknown transfer coding with 501: the client's mistake, so a 4xx like any other.
CLIENT_FAULTS = {501: (400, "Bad Request")}


def write_json_error(sock, status_int, reason, mesg):
    """Drop-in for gunicorn.util.write_error that writes JSON instead of HTML."""
    status, reason = CLIENT_FAULTS.get(int(status_int), (int(status_int), reason))
    util.write_nonblock(sock, json_error_response(status, reason, mesg))


class JsonErrorThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, answering its own protocol errors as JSON with security headers."""

    def init_process(self):
        """Route gunicorn's error writer (base.Worker.handle_error calls util.write_error) to JSON."""
        # The process is this worker's alone after fork(), so replacing the module function is safe.
        util.write_error = write_json_error
        super().init_process()
