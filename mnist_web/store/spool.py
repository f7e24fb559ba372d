"""A store wrapper that never loses a prediction: when the database is down, records wait in a local spool.

`SpooledStore(inner, path, max_records)` keeps records the inner store could not take in a SQLite
file (WAL, fsync on commit) and a background thread replays them, oldest first, once the inner
store answers again. Replays re-send the same ids, which every backend stores idempotently, so a
record is written exactly once even if a timed-out write had in fact succeeded. A spooled row is
deleted only after the inner add succeeded. recent() and stats() see spooled records only once
they are replayed; get() finds them while they wait.
"""

import json
import logging
import sqlite3
import threading

from ..errors import RecordNotFound, StoreUnavailable
from ..forklocal import ForkLocal, thread_local
from .base import RecordStore
from .fields import BLOBS, SCALARS, column_list, from_mapping, placeholders, to_mapping
from .sqlite import add_missing_columns, retry_while_locked

log = logging.getLogger(__name__)

# A spooled record: its bytes fields in columns of their own, every other field in `meta` (JSON keyed by
# the Record's attribute names), both from store/fields.py.
BLOB_COLUMNS = column_list(BLOBS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    meta TEXT NOT NULL,
    {", ".join(f"{f.name} {f.sql_type}" for f in BLOBS)}
);
"""
INSERT = f"INSERT INTO spool (id, meta, {BLOB_COLUMNS}) VALUES ({placeholders(len(BLOBS) + 2)})"


class SpooledStore(RecordStore):
    """Wraps a RecordStore so add() survives outages; other methods delegate to the inner store."""

    def __init__(self, inner, path, max_records=100_000, retry_min=0.5, retry_max=10.0, batch=100):
        self.inner = inner
        self.path = str(path)
        self.max_records = int(max_records)
        self.retry_min = retry_min  # seconds before the first replay retry after a failure
        self.retry_max = retry_max  # backoff doubles up to this
        self.batch = batch
        self._local = thread_local()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._replayer = ForkLocal(self._start_replayer)
        self._file = ForkLocal(self._create_file)  # made sure of once per process

    # -- spool file -------------------------------------------------------------------------------

    def _db(self):
        local = self._local.get()
        conn = getattr(local, "conn", None)
        if conn is None:
            self._file.get()
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                # FULL: a spooled record survives a power cut, not just a crash of this process.
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"spool {self.path}: {exc}") from exc
            local.conn = conn
        return conn

    def _create_file(self):
        """Create the spool file in WAL mode with its table (and any column added since)."""

        def create():
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")  # persistent: later connections inherit it
                conn.executescript(SCHEMA)
                add_missing_columns(conn, "spool", BLOBS)
            finally:
                conn.close()

        retry_while_locked(create, f"spool {self.path}")
        return True

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
                conn.execute(INSERT, _to_row(record))
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

    def _start_replayer(self):
        thread = threading.Thread(target=self._replay_loop, name="spool-replay", daemon=True)
        if not self._stop.is_set():
            thread.start()
        return thread

    def _ensure_replayer(self):
        """Start this process's replay thread if it is not running (first use, after a fork, or if it died)."""
        thread = self._replayer.get()
        if not thread.is_alive() and not self._stop.is_set():
            with self._lock:
                if self._replayer.peek() is thread:
                    self._replayer.pop()
            self._replayer.get()

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
        rows = self._sql(f"SELECT seq, meta, {BLOB_COLUMNS} FROM spool ORDER BY seq LIMIT ?", (self.batch,)).fetchall()
        done = 0
        for seq, *row in rows:
            if self._stop.is_set():
                break
            record = _from_row(*row)
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
            row = self._sql(f"SELECT meta, {BLOB_COLUMNS} FROM spool WHERE id = ?", (str(record_id),)).fetchone()
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
        thread = self._replayer.pop()
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        self.inner.close()
        local = self._local.peek()
        conn = getattr(local, "conn", None)
        if conn is not None:
            conn.close()
            local.conn = None


def _to_row(record):
    """The spool row's id, meta and blob values."""
    meta = json.dumps(to_mapping(record, "to_json", SCALARS, key="attr"))
    return (str(record.id), meta, *(getattr(record, f.attr) for f in BLOBS))


def _from_row(meta, *blobs):
    """A Record from a spool row's meta and blob values."""
    known = {f.attr: None if value is None else bytes(value) for f, value in zip(BLOBS, blobs, strict=True)}
    return from_mapping(json.loads(meta), "from_json", SCALARS, key="attr", **known)
