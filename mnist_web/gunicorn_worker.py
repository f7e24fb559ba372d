"""mnist_web's gthread worker: JSON error answers, and keep-alive connections spread evenly over the workers.

gunicorn answers requests it cannot parse itself, before the app sees them, with an HTML page and
none of the app's security headers. This worker writes those answers as `{"error", "message"}`
with the same headers.

All workers poll one listening socket and whichever wakes first accepts, so keep-alive clients end up
spread at random: 16 connections were seen split 13 / 3 over two workers, and 4 split 3 / 1, one worker
queueing three requests behind one core while the other core idled (p99 260 ms against 80 ms split 2 / 2).
Here each worker publishes its open connections on a `ConnectionBoard` (memory the master shares with
the workers it forks) and stops accepting while a sibling has fewer, so they never differ by more than one.
gunicorn.conf.py names this worker as the worker_class and gives each worker its slot (pre_fork, child_exit).
"""

import contextlib
import fcntl
import json
import mmap
import tempfile
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


# Slot values on the board: a count of open connections, or one of these.
FREE = -1  # no worker holds the slot
NOT_ACCEPTING = -2  # a worker holds it but does not accept (still loading its model, or stopping)
BOARD_SLOTS = 1024  # workers alive at once, replacements included (4 KiB)
# Seconds between re-reading the board while holding back: siblings' counts change without waking this worker.
HOLD_BACK_RECHECK = 0.01


class ConnectionBoard:
    """Each worker's open connections, in anonymous shared memory that forked workers inherit."""

    def __init__(self, slots=BOARD_SLOTS):
        self._memory = mmap.mmap(-1, 4 * (slots + 1))  # MAP_SHARED | MAP_ANONYMOUS: one copy for every process
        self._cells = memoryview(self._memory).cast("i")
        # Cell 0: how many slots have ever been claimed, so that a worker reads only those, not all of them.
        self._cells[0] = 0
        self.counts = self._cells[1:]
        for slot in range(slots):
            self.counts[slot] = FREE
        # Deciding to accept and publishing the new count is one step under this lock, or two workers
        # woken by the same connection could both decide on counts the other is about to change. A POSIX
        # record lock (not a semaphore) because the kernel drops it when its holder dies, SIGKILL included.
        self._lock_file = tempfile.TemporaryFile()

    def claim(self):
        """The lowest free slot, for a worker about to be forked (in the master); None when all are taken."""
        for slot, count in enumerate(self.counts):
            if count == FREE:
                self.counts[slot] = NOT_ACCEPTING
                self._cells[0] = max(self._cells[0], slot + 1)
                return slot
        return None

    def release(self, slot):
        """Free a dead worker's slot (in the master)."""
        if slot is not None:
            self.counts[slot] = FREE

    def publish(self, slot, count):
        """Record a worker's open connections (NOT_ACCEPTING while it takes none)."""
        self.counts[slot] = count

    @contextlib.contextmanager
    def turn(self):
        """Hold the board alone (between processes; one worker's main thread is its only user)."""
        fcntl.lockf(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._lock_file, fcntl.LOCK_UN)

    def fewest_others(self, slot):
        """The fewest open connections of any other accepting worker (None when there is none)."""
        used = self.counts[: self._cells[0]]
        return min((count for other, count in enumerate(used) if other != slot and count >= 0), default=None)


_board = None


def connection_board():
    """The master's board, made on first use so that every worker forked after it shares it."""
    global _board
    if _board is None:
        _board = ConnectionBoard()
    return _board


class ServingThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, answering its own protocol errors as JSON and balancing connections.

    `connection_slot` (set by gunicorn.conf.py's pre_fork) is this worker's place on the board; without
    one the worker accepts like gunicorn's own.
    """

    connection_slot = None
    _holding_back = False

    @property
    def worker_connections(self):
        """The connection cap ThreadWorker.run checks each turn: reached early while a sibling has fewer."""
        cap = self._connection_cap
        if self.connection_slot is None or not self.alive:
            return cap
        connection_board().publish(self.connection_slot, self.nr_conns)
        self._holding_back = self._excess(self.nr_conns) > 0
        return min(cap, self.nr_conns) if self._holding_back else cap

    @worker_connections.setter
    def worker_connections(self, value):
        self._connection_cap = value

    def accept(self, listener):
        """Accept only while no sibling has fewer connections, deciding and publishing in one turn."""
        if self.connection_slot is None:
            return super().accept(listener)
        board = connection_board()
        with board.turn():
            if self._excess(self.nr_conns) > 0:
                self._holding_back = True  # run() stops polling the listener on its next turn
                return None
            super().accept(listener)
            board.publish(self.connection_slot, self.nr_conns)
        return None

    def handle_request(self, req, conn):
        """Serve a request; if this worker holds two connections more than a sibling, close this one after.

        Accepting evenly is not enough: connections a worker has not yet seen closed still count, so a
        burst of new ones can land unevenly. A client told "Connection: close" reconnects, and the new
        connection goes to a sibling with fewer.
        """
        if self._over_share():
            req.must_close = True
        try:
            return super().handle_request(req, conn)
        finally:
            if not self.alive:  # max_requests reached: this worker stops
                self._leave_board()

    def _over_share(self):
        if self.connection_slot is None:
            return False
        return self._excess(connection_board().counts[self.connection_slot]) > 1

    def _excess(self, count):
        """How many connections `count` is above the least busy accepting sibling (0 when there is none)."""
        fewest = connection_board().fewest_others(self.connection_slot)
        return 0 if fewest is None else count - fewest

    def wait_for_and_dispatch_events(self, timeout):
        """Poll as gunicorn does, but come back soon while holding back, to see whether siblings caught up."""
        super().wait_for_and_dispatch_events(min(timeout, HOLD_BACK_RECHECK) if self._holding_back else timeout)

    def handle_exit(self, sig, frame):
        """On SIGTERM leave the board first."""
        self._leave_board()
        super().handle_exit(sig, frame)

    def set_accept_enabled(self, enabled):
        """Stop or start polling the listener; run() stops it for good once the worker is no longer alive."""
        if not enabled and not self.alive:
            self._leave_board()
        super().set_accept_enabled(enabled)

    def _leave_board(self):
        # A stopping worker takes no new connections: siblings must not hold back for its low count.
        if self.connection_slot is not None:
            connection_board().publish(self.connection_slot, NOT_ACCEPTING)

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
