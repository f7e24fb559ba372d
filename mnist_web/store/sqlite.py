"""The embedded default store: one SQLite file in WAL mode, one connection per thread."""

import datetime
import json
import sqlite3
import threading
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


class SqliteStore(RecordStore):
    """Records in a local SQLite database file."""

    def __init__(self, path, timeout=5.0):
        self.path = str(path)
        self.timeout = timeout
        self._local = threading.local()

    def _db(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                conn.execute("PRAGMA synchronous=NORMAL")
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
        try:
            self._db().execute("PRAGMA journal_mode=WAL")
            self._db().executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    def add(self, record):
        """Insert the record; a second insert of the same id is ignored."""
        self._run(
            f"INSERT OR IGNORE INTO record_data (sort_token, {COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
        """Close this thread's connection."""
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
