"""The process's record store: opened lazily after fork, schema ensured, wrapped in the spool."""

import logging
import os
import threading
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .errors import StoreUnavailable
from .store import open_store

log = logging.getLogger(__name__)
EXTENSION = "mnist_web.store"
# While the database is down, try to create its schema at most this often.
SCHEMA_RETRY_SECONDS = 5.0


class StoreHolder:
    """Owns one store per process and makes sure its schema exists before the first write."""

    def __init__(self, config, instance_path):
        self.config = config
        self.instance_path = instance_path
        self._lock = threading.Lock()
        self._pid = None
        self._store = None
        self._schema_ready = False
        self._schema_failed = -1.0  # when creating the schema last failed (monotonic s); < 0: never

    @property
    def backend(self):
        """The scheme of the configured database URL."""
        url = self.config["MNIST_DATABASE_URL"]
        return url.split(":", 1)[0] if url else "sqlite"

    def store(self):
        """The store for this process, created on first use."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._schema_ready = False
                    self._schema_failed = -1.0
                    self._store = self._open()
                    self._pid = os.getpid()  # last: other threads pass the check above only now
        self._ensure_schema()
        return self._store

    def peek(self):
        """The store if already opened in this process, else None."""
        return self._store if self._pid == os.getpid() else None

    def _open(self):
        inner = open_store(self.config["MNIST_DATABASE_URL"], self.instance_path, self.config["MNIST_STORE_TIMEOUT"])
        if self.backend == "sqlite":
            return inner
        from .store.spool import SpooledStore

        spool = self.config["MNIST_SPOOL_PATH"] or os.path.join(self.instance_path, "spool.sqlite3")
        return SpooledStore(inner, spool, max_records=self.config["MNIST_SPOOL_MAX_RECORDS"])

    def _ensure_schema(self):
        if self._schema_ready:
            return
        if self._schema_failed < 0:
            # The first attempt: every thread waits while one creates the schema, so none writes
            # before the tables exist.
            self._lock.acquire()
        elif not self._lock.acquire(blocking=False):
            # The database was down and one thread is retrying: the others do not queue behind it;
            # their writes fail or are spooled as they would anyway.
            return
        try:
            failed_lately = self._schema_failed >= 0 and time.monotonic() - self._schema_failed < SCHEMA_RETRY_SECONDS
            if self._schema_ready or failed_lately:
                return
            self._store.init_schema()
            self._schema_ready = True
        except StoreUnavailable as exc:
            self._schema_failed = time.monotonic()
            log.warning("could not create the schema yet: %s", exc)
        finally:
            self._lock.release()

    def close(self):
        """Close the store (at exit or in tests)."""
        if self._store is not None:
            self._store.close()
            self._store = None
            self._pid = None


def get_store():
    """The current app's record store."""
    return current_app.extensions[EXTENSION].store()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the keyspace/tables of the configured store (idempotent)."""
    holder = current_app.extensions[EXTENSION]
    store = holder.store()
    store.init_schema()
    click.echo(f"schema ready in the {holder.backend} store")


def init_app(app):
    """Attach the store holder and the init-db command to the app."""
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.extensions[EXTENSION] = StoreHolder(app.config, app.instance_path)
    app.cli.add_command(init_db_command)
