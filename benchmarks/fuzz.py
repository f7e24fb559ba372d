"""Fuzz the served app over real sockets and count the answers: no request may get a 5xx.

    .venv/bin/python benchmarks/fuzz.py [--requests 100000] [--url http://127.0.0.1:PORT] [--seed 1]

Without --url it starts gunicorn itself (gunicorn.conf.py, a temporary SQLite store, a free loopback
port) and stops it at the end. Every request is drawn from `random_request`: every endpoint and
method (and made-up ones), ids and cursors in odd spellings, non-ASCII numbers, every content type,
random and mutated PNG/JPEG/BMP bodies, data URLs, JSON, multipart, and broken framing (malformed
or over-long chunked bodies, garbage request lines, oversized headers). tests/test_proxy.py runs the
same generator under hypothesis. Prints the count per status (and connection outcomes); exits 1 if
any 5xx was seen. FUZZ_REQUESTS sets the default count.
"""

import argparse
import base64
import collections
import concurrent.futures
import contextlib
import http.client
import json
import os
import random
import re
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from mnist_web.limits import MAX_UPLOAD_BYTES  # noqa: E402

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW", "get", "G\x00T", "M" * 40]
PATHS = [
    "/",
    "/predict/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/static/css/app.css",
    "/static/../gunicorn.conf.py",
    "/api/v1/stats",
    "/api/v1/predictions",
    "/api/v1/predictions/{id}",
    "/api/v1/predictions/{id}/image",
    "/api/v1/predictions/{id}/input",
    "/api/v1/predictions/{id}/label",
    "/no/such/{id}",
]
CONTENT_TYPES = [
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/bmp",
    "image/x-ms-bmp",
    "application/json",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "application/octet-stream",
    "image/gif",
    "",
    "image/png; charset=\udcff",
]
ODD_NUMBERS = ["\u00b2", "\u0661", "\uff15", "1e3", "-1", "0", "101", "9" * 5000, " 5", "5 ", "0x10", "", "20"]


def sample_images():
    """A few valid images of a drawn digit, in each accepted format, for mutation."""
    import cv2
    import numpy as np

    page = np.full((200, 200), 255, np.uint8)
    cv2.putText(page, "4", (50, 160), cv2.FONT_HERSHEY_SIMPLEX, 5, 0, 18)
    return [cv2.imencode(ext, page)[1].tobytes() for ext in (".png", ".jpg", ".bmp")]


def _record_id(rng):
    text = str(uuid.uuid1()) if rng.random() < 0.5 else str(uuid.uuid4())
    return rng.choice(
        [
            text,
            text.upper(),
            text.replace("-", ""),
            "{" + text + "}",
            "urn:uuid:" + text,
            quote("\uff15" * 36),
            "..%2F..%2Fetc%2Fpasswd",
            "x" * rng.randint(0, 300),
        ]
    )


def _mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        action = rng.random()
        pos = rng.randrange(len(data)) if data else 0
        if action < 0.5 and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif action < 0.75:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            del data[pos : pos + rng.randint(1, 64)]
    if rng.random() < 0.3:
        data = data[: rng.randint(0, len(data))]
    return bytes(data)


def _body(rng, images):
    kind = rng.random()
    if kind < 0.35:
        image = rng.choice(images)
        return image if rng.random() < 0.1 else _mutate(rng, image)
    if kind < 0.5:
        return rng.randbytes(rng.randint(0, 4096))
    if kind < 0.62:
        payload = base64.b64encode(_mutate(rng, rng.choice(images))).decode()
        return ("data:image/png;base64," + payload).encode() if rng.random() < 0.7 else payload.encode()
    if kind < 0.8:
        inner = rng.choice(
            [
                base64.b64encode(rng.choice(images)).decode(),
                "data:image/jpeg;base64,@@@",
                rng.randint(-5, 20),
                None,
                [1] * 3,
                {"a": 1},
                "\u0661",
                1e308,
            ]
        )
        body = rng.choice([{"image": inner}, {"label": inner}, [inner], inner])
        text = json.dumps(body)
        if rng.random() < 0.1:
            text = "[" * rng.randint(1, 5000)
        return text.encode()
    if kind < 0.92:
        name = rng.choice(["file", "image", "", "f\u00efle"])
        return (
            b'--xyz\r\nContent-Disposition: form-data; name="' + name.encode() + b'"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + _mutate(rng, rng.choice(images)) + b"\r\n--xyz--\r\n"
        )
    return b""


