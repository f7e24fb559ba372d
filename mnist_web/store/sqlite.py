"""The embedded default store: one SQLite file in WAL mode, one connection per thread.

Durability: every commit is fsynced (`synchronous=FULL`), so an answered prediction survives a power
cut, not just a crash. So that concurrent requests do not each wait for their own fsync, records are
written by one writer thread per process (group commit): it takes every record waiting, writes them
in one transaction, fsyncs once, and only then releases the requests, each of which answers only
after its own record is committed.
"""

import datetime
import json
import os
import sqlite3
import threading
import time
import uuid

from ..errors import RecordNotFound, StoreUnavailable
from .base import Record, RecordStore, Stats, check_label, sort_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS record_data (
    id TEXT PRIMARY KEY,
    sort_token TEXT NOT NULL,
    date TEXT NOT NULL,
    result INTEGER NOT NULL,
    confidence REAL NOT NULL,
    probabilities TEXT NOT NULL,
    source TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    image BLOB NOT NULL,
    image_type TEXT NOT NULL,
    model_input BLOB NOT NULL,
    model_version TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    label INTEGER
);
CREATE INDEX IF NOT EXISTS record_data_newest ON record_data (sort_token DESC);
"""
COLUMNS = (
    "id, date, result, confidence, probabilities, source, client_ip, image, image_type, "
    "model_input, model_version, latency_ms, label"
)
INSERT = f"INSERT OR IGNORE INTO record_data (sort_token, {COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
# Most records one group commit writes in a transaction (bounds how long one transaction holds the lock).
MAX_BATCH = 64
# Tries, 0.1 s apart, while another process makes a new file WAL.
LOCKED_RETRIES = 50


def connect(path, timeout):
    """A connection in autocommit mode whose commits are fsynced (WAL + synchronous=FULL)."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def retry_while_locked(action, label):
    """Run action(), retrying (bounded) while SQLite answers "locked"; SQLite errors become StoreUnavailable.

    Two processes switching a new file to WAL at once: one may get "database is locked" at once, without
    waiting for the busy timeout. The callers' statements are idempotent, so running them again is safe.
    """
    for attempt in range(LOCKED_RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == LOCKED_RETRIES - 1:
                raise StoreUnavailable(f"{label}: {exc}") from exc
            time.sleep(0.1)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{label}: {exc}") from exc


class _Pending:
    """One record waiting for the writer thread, and what became of it."""

    __slots__ = ("params", "done", "error")

    def __init__(self, params):
        self.params = params
        self.done = threading.Event()
        self.error = None


class GroupCommitWriter:
    """A writer thread per process that commits every record waiting in one transaction and one fsync."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self._init_lock = threading.Lock()
        self._pid = None
        self._cond = None
        self._queue = []
        self._thread = None
        self._closed = False

    def _started(self):
        """This process's queue and thread (a thread and a lock do not survive fork: made afresh)."""
        if self._pid != os.getpid():
            with self._init_lock:
                if self._pid != os.getpid():
                    self._cond, self._queue, self._closed = threading.Condition(), [], False
                    self._thread = threading.Thread(target=self._run, name="sqlite-group-commit", daemon=True)
                    self._thread.start()
                    self._pid = os.getpid()
        return self._cond

    def write(self, params):
        """Insert one row; returns once it is committed and fsynced, raises StoreUnavailable otherwise."""
        pending = _Pending(params)
        cond = self._started()
        with cond:
            if self._closed:
                raise StoreUnavailable("sqlite: the store is closed")
            self._queue.append(pending)
            cond.notify()
        # The writer waits at most `timeout` for the file lock; allow that plus the write itself.
        if not pending.done.wait(self.timeout + 5.0):
            raise StoreUnavailable("sqlite: the write was not committed in time")
        if pending.error is not None:
            raise pending.error

    def _run(self):
        conn = None
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    break
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            error = None
            try:
                conn = conn or connect(self.path, self.timeout)
                _commit(conn, [p.params for p in batch])
            except sqlite3.Error as exc:
                error = StoreUnavailable(f"sqlite: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            for pending in batch:
                pending.error = error
                pending.done.set()
        if conn is not None:
            conn.close()

    def close(self, timeout=10.0):
        """Write what is queued, then stop the thread (bounded wait)."""
        if self._pid != os.getpid():
            return
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        self._pid = None


def _commit(conn, rows):
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SqliteStore(RecordStore):
    """Records in a local SQLite database file."""

    def __init__(self, path, timeout=5.0):
        self.path = str(path)
        self.timeout = timeout
        self._local = threading.local()
        self._writer = GroupCommitWriter(self.path, timeout)

    def _db(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path, self.timeout)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            self._local.conn = conn
        return conn

    def _run(self, sql, params=()):
        try:
            return self._db().execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    def init_schema(self):
        """Create the record_data table and its index if missing, in WAL mode (which persists in the file)."""

        def create():
            self._db().execute("PRAGMA journal_mode=WAL")
            self._db().executescript(SCHEMA)

        retry_while_locked(create, "sqlite")

    def add(self, record):
        """Insert the record (group-committed, fsynced); a second insert of the same id is ignored."""
        self._writer.write(
            (
                sort_token(record.id),
                str(record.id),
                record.created_at.isoformat(),
                record.digit,
                record.confidence,
                json.dumps(list(record.probabilities)),
                record.source,
                record.client_ip,
                record.image,
                record.image_type,
                record.model_input,
                record.model_version,
                record.latency_ms,
                record.label,
            ),
        )

    def get(self, record_id):
        """Return one record or raise RecordNotFound."""
        row = self._run(f"SELECT {COLUMNS} FROM record_data WHERE id = ?", (str(record_id),)).fetchone()
        if row is None:
            raise RecordNotFound()
        return _to_record(row)

    def recent(self, limit, cursor=None):
        """Newest first, `limit` at a time, after the cursor's record."""
        after = sort_token(cursor) if cursor else "g"  # "g" sorts after every hex token
        rows = self._run(
            f"SELECT {COLUMNS} FROM record_data WHERE sort_token < ? ORDER BY sort_token DESC LIMIT ?",
            (after, limit + 1),
        ).fetchall()
        records = [_to_record(row) for row in rows[:limit]]
        return records, (records[-1].id if len(rows) > limit else None)

    def set_label(self, record_id, label):
        """Store the user's label and return the record."""
        label = check_label(label)
        cur = self._run("UPDATE record_data SET label = ? WHERE id = ?", (label, str(record_id)))
        if cur.rowcount == 0:
            raise RecordNotFound()
        return self.get(record_id)

    def stats(self):
        """Counts per digit, labelled and correctly predicted records."""
        per_digit = {d: 0 for d in range(10)}
        for digit, count in self._run("SELECT result, COUNT(*) FROM record_data GROUP BY result"):
            per_digit[digit] = count
        labelled, correct = self._run(
            "SELECT COUNT(label), COALESCE(SUM(label = result), 0) FROM record_data WHERE label IS NOT NULL"
        ).fetchone()
        return Stats(total=sum(per_digit.values()), per_digit=per_digit, labelled=labelled, correct=correct)

    def ping(self):
        """Run a trivial query."""
        self._run("SELECT 1").fetchone()

    def close(self):
        """Stop the writer thread and close this thread's connection."""
        self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _to_record(row):
    (
        rid,
        date,
        result,
        confidence,
        probabilities,
        source,
        client_ip,
        image,
        image_type,
        model_input,
        model_version,
        latency_ms,
        label,
    ) = row
    return Record(
        id=uuid.UUID(rid),
        created_at=datetime.datetime.fromisoformat(date),
        digit=result,
        confidence=confidence,
        probabilities=json.loads(probabilities),
        source=source,
        client_ip=client_ip,
        image=bytes(image),
        image_type=image_type,
        model_input=bytes(model_input),
        model_version=model_version,
        latency_ms=latency_ms,
        label=label,
    )
