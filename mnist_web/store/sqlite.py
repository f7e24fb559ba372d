"""The embedded default store: one SQLite file in WAL mode, one connection per thread.

Durability: every commit is fsynced (`synchronous=FULL`), so an answered prediction survives a power
cut, not just a crash. So that concurrent requests do not each wait for their own fsync, records are
written by one writer thread per process (group commit): it takes every record waiting, writes them
in one transaction, fsyncs once, and only then releases the requests, each of which answers only
after its own record is committed.

Stats: table `record_counts` (one row per predicted digit and row -1 for the refusals, whose digit is
NULL: total, labelled, correct) is kept by triggers on record_data in the same transaction as the
change: AFTER INSERT (an `INSERT OR IGNORE` of
an id already stored inserts nothing, so a replay counts nothing), AFTER UPDATE OF the label or the
digit (takes the old row's share out, puts the new one's in: a label changed twice, or set to the
same value again, stays exact) and AFTER DELETE (retention purges). stats() reads eleven rows.

Upgrades: init_schema adds missing columns, replaces count triggers whose text changed, and rebuilds
record_data once (copies it into a table of the current definition) when a column that may now be NULL
still says NOT NULL: a file made before refusals had `result INTEGER NOT NULL`.

Retention (`retention_days`): the writer thread deletes expired records (see retention.py) in
batches of PURGE_BATCH, each its own short transaction, at most every PURGE_INTERVAL seconds, between
group commits; `flask --app mnist_web purge` does the same at once.
"""

import logging
import sqlite3
import threading
import time

from ..errors import RecordNotFound, StoreUnavailable
from ..forklocal import ForkLocal, thread_local
from . import retention
from .base import BUCKETS, RecordStore, Stats, check_label, label_attr, sort_token
from .fields import (
    BY_ATTR,
    DIGIT,
    FIELDS,
    ID,
    LABEL,
    MODE,
    NUMBER,
    NUMBER_LABEL,
    VERDICT,
    column_list,
    encode,
    from_sql_row,
    placeholders,
)

log = logging.getLogger(__name__)

COLUMNS = column_list()


def table_ddl(name="record_data"):
    """CREATE TABLE for the records (under another name while an old table is rebuilt)."""
    columns = ", ".join(f"{f.name} {f.sql_type}{' PRIMARY KEY' if f is ID else ''}" for f in FIELDS)
    return f"CREATE TABLE IF NOT EXISTS {name} (sort_token TEXT NOT NULL, {columns})"


INDEX = "CREATE INDEX IF NOT EXISTS record_data_newest ON record_data (sort_token DESC)"
INSERT = f"INSERT OR IGNORE INTO record_data (sort_token, {COLUMNS}) VALUES ({placeholders(len(FIELDS) + 1)})"
D, L = DIGIT.name, LABEL.name
V, M, N, NL = VERDICT.name, MODE.name, NUMBER.name, NUMBER_LABEL.name
B = BUCKETS


def _key(row):
    """A record's stats key (base.bucket: its digit, or a negative key for the other answers), in SQL."""
    number = f"CASE WHEN {row}.{V} = 'number' THEN {B['number']} ELSE {B['number_refused']} END"
    other = f"CASE WHEN {row}.{V} = 'several_digits' THEN {B['several_digits']} ELSE {B['not_a_digit']} END"
    return f"COALESCE(CASE WHEN {row}.{M} = 'number' THEN {number} END, {row}.{D}, {other})"


# One record's share of its key's row: (total, labelled, correct) (base.counts_as_correct).
SHARE = {
    row: f"1, ({row}.{L} IS NOT NULL OR {row}.{NL} IS NOT NULL), "
    f"COALESCE({row}.{L} = {row}.{D}, {row}.{NL} = {row}.{N}, 0)"
    for row in ("NEW", "OLD")
}  # fmt: skip
ADD_SHARE = """INSERT INTO record_counts (digit, total, labelled, correct) VALUES ({key}, {share})
    ON CONFLICT (digit) DO UPDATE SET total = total + excluded.total, labelled = labelled + excluded.labelled,
    correct = correct + excluded.correct;"""
