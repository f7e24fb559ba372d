"""Record stores: one interface, one class per backend, chosen by MNIST_DATABASE_URL."""

from urllib.parse import urlsplit

from .base import Record, RecordStore, Stats, new_record_id


def open_store(url, instance_path, timeout=2.0, retention_days=None):
    """Build the store a URL names (an empty URL means SQLite in the instance folder); None keeps records forever."""
    scheme = urlsplit(url).scheme if url else "sqlite"
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        path = url[len("sqlite:///") :] if url else f"{instance_path}/mnist_web.sqlite3"
        return SqliteStore(path, retention_days=retention_days)
    if scheme == "cassandra":
        from .cassandra import CassandraStore

        return CassandraStore.from_url(url, timeout=timeout, retention_days=retention_days)
    if scheme == "redis":
        from .redis import RedisStore

        return RedisStore.from_url(url, timeout=timeout, retention_days=retention_days)
    raise ValueError(f"unsupported MNIST_DATABASE_URL scheme {scheme!r}: use sqlite, cassandra or redis")


__all__ = ["Record", "RecordStore", "Stats", "new_record_id", "open_store"]
