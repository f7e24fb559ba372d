"""The process's record store: opened lazily after fork, schema ensured, wrapped in the spool."""

import logging
import os
import threading
import time
import types
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .errors import StoreUnavailable
from .forklocal import ForkLocal
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
        self._process = ForkLocal(self._new_process)  # this process's store, schema_ready, schema_failed

    def _new_process(self):
        # schema_failed: when creating the schema last failed (monotonic s); < 0: never
        return types.SimpleNamespace(store=self._open(), lock=threading.Lock(), schema_ready=False, schema_failed=-1.0)

    @property
    def backend(self):
        """The scheme of the configured database URL."""
        url = self.config["MNIST_DATABASE_URL"]
        return url.split(":", 1)[0] if url else "sqlite"

    def store(self):
        """The store for this process, created on first use."""
        process = self._process.get()
        self._ensure_schema(process)
        return process.store

    def peek(self):
        """The store if already opened in this process, else None."""
        process = self._process.peek()
        return None if process is None else process.store

    def _open(self):
        config = self.config
        inner = open_store(
            config["MNIST_DATABASE_URL"],
            self.instance_path,
            config["MNIST_STORE_TIMEOUT"],
            config["MNIST_RETENTION_DAYS"],
        )
        if self.backend == "sqlite":
            return inner
        from .store.spool import SpooledStore

        spool = self.config["MNIST_SPOOL_PATH"] or os.path.join(self.instance_path, "spool.sqlite3")
        return SpooledStore(inner, spool, max_records=self.config["MNIST_SPOOL_MAX_RECORDS"])

    def _ensure_schema(self, process):
        if process.schema_ready:
            return
        if process.schema_failed < 0:
            # The first attempt: every thread waits while one creates the schema, so none writes
            # before the tables exist.
            process.lock.acquire()
        elif not process.lock.acquire(blocking=False):
            # The database was down and one thread is retrying: the others do not queue behind it;
            # their writes fail or are spooled as they would anyway.
            return
        try:
            failed = process.schema_failed
            if process.schema_ready or (failed >= 0 and time.monotonic() - failed < SCHEMA_RETRY_SECONDS):
                return
            process.store.init_schema()
            process.schema_ready = True
        except StoreUnavailable as exc:
            process.schema_failed = time.monotonic()
            log.warning("could not create the schema yet: %s", exc)
        finally:
            process.lock.release()

    def close(self):
        """Close the store (at exit or in tests)."""
        process = self._process.pop()
        if process is not None:
            process.store.close()


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


@click.command("purge")
@with_appcontext
def purge_command():
    """Delete the records past MNIST_RETENTION_DAYS now (SQLite; Cassandra and Redis expire them themselves)."""
    holder = current_app.extensions[EXTENSION]
    store = holder.store()
    if current_app.config["MNIST_RETENTION_DAYS"] is None:
        click.echo("MNIST_RETENTION_DAYS is not set: records are kept forever")
    elif hasattr(store, "purge"):
        click.echo(f"purged {store.purge()} expired records")
    else:
        click.echo(f"the {holder.backend} store expires records itself (TTL): nothing to do")


def init_app(app):
    """Attach the store holder and the init-db command to the app."""
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.extensions[EXTENSION] = StoreHolder(app.config, app.instance_path)
    app.cli.add_command(init_db_command)
    app.cli.add_command(purge_command)