DROP_SHARE = """UPDATE record_counts SET total = total - 1,
    labelled = labelled - ({row}.{l} IS NOT NULL OR {row}.{nl} IS NOT NULL),
    correct = correct - COALESCE({row}.{l} = {row}.{d}, {row}.{nl} = {row}.{n}, 0) WHERE digit = {key};"""


def _add_share(row):
    return ADD_SHARE.format(key=_key(row), share=SHARE[row])


def _drop_share(row):
    return DROP_SHARE.format(row=row, l=L, nl=NL, d=D, n=N, key=_key(row))


# Column `digit` of record_counts holds the stats key: a digit, or base.BUCKETS' negative keys.
COUNTS_TABLE = """CREATE TABLE record_counts (
    digit INTEGER PRIMARY KEY, total INTEGER NOT NULL, labelled INTEGER NOT NULL, correct INTEGER NOT NULL
)"""
# The triggers by name. init_schema replaces one whose text differs (a file made by an older version).
TRIGGERS = {
    "record_counts_insert": f"CREATE TRIGGER record_counts_insert AFTER INSERT ON record_data BEGIN "
    f"{_add_share('NEW')} END",
    "record_counts_update": f"CREATE TRIGGER record_counts_update AFTER UPDATE OF {L}, {D}, {NL} ON record_data "
    f"BEGIN {_drop_share('OLD')} {_add_share('NEW')} END",
    "record_counts_delete": f"CREATE TRIGGER record_counts_delete AFTER DELETE ON record_data BEGIN "
    f"{_drop_share('OLD')} END",
}
# A database made before the counts existed (so before anything but digits and refusals): count it, once.
COUNT_EXISTING = f"""INSERT INTO record_counts (digit, total, labelled, correct)
    SELECT {_key("record_data")}, COUNT(*), COUNT({L}), COALESCE(SUM({L} = {D}), 0) FROM record_data
    GROUP BY {_key("record_data")}"""
# Most records one group commit writes in a transaction (bounds how long one transaction holds the lock).
MAX_BATCH = 64
# Tries, 0.1 s apart, while another process makes a new file WAL.
LOCKED_RETRIES = 50
# Retention: records deleted per transaction, and seconds between purges by the writer thread.
PURGE_BATCH = 1000
PURGE_INTERVAL = 600.0


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


def transaction(conn, action):
    """Run action(conn) in one IMMEDIATE transaction (rolled back if it raises) and return its result."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = action(conn)
        conn.execute("COMMIT")
        return result
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def purge_expired(conn, days, now=None, batch=PURGE_BATCH):
    """Delete up to `batch` expired records in one transaction; returns how many went."""
    token = retention.cutoff_token(days, now)
    if token is None:
        return 0
    sql = f"DELETE FROM record_data WHERE {ID.name} IN (SELECT {ID.name} FROM record_data WHERE sort_token < ? LIMIT ?)"
    return transaction(conn, lambda c: c.execute(sql, (token, batch)).rowcount)


class _Pending:
    """One record waiting for the writer thread, and what became of it."""

    __slots__ = ("params", "done", "error")

    def __init__(self, params):
        self.params = params
        self.done = threading.Event()
        self.error = None


class _WriterState:
    """One process's queue and writer thread."""

    def __init__(self, target):
        self.cond = threading.Condition()
        self.queue = []
        self.closed = False
        self.thread = threading.Thread(target=target, args=(self,), name="sqlite-group-commit", daemon=True)
        self.thread.start()