def _chunked(rng, body):
    out, pos = b"", 0
    while pos < len(body):
        size = rng.randint(1, 4096)
        out += b"%x\r\n%s\r\n" % (len(body[pos : pos + size]), body[pos : pos + size])
        pos += size
    out += b"0\r\n\r\n"
    broken = rng.random()
    if broken < 0.3:
        return rng.choice([b"ZZZ\r\n", b"-1\r\n", b"5\r\nab\r\n", b"3\r\nabcXY", b"ffffffffffffffffff\r\n"]) + out
    if broken < 0.4:
        return b"%x\r\n" % (MAX_UPLOAD_BYTES + 1) + b"\0" * (MAX_UPLOAD_BYTES + 1) + b"\r\n0\r\n\r\n"  # over the limit
    return out


def random_request(rng, images):
    """The raw bytes of one fuzzed HTTP/1.1 request (connection closed after it), and its method."""
    if rng.random() < 0.04:  # a broken request line or header block
        return rng.choice(
            [
                b"GARBAGE\r\n\r\n",
                b"GET / HTTP/9.9\r\nHost: f\r\n\r\n",
                b"GET /" + b"a" * rng.randint(4000, 9000) + b" HTTP/1.1\r\nHost: f\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: f\r\nX: " + b"b" * rng.randint(8000, 12000) + b"\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(rng.randint(100, 300))) + b"\r\n",
                b"GET / HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
                b"POST / HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                rng.randbytes(rng.randint(1, 200)) + b"\r\n\r\n",
            ]
        ), "GET"
    path = rng.choice(PATHS)
    if rng.random() < 0.7:  # mostly a method the route takes, so that requests reach the views
        method = "PUT" if path.endswith("/label") else "POST" if path in ("/predict/", "/api/v1/predictions") else "GET"
    else:
        method = rng.choice(METHODS[:5]) if rng.random() < 0.85 else rng.choice(METHODS)
    path = path.replace("{id}", _record_id(rng))
    if rng.random() < 0.4:
        params = {
            "limit": rng.choice(ODD_NUMBERS),
            "cursor": _record_id(rng),
            "mode": rng.choice(["digit", "number", "Number", "", "x" * 300]),
        }
        keys = rng.sample(list(params), rng.randint(1, 3))
        path += "?" + "&".join(f"{k}={quote(params[k])}" for k in keys)
    headers = [b"Host: fuzz", b"Connection: close"]
    body = b""
    if method in ("POST", "PUT", "PATCH") or rng.random() < 0.1:
        body = _body(rng, images)
        content_type = rng.choice(CONTENT_TYPES)
        if content_type:
            headers.append(b"Content-Type: " + content_type.encode("utf-8", "surrogateescape"))
        if rng.random() < 0.25:
            headers.append(b"Transfer-Encoding: chunked")
            body = _chunked(rng, body)
        else:
            headers.append(b"Content-Length: %d" % len(body))
    line = method.encode("utf-8", "replace") + b" " + path.encode("utf-8") + b" HTTP/1.1"
    return line + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body, method


