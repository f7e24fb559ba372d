"""Exact Cassandra stats whose cost follows recent traffic, not the table: rollups recounted from the records.

Counters are not idempotent (a spool replay or a retried write would count twice) and a conditional
(Paxos) update per prediction costs several writes. Instead the counts are always *recomputed* from
the records, which is idempotent, and only where something changed:

- ``stat_hours`` (a row per day and hour) and ``stat_days`` (a row per day, one partition) hold the
  exact counts of sealed hours and days: per digit, refused (not a digit), labelled, correct. Rollups
  sealed before refusals existed have no refused count; they are read as refused = 0.
- ``stat_marks`` (one small partition) says which hours changed since they were sealed. A live
  prediction writes a mark for its hour at most once per process and hour, concurrently with the
  record (the write path stays one round trip). A write into an hour that is not the current one (a
  spool replay, a late retry) and every label write their mark *after* the record is acknowledged.
- stats() = the ``stat_days`` rows of days without marks + for each marked day its clean
  ``stat_hours`` rows + a live recount (one range query per shard) of its marked hours. Its cost is
  the number of days kept plus the records of the marked hours (the current hour or two, and what
  was replayed or labelled since the last stats call), never the table.
- stats() also seals: a marked hour that ended more than GRACE ago gets its recount written to
  ``stat_hours`` (and the day's total to ``stat_days`` once no hour of the day is marked), then the
  marks it read are deleted, by their ids (a mark written meanwhile has another id and stays). The
  rollups are written ``USING TIMESTAMP`` of the moment the marks were read, so of two concurrent
  sealers the later reader wins.

Exactness rests on: a mark is only deleted after a recount that started after the mark was read,
and every change is visible before its mark can be read (late writes and labels mark after the
acknowledgement; live writes are acknowledged within the store timeout, long before their hour
ends plus GRACE). Assumed: app clocks within GRACE minus the store timeout of each other (NTP).
Deleted marks leave tombstones in the marks partition: its gc_grace_seconds is an hour, not ten days,
so they do not pile up; a mark brought back by a replica that missed the delete only costs a recount.
Retention: rollup rows expire with their day's records (retention.py), so stats count kept records.
"""

import datetime
import struct
import time

from ..limits import DIGITS
from . import retention
from .base import BUCKETS, NUMBER_BUCKETS, STAT_KEYS, Stats, bucket, counts_as_correct, new_record_id, record_time
from .fields import DIGIT, LABEL, MODE, NUMBER, NUMBER_LABEL, VERDICT

BUCKET = 0  # stat_marks and stat_days are single partitions: a few rows per recent hour, a row per day
WHOLE_DAY = -1  # a mark for every hour of a day (a database made before the rollups existed)
GRACE = datetime.timedelta(minutes=5)  # an hour is sealed this long after it ended
HOUR = datetime.timedelta(hours=1)
DAYS_AT_ONCE = 8  # marked days whose queries are in flight together
# Counts: one per stats key (base.STAT_KEYS: the digits, then the other answers), then digit mode's
# labelled and correct, then number mode's. Rollups written before number mode hold the digits, labelled
# and correct only (OLD_WIDTH); they read as that with zeros for the rest.
KEYS = len(STAT_KEYS)
LABELLED, CORRECT, NUMBERS_LABELLED, NUMBERS_CORRECT = range(KEYS, KEYS + 4)
WIDTH = KEYS + 4
OLD_WIDTH = len(DIGITS) + 2
# Stored packed in a blob: the driver decodes a blob in one step, a list<bigint> element by element.
PACKED = struct.Struct(f">{WIDTH}q")
OLD_PACKED = struct.Struct(f">{OLD_WIDTH}q")
SLOT = {key: i for i, key in enumerate(STAT_KEYS)}


def unpack(blob):
    """A rollup's counts (WIDTH of them), whichever version wrote it."""
    if len(blob) == OLD_PACKED.size:
        old = OLD_PACKED.unpack(blob)
        counts = [*old[: len(DIGITS)], *[0] * (KEYS - len(DIGITS)), old[-2], old[-1], 0, 0]
        return counts
    return list(PACKED.unpack(blob))


def as_stats(counts):
    """Stats from a counts vector."""
    rows = [(key, counts[SLOT[key]], 0, 0) for key in STAT_KEYS]
    rows.append((BUCKETS["not_a_digit"], 0, counts[LABELLED], counts[CORRECT]))
    rows.append((BUCKETS["number"], 0, counts[NUMBERS_LABELLED], counts[NUMBERS_CORRECT]))
    return Stats.from_buckets(rows)