class GroupCommitWriter:
    """A writer thread per process that commits every record waiting in one transaction and one fsync.

    Between commits it also purges expired records (retention_days), at most every PURGE_INTERVAL seconds.
    """

    def __init__(self, path, timeout, retention_days=None):
        self.path = path
        self.timeout = timeout
        self.retention_days = retention_days
        self._state = ForkLocal(lambda: _WriterState(self._run))

    def write(self, params):
        """Insert one row; returns once it is committed and fsynced, raises StoreUnavailable otherwise."""
        pending = _Pending(params)
        state = self._state.get()
        with state.cond:
            if state.closed:
                raise StoreUnavailable("sqlite: the store is closed")
            state.queue.append(pending)
            state.cond.notify()
        # The writer waits at most `timeout` for the file lock; allow that plus the write itself.
        if not pending.done.wait(self.timeout + 5.0):
            raise StoreUnavailable("sqlite: the write was not committed in time")
        if pending.error is not None:
            raise pending.error

    def _run(self, state):
        conn = None
        next_purge = time.monotonic() if self.retention_days is not None else float("inf")
        while True:
            with state.cond:
                while not state.queue and not state.closed and time.monotonic() < next_purge:
                    state.cond.wait(min(next_purge - time.monotonic(), 3600.0))
                if not state.queue and state.closed:
                    break
                batch, state.queue = state.queue[:MAX_BATCH], state.queue[MAX_BATCH:]
            try:
                conn = conn or connect(self.path, self.timeout)
                if batch:
                    self._commit(conn, batch)
                elif self._purge_step(conn) < PURGE_BATCH:  # one batch at a time: writes never wait long
                    next_purge = time.monotonic() + PURGE_INTERVAL
            except sqlite3.Error as exc:
                log.warning("sqlite writer: %s", exc)
                for pending in batch:
                    pending.error = StoreUnavailable(f"sqlite: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
                next_purge = max(next_purge, time.monotonic() + 1.0)
            for pending in batch:
                pending.done.set()
        if conn is not None:
            conn.close()

    def _commit(self, conn, batch):
        transaction(conn, lambda c: c.executemany(INSERT, [p.params for p in batch]))

    def _purge_step(self, conn):
        removed = purge_expired(conn, self.retention_days)
        if removed:
            log.info("sqlite retention: purged %d expired records", removed)
        return removed

    def close(self, timeout=10.0):
        """Write what is queued, then stop the thread (bounded wait)."""
        state = self._state.pop()
        if state is None:
            return
        with state.cond:
            state.closed = True
            state.cond.notify()
        state.thread.join(timeout)


class SqliteStore(RecordStore):
    """Records in a local SQLite database file."""

    def __init__(self, path, timeout=5.0, retention_days=None):
        self.path = str(path)
        self.timeout = timeout
        self.retention_days = retention_days
        self._local = thread_local()
        self._writer = GroupCommitWriter(self.path, timeout, retention_days)

    def _db(self):
        local = self._local.get()
        conn = getattr(local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path, self.timeout)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            local.conn = conn
        return conn

    def _run(self, sql, params=()):
        try:
            return self._db().execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    def init_schema(self):
        """Create (or bring up to date) the tables, index and count triggers, in WAL mode (persists in the file)."""

        def create():
            self._db().execute("PRAGMA journal_mode=WAL")
            transaction(self._db(), _create_schema)

        retry_while_locked(create, "sqlite")

    def add(self, record):
        """Insert the record (group-committed, fsynced); a second insert of the same id is ignored."""
        self._writer.write((sort_token(record.id), *encode(record, "to_sql")))

    def get(self, record_id):
        """Return one record or raise RecordNotFound."""
        row = self._run(f"SELECT {COLUMNS} FROM record_data WHERE {ID.name} = ?", (str(record_id),)).fetchone()
        if row is None:
            raise RecordNotFound()
        return from_sql_row(row)

    def recent(self, limit, cursor=None):
        """Newest first, `limit` at a time, after the cursor's record."""
        after = sort_token(cursor) if cursor else "g"  # "g" sorts after every hex token
        rows = self._run(
            f"SELECT {COLUMNS} FROM record_data WHERE sort_token < ? ORDER BY sort_token DESC LIMIT ?",
            (after, limit + 1),
        ).fetchall()
        records = [from_sql_row(row) for row in rows[:limit]]
        return records, (records[-1].id if len(rows) > limit else None)

    def set_label(self, record_id, label):
        """Store the user's label (a digit, or a number's digit string) and return the record; triggers count it."""
        found = self._run(f"SELECT {M} FROM record_data WHERE {ID.name} = ?", (str(record_id),)).fetchone()
        if found is None:
            raise RecordNotFound()
        label = check_label(label, found[0])
        column = BY_ATTR[label_attr(found[0])].name
        cur = self._run(f"UPDATE record_data SET {column} = ? WHERE {ID.name} = ?", (label, str(record_id)))
        if cur.rowcount == 0:
            raise RecordNotFound()
        return self.get(record_id)

    def stats(self):
        """Counts per digit and per other answer, labelled and correct, from the trigger-kept counts."""
        return Stats.from_buckets(self._run("SELECT digit, total, labelled, correct FROM record_counts"))

    def purge(self, now=None):
        """Delete every expired record now, in bounded batches; returns how many went."""
        removed = 0
        while True:
            try:
                step = purge_expired(self._db(), self.retention_days, now)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            removed += step
            if step < PURGE_BATCH:
                return removed

    def ping(self):
        """Run a trivial query."""
        self._run("SELECT 1").fetchone()

    def close(self):
        """Stop the writer thread and close this thread's connection."""
        self._writer.close()
        local = self._local.peek()
        conn = getattr(local, "conn", None)
        if conn is not None:
            conn.close()
            local.conn = None


def add_missing_columns(conn, table, fields):
    """ALTER TABLE ADD COLUMN for each field the table lacks (a field added since the file was made)."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for field in fields:
        if field.name not in have:  # new fields are nullable, so no default is needed
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {field.name} {field.sql_type}")


def loosened_columns(conn, table, fields):
    """The fields that may now be None but whose column still says NOT NULL (a file made by an older version)."""
    strict = {row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[3]}
    return [f for f in fields if f.nullable and f.name in strict]


def rebuild_records_table(conn):
    """Copy record_data into a table of the current definition and put it in its place (one transaction).

    SQLite cannot drop a NOT NULL constraint in place; the copy is the documented way. It runs once, when
    a file made before refusals (`result` NOT NULL) is opened; the counts are unchanged by it.
    """
    for name in TRIGGERS:  # made again by _ensure_triggers; the copy must not count anything
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("DROP TABLE IF EXISTS record_data_rebuilt")
    conn.execute(table_ddl("record_data_rebuilt"))
    columns = f"sort_token, {COLUMNS}"
    conn.execute(f"INSERT INTO record_data_rebuilt ({columns}) SELECT {columns} FROM record_data")
    conn.execute("DROP TABLE record_data")
    conn.execute("ALTER TABLE record_data_rebuilt RENAME TO record_data")


def _ensure_triggers(conn):
    for name, statement in TRIGGERS.items():
        found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone()
        if found is None or found[0] != statement:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            conn.execute(statement)


def _create_schema(conn):
    conn.execute(table_ddl())
    add_missing_columns(conn, "record_data", FIELDS)
    loosened = loosened_columns(conn, "record_data", FIELDS)
    if loosened:
        log.info("sqlite: rebuilding record_data so that %s may be NULL", ", ".join(f.name for f in loosened))
        rebuild_records_table(conn)
    conn.execute(INDEX)
    counted = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'record_counts'").fetchone() is not None
    if not counted:
        conn.execute(COUNTS_TABLE)
    _ensure_triggers(conn)
    if not counted:
        conn.execute(COUNT_EXISTING)