def send(host, port, data, method, timeout=30):
    """The status of the answer to raw request bytes, or what went wrong with the connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with contextlib.suppress(OSError):  # the server may answer before reading everything
                sock.sendall(data)
                # Half-close: a body shorter than its framing promises then ends, as a vanished client's
                # would, rather than leave both sides waiting.
                sock.shutdown(socket.SHUT_WR)
            response = http.client.HTTPResponse(sock, method=method if method in ("GET", "HEAD") else None)
            response.begin()
            return response.status
    except TimeoutError:
        return "timeout"
    except (ConnectionError, http.client.RemoteDisconnected):
        return "closed without an answer"
    except http.client.HTTPException as error:
        return f"unparsable answer ({type(error).__name__})"


@contextlib.contextmanager
def own_gunicorn():
    """gunicorn with gunicorn.conf.py on a free port and a temporary SQLite store.

    Yields (host, port, master pid, path of its log) while it runs.
    """
    from support import harness
    from support.ports import free_port

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mnist-fuzz-") as tmp:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "GUNICORN_ACCESS_LOG": "",
            "MNIST_DATABASE_URL": f"sqlite:///{tmp}/records.sqlite3",
            "MNIST_SPOOL_PATH": f"{tmp}/spool.sqlite3",
            "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/metrics",
        }
        log_path = Path(tmp) / "gunicorn.log"
        with harness.running(harness.gunicorn_argv(), env, log_path, stop_timeout=60) as process:
            try:
                harness.wait_http(f"http://127.0.0.1:{port}/readyz", process, log_path, 120, interval=0.5)
            except (harness.ServerExited, harness.ServerNotReady) as exc:
                sys.exit(f"gunicorn did not become ready: {exc}")
            yield "127.0.0.1", port, process.pid, log_path


def logged_errors(log_path):
    """Each distinct error the server logged (its log line's message and the exception's last line), counted."""
    lines = log_path.read_text(errors="replace").splitlines()
    found = collections.Counter()
    for n, line in enumerate(lines):
        if " ERROR " in line or "[ERROR]" in line:
            exception = next(
                (x for x in lines[n + 1 : n + 400] if re.match(r"^[\w.]+(Error|Exception|error)\b", x)), ""
            )
            found[f"{line.split(':', 3)[-1].strip()[:100]} / {exception[:150]}"] += 1
    return found


def tally(finished, counts, examples, keep=20):
    """Count a finished request's outcome; keep the first few requests that got a 5xx or no answer."""
    outcome = finished.result()
    counts[outcome] += 1
    if not isinstance(outcome, int) or outcome >= 500:
        found = examples.setdefault(outcome, [])
        if len(found) < keep:
            found.append(finished.request[:160])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=int(os.environ.get("FUZZ_REQUESTS", 100_000)))
    parser.add_argument("--url", help="a running server (default: start gunicorn here)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop our gunicorn too
    images = sample_images()
    rng = random.Random(args.seed)
    with contextlib.ExitStack() as stack:
        if args.url:
            parts = urlsplit(args.url)
            host, port = parts.hostname, parts.port or 80
        else:
            host, port, _, log_path = stack.enter_context(own_gunicorn())
        counts = collections.Counter()
        examples = {}
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            pending = set()
            for _ in range(args.requests):
                data, method = random_request(rng, images)
                future = pool.submit(send, host, port, data, method)
                future.request = data
                pending.add(future)
                if len(pending) >= 4 * args.concurrency:
                    done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    for finished in done:
                        tally(finished, counts, examples)
            for finished in concurrent.futures.as_completed(pending):
                tally(finished, counts, examples)
        seconds = time.monotonic() - started
        server_errors = logged_errors(log_path) if not args.url else []  # read while the log still exists
    print(f"{args.requests} fuzzed requests to {host}:{port} in {seconds:.0f} s ({args.requests / seconds:.0f}/s)")
    for outcome, count in sorted(counts.items(), key=lambda item: str(item[0])):
        print(f"  {outcome}: {count}")
    errors = sum(n for outcome, n in counts.items() if isinstance(outcome, int) and outcome >= 500)
    print(f"5xx answers: {errors}")
    for outcome, found in examples.items():
        for example in found:
            print(f"  e.g. {outcome}: {example!r}")
    for logged, count in server_errors.items():
        print(f"server log: {count} x {logged}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