def ddl(ks):
    """The CREATE TABLE statements of the stats tables."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {ks}.stat_marks (
            bucket int, day text, hour int, mark timeuuid, PRIMARY KEY (bucket, day, hour, mark)
        ) WITH gc_grace_seconds = 3600""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.stat_hours (
            day text, hour int, counts blob, PRIMARY KEY (day, hour))""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.stat_days (
            bucket int, day text, counts blob, PRIMARY KEY (bucket, day))""",
    ]


def statements(ks):
    """The statements the stats use, by name (prepared with the store's others)."""
    d, lab = DIGIT.name, LABEL.name
    return {
        "mark": f"INSERT INTO {ks}.stat_marks (bucket, day, hour, mark) VALUES (?,?,?,?) USING TTL ?",
        "marks": f"SELECT day, hour, mark FROM {ks}.stat_marks WHERE bucket = ?",
        "unmark": f"DELETE FROM {ks}.stat_marks WHERE bucket = ? AND day = ? AND hour = ? AND mark = ?",
        "days_counts": f"SELECT day, counts FROM {ks}.stat_days WHERE bucket = ?",
        "hours_counts": f"SELECT hour, counts FROM {ks}.stat_hours WHERE day = ?",
        "seal_hour": f"INSERT INTO {ks}.stat_hours (day, hour, counts) VALUES (?,?,?) USING TTL ? AND TIMESTAMP ?",
        "seal_day": f"INSERT INTO {ks}.stat_days (bucket, day, counts) VALUES (?,?,?) USING TTL ? AND TIMESTAMP ?",
        "recount": f"SELECT id, {d}, {lab}, {VERDICT.name}, {MODE.name}, {NUMBER.name}, {NUMBER_LABEL.name} "
        f"FROM {ks}.record_data WHERE day = ? AND shard = ? "
        "AND id >= minTimeuuid(?) AND id < minTimeuuid(?)",
    }


def hour_of(record_id):
    """(day 'YYYY-MM-DD', hour 0-23) of a record, UTC."""
    moment = record_time(record_id)
    return moment.date().isoformat(), moment.hour


