"""Retention: records are kept for MNIST_RETENTION_DAYS whole UTC days after the day they were made.

A record made on day D expires at midnight UTC after D + days, so every record of one day expires at
the same instant. That lets each backend expire a day's records and its stats together: Cassandra
and Redis give the day's records and the day's counts the same expiry time, SQLite purges whole days
and its triggers take the purged records out of the counts. Stats therefore always count the
records the store still holds. None (the default) keeps records forever.
"""

import datetime
import math

from .base import record_time, uuid_ticks


def _now(now):
    return now or datetime.datetime.now(datetime.UTC)


def day_expires_at(day, days):
    """The instant the records of a UTC day (a date) stop being kept, or None when kept forever."""
    if days is None:
        return None
    return datetime.datetime.combine(day + datetime.timedelta(days=days + 1), datetime.time(), datetime.UTC)


def expires_at(record_id, days):
    """The instant a record stops being kept, or None when records are kept forever."""
    return day_expires_at(record_time(record_id).date(), days)


def day_ttl_seconds(day, days, now=None):
    """Whole seconds (rounded up) a day's records are still kept: None forever, 0 or less if expired."""
    end = day_expires_at(day, days)
    return None if end is None else math.ceil((end - _now(now)).total_seconds())


def ttl_seconds(record_id, days, now=None):
    """Whole seconds (rounded up) the record is still kept: None forever, 0 or less if already expired."""
    return day_ttl_seconds(record_time(record_id).date(), days, now)


def cutoff(days, now=None):
    """Records made before this instant have expired (None: nothing expires)."""
    if days is None:
        return None
    today = _now(now).date()
    return datetime.datetime.combine(today - datetime.timedelta(days=days), datetime.time(), datetime.UTC)


def cutoff_token(days, now=None):
    """A prefix that sorts after the sort_token of every expired record and before every kept one."""
    moment = cutoff(days, now)
    if moment is None:
        return None
    return f"{uuid_ticks(moment):016x}"
