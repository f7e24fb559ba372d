"""A gthread worker whose own error answers (bad request line, 414, 431...) are JSON like the app's.

gunicorn answers requests it cannot parse itself, before the app sees them, with an HTML page and
none of the app's security headers. This worker writes those answers as `{"error", "message"}`
with the same headers. gunicorn.conf.py names it as the worker_class.
"""

import json
import time

from gunicorn import util
from gunicorn.http import wsgi
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


# Seconds between heartbeats: gunicorn's loop touches its heartbeat file (a syscall) on every wake-up, that
# is several times a request under load, while the arbiter only needs one within GUNICORN_TIMEOUT (30 s).
HEARTBEAT_INTERVAL = 1.0

# gunicorn answers an unknown transfer coding with 501: the client's mistake, so a 4xx like any other.
CLIENT_FAULTS = {501: (400, "Bad Request")}


def write_json_error(sock, status_int, reason, mesg):
    """Drop-in for gunicorn.util.write_error that writes JSON instead of HTML."""
    status, reason = CLIENT_FAULTS.get(int(status_int), (int(status_int), reason))
    util.write_nonblock(sock, json_error_response(status, reason, mesg))


_write_body = wsgi.Response.write


def write_with_headers(response, data):
    """Response.write that sends the headers and a first body that fits in one write.

    nginx retries a request whose worker died only until the response's header reached it; gunicorn
    writes the header and the body separately, so a worker killed between the two left the client a
    cut-off response. One write leaves no such gap.
    """
    fits = response.response_length is None or len(data) <= response.response_length
    if response.headers_sent or response.chunked or response._omits_body or not fits or not isinstance(data, bytes):
        return _write_body(response, data)
    lines = response.default_headers() + [f"{name}: {value}\r\n" for name, value in response.headers]
    response.headers_sent = True
    response.sent += len(data)
    util.write(response.sock, util.to_bytestring("".join(lines) + "\r\n", "latin-1") + data)


class JsonErrorThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, answering its own protocol errors as JSON with security headers."""

    def init_process(self):
        """Route gunicorn's error writer (base.Worker.handle_error calls util.write_error) to JSON."""
        # The process is this worker's alone after fork(), so replacing module attributes is safe.
        util.write_error = write_json_error
        wsgi.Response.write = write_with_headers
        self._heartbeat_at = float("-inf")
        super().init_process()

    def notify(self):
        """Touch the heartbeat file at most every HEARTBEAT_INTERVAL seconds."""
        now = time.monotonic()
        if now - self._heartbeat_at >= HEARTBEAT_INTERVAL:
            self._heartbeat_at = now
            super().notify()