def current_hour(now=None):
    """(day, hour) of now, UTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.date().isoformat(), now.hour


def mark_values(day, hour, ttl):
    """Values for the 'mark' statement: a fresh mark id for (day, hour)."""
    return (BUCKET, day, hour, new_record_id(), ttl or 0)


def hour_start(day, hour):
    """The UTC instant an hour of a day begins."""
    return datetime.datetime.fromisoformat(day).replace(hour=hour, tzinfo=datetime.UTC)


def _add(total, counts):
    return [a + b for a, b in zip(total, counts, strict=True)]


class Rollups:
    """stats() and sealing over one keyspace; `store` supplies the session, statements and shards."""

    def __init__(self, store):
        self.store = store

    def stats(self, now=None):
        """Exact stats now (and seal what is closed); see the module docstring."""
        now = now or datetime.datetime.now(datetime.UTC)
        session, stmts = self.store._statements()
        stamp = int(time.time() * 1e6)  # before the marks are read: rollups written from them carry it
        marks_future = session.execute_async(stmts["marks"], (BUCKET,))
        days_future = session.execute_async(stmts["days_counts"], (BUCKET,))
        # Usually only the current hour (and the last one, within GRACE) is marked: ask for them with the
        # marks, so that stats take one round trip; used only if the marks say that was enough.
        today, hour = current_hour(now)
        hours = {hour}
        if hour and now - hour_start(today, hour) < 2 * GRACE:  # the last hour may not be sealed yet
            hours.add(hour - 1)
        guess = (today, hours, self._start_day(session, stmts, today, hours))
        marked = {}
        for row in self.store._wait(marks_future):
            marked.setdefault(row.day, {}).setdefault(row.hour, []).append(row.mark)
        # Column sums over the unmarked days (hundreds of rows a year: one zip, not a loop of adds).
        clean = [unpack(row.counts) for row in self.store._wait(days_future) if row.day not in marked]
        total = [sum(column) for column in zip(*clean, strict=True)] if clean else [0] * WIDTH
        # The other marked days' sealed hours and recounts go out together, DAYS_AT_ONCE days at a time
        # (a bulk load or an upgrade marks every day).
        days = sorted(marked)
        for first in range(0, len(days), DAYS_AT_ONCE):
            chunk = days[first : first + DAYS_AT_ONCE]
            pending = {day: self._pending(session, stmts, day, marked[day], guess) for day in chunk}
            for day in chunk:
                total = _add(total, self._finish_day(session, stmts, day, marked[day], pending[day], now, stamp))
        return as_stats(total)

    def _pending(self, session, stmts, day, marks, guess):
        """The queries of a marked day: those sent ahead if they cover its marked hours, else new ones."""
        dirty = set(range(24)) if WHOLE_DAY in marks else set(marks)
        guess_day, guess_hours, (_, sealed, recounts) = guess
        if day == guess_day and dirty <= guess_hours:
            return dirty, sealed, recounts  # a recount of more hours than marked counts the marked ones only
        return self._start_day(session, stmts, day, dirty)

    def _start_day(self, session, stmts, day, dirty):
        """Send a day's queries: its stat_hours rows and one recount range query per shard over `dirty` hours."""
        start, end = hour_start(day, min(dirty)), hour_start(day, max(dirty)) + HOUR
        sealed = session.execute_async(stmts["hours_counts"], (day,))
        shards = range(self.store.shards)
        return dirty, sealed, [session.execute_async(stmts["recount"], (day, s, start, end)) for s in shards]

    def _finish_day(self, session, stmts, day, marks, pending, now, stamp):
        """One marked day's counts: clean hours from stat_hours, marked hours recounted; seals what is closed."""
        dirty, sealed_future, recount_futures = pending
        sealed = {row.hour: unpack(row.counts) for row in self.store._wait(sealed_future)}
        fresh = self._recount(recount_futures, dirty)
        day_total = [0] * WIDTH
        for hour in range(24):
            day_total = _add(day_total, fresh[hour] if hour in dirty else sealed.get(hour, [0] * WIDTH))
        closed = {h for h in dirty if hour_start(day, h) + HOUR + GRACE <= now}
        if closed:
            self._seal(session, stmts, day, marks, dirty, closed, fresh, day_total, stamp)
        return day_total

    def _recount(self, futures, hours):
        """{hour: counts} of the given hours of a day, from the rows of the recount queries."""
        counts = {hour: [0] * WIDTH for hour in hours}
        for future in futures:
            for row in self.store._wait(future):
                found = counts.get(record_time(row.id).hour)
                if found is None:  # an hour in the range that is not marked: its rollup is exact
                    continue
                digit, label = getattr(row, DIGIT.name), getattr(row, LABEL.name)
                number, number_label = getattr(row, NUMBER.name), getattr(row, NUMBER_LABEL.name)
                key = bucket(digit, getattr(row, VERDICT.name), getattr(row, MODE.name))
                found[SLOT[key]] += 1
                if label is not None or number_label is not None:
                    numbers = key in NUMBER_BUCKETS
                    found[NUMBERS_LABELLED if numbers else LABELLED] += 1
                    found[NUMBERS_CORRECT if numbers else CORRECT] += counts_as_correct(
                        label, digit, number_label, number
                    )
        return counts

    def _seal(self, session, stmts, day, marks, dirty, closed, fresh, day_total, stamp):
        """Write the closed hours' (and, if nothing else is marked, the day's) rollups, then drop their marks."""
        ttl = retention.day_ttl_seconds(datetime.date.fromisoformat(day), self.store.retention_days)
        if ttl is not None and ttl <= 0:
            return  # the day has expired; its marks expire too
        whole = closed == dirty
        writes = [
            session.execute_async(stmts["seal_hour"], (day, h, PACKED.pack(*fresh[h]), ttl or 0, stamp)) for h in closed
        ]
        if whole:
            writes.append(
                session.execute_async(stmts["seal_day"], (BUCKET, day, PACKED.pack(*day_total), ttl or 0, stamp))
            )
        if WHOLE_DAY in marks and not whole:
            # Today, marked as a whole (a bulk load, an upgrade): its open hours keep marks of their own
            # (later hours get theirs from their own writes).
            now_hour = datetime.datetime.fromtimestamp(stamp / 1e6, datetime.UTC)
            open_hours = [h for h in dirty - closed if hour_start(day, h) <= now_hour]
            writes += [session.execute_async(stmts["mark"], mark_values(day, h, ttl)) for h in open_hours]
        for future in writes:  # every rollup (and replacing mark) is written before any mark goes
            self.store._wait(future)
        done = [(hour, mark) for hour, ids in marks.items() if hour in closed or hour == WHOLE_DAY for mark in ids]
        for future in [session.execute_async(stmts["unmark"], (BUCKET, day, hour, mark)) for hour, mark in done]:
            self.store._wait(future)
