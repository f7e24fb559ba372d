"""A store wrapper that never loses a prediction: when the database is down, records wait in a local spool.

`SpooledStore(inner, path, max_records)` keeps records the inner store could not take in a SQLite
file (WAL, fsync on commit) and a background thread replays them, oldest first, once the inner
store answers again. Replays re-send the same ids, which every backend stores idempotently, so a
record is written exactly once even if a timed-out write had in fact succeeded. A spooled row is
deleted only after the inner add succeeded. recent() and stats() see spooled records only once
they are replayed; get() finds them while they wait.
"""

import datetime
import json
import logging
import os
import sqlite3
import threading
import uuid

from ..errors import RecordNotFound, StoreUnavailable
from .base import Record, RecordStore
from .sqlite import retry_while_locked

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    meta TEXT NOT NULL,
    image BLOB NOT NULL,
    model_input BLOB NOT NULL
);
"""


class SpooledStore(RecordStore):
    """Wraps a RecordStore so add() survives outages; other methods delegate to the inner store."""

    def __init__(self, inner, path, max_records=100_000, retry_min=0.5, retry_max=10.0, batch=100):
        self.inner = inner
        self.path = str(path)
        self.max_records = int(max_records)
        self.retry_min = retry_min  # seconds before the first replay retry after a failure
        self.retry_max = retry_max  # backoff doubles up to this
        self.batch = batch
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self._thread_pid = None
        self._file_ready = None  # the pid that made sure the spool file exists

    # -- spool file -------------------------------------------------------------------------------

    def _db(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # a connection must not cross a fork
            self._init_file()
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                # FULL: a spooled record survives a power cut, not just a crash of this process.
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"spool {self.path}: {exc}") from exc
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _init_file(self):
        """Create the spool file in WAL mode with its table, once per process."""
        if self._file_ready == os.getpid():
            return
        with self._lock:
            if self._file_ready == os.getpid():
                return

            def create():
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")  # persistent: later connections inherit it
                    conn.executescript(SCHEMA)
                finally:
                    conn.close()

            retry_while_locked(create, f"spool {self.path}")
            self._file_ready = os.getpid()

    def _sql(self, sql, params=()):
        try:
            return self._db().execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"spool {self.path}: {exc}") from exc

    @property
    def depth(self):
        """Records waiting in the spool for the inner store."""
        self._ensure_replayer()
        return self._sql("SELECT COUNT(*) FROM spool").fetchone()[0]

    def _spool(self, record, reason):
        conn = self._db()
        try:
            # IMMEDIATE: the size check and the insert are one transaction, also across processes.
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM spool WHERE id = ?", (str(record.id),)).fetchone() is not None:
                    conn.execute("COMMIT")  # already waiting: the same id again is not a new record
                    return
                depth = conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0]
                if depth >= self.max_records:
                    log.error("spool %s is full (%d records): refusing record %s", self.path, depth, record.id)
                    raise StoreUnavailable(f"database unavailable and spool full ({depth} records)")
                conn.execute(
                    "INSERT INTO spool (id, meta, image, model_input) VALUES (?,?,?,?)",
                    (str(record.id), _meta(record), record.image, record.model_input),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"spool {self.path}: {exc}") from exc
        if depth == 0:
            log.warning("record store unavailable (%s): spooling records to %s", reason, self.path)
        self._wake.set()

    # -- replay -----------------------------------------------------------------------------------

    def _ensure_replayer(self):
        """Start this process's replay thread if it is not running (first use, or after a fork)."""
        if self._thread is not None and self._thread_pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._stop.is_set():
                return
            if self._thread is None or self._thread_pid != os.getpid() or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._replay_loop, name="spool-replay", daemon=True)
                self._thread_pid = os.getpid()
                self._thread.start()

    def _replay_loop(self):
        delay = self.retry_min
        while not self._stop.is_set():
            try:
                replayed, failed = self._replay_batch()
            except StoreUnavailable as exc:  # the spool file itself failed; keep trying, bounded pace
                log.error("spool replay: %s", exc)
                replayed, failed = 0, True
            if failed:
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
            elif replayed == 0:
                # Idle: sleep until a record is spooled (or poll now and then for other processes' rows).
                self._wake.wait(2.0)
                self._wake.clear()
            else:
                delay = self.retry_min

    def _replay_batch(self):
        """Send the oldest spooled records to the inner store; returns (how many, whether one failed)."""
        rows = self._sql(
            "SELECT seq, meta, image, model_input FROM spool ORDER BY seq LIMIT ?", (self.batch,)
        ).fetchall()
        done = 0
        for seq, meta, image, model_input in rows:
            if self._stop.is_set():
                break
            record = _from_row(meta, image, model_input)
            try:
                self.inner.add(record)
            except StoreUnavailable as exc:
                log.info("spool replay waiting for the record store: %s", exc)
                return done, True
            except Exception:  # keep the record (never lose it), log loudly, retry later
                log.exception("spool replay of record %s failed", record.id)
                return done, True
            # Only now that the inner store has it may the spooled copy go.
            self._sql("DELETE FROM spool WHERE seq = ?", (seq,))
            done += 1
        if done:
            remaining = self._sql("SELECT COUNT(*) FROM spool").fetchone()[0]
            log.info("spool replayed %d records, %d left", done, remaining)
        return done, False

    # -- RecordStore ------------------------------------------------------------------------------

    def init_schema(self):
        """Create the spool file and the inner store's schema."""
        self._db()
        self.inner.init_schema()

    def add(self, record):
        """Store the record, or spool it if the inner store is unavailable; raises only if the spool is full."""
        self._ensure_replayer()
        # While older records wait, new ones queue behind them so they reach the store in order.
        if self._sql("SELECT 1 FROM spool LIMIT 1").fetchone() is not None:
            self._spool(record, "records already waiting")
            return
        try:
            self.inner.add(record)
        except StoreUnavailable as exc:
            self._spool(record, exc)

    def get(self, record_id):
        """The record from the inner store, or from the spool while it waits there."""
        try:
            return self.inner.get(record_id)
        except (RecordNotFound, StoreUnavailable) as exc:
            row = self._sql("SELECT meta, image, model_input FROM spool WHERE id = ?", (str(record_id),)).fetchone()
            if row is None:
                raise exc
            return _from_row(*row)

    def recent(self, limit, cursor=None):
        """Delegates to the inner store (spooled records appear once replayed)."""
        return self.inner.recent(limit, cursor)

    def set_label(self, record_id, label):
        """Delegates; a record still in the spool cannot be labelled yet (StoreUnavailable)."""
        try:
            return self.inner.set_label(record_id, label)
        except RecordNotFound:
            if self._sql("SELECT 1 FROM spool WHERE id = ?", (str(record_id),)).fetchone() is not None:
                raise StoreUnavailable("the record is waiting in the spool; label it once it is stored") from None
            raise

    def stats(self):
        """Delegates to the inner store."""
        return self.inner.stats()

    def ping(self):
        """Delegates to the inner store."""
        self.inner.ping()

    def close(self, timeout=10.0):
        """Stop the replay thread (bounded wait), then close the inner store and this thread's spool file."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and self._thread_pid == os.getpid():
            thread.join(timeout)
        self.inner.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


def _meta(record):
    return json.dumps(
        {
            "id": str(record.id),
            "created_at": record.created_at.isoformat(),
            "digit": record.digit,
            "confidence": record.confidence,
            "probabilities": list(record.probabilities),
            "source": record.source,
            "client_ip": record.client_ip,
            "image_type": record.image_type,
            "model_version": record.model_version,
            "latency_ms": record.latency_ms,
            "label": record.label,
        }
    )


def _from_row(meta, image, model_input):
    data = json.loads(meta)
    return Record(
        id=uuid.UUID(data["id"]),
        created_at=datetime.datetime.fromisoformat(data["created_at"]),
        digit=data["digit"],
        confidence=data["confidence"],
        probabilities=data["probabilities"],
        source=data["source"],
        client_ip=data["client_ip"],
        image=bytes(image),
        image_type=data["image_type"],
        model_input=bytes(model_input),
        model_version=data["model_version"],
        latency_ms=data["latency_ms"],
        label=data["label"],
    )
