"""Per-process state: a value made on first use in each process, so nothing crosses a fork.

Driver sessions, connection pools, SQLite connections, threads and their locks must not be shared
between a parent and a forked child (gunicorn forks its workers). Every holder of such state keeps it
in a ForkLocal: after a fork the child sees an empty one and makes its own, and close hooks run
only in the process that made the value.
"""

import os
import threading
import weakref

_instances = weakref.WeakSet()


class ForkLocal:
    """A value made by factory() once per process (a forked child makes its own on first use)."""

    def __init__(self, factory):
        self._factory = factory
        self._lock = threading.Lock()
        self._value = None
        self._pid = None
        _instances.add(self)

    def get(self):
        """This process's value, made on first use."""
        if self._pid == os.getpid():
            return self._value
        with self._lock:
            if self._pid != os.getpid():
                self._value = self._factory()
                self._pid = os.getpid()  # last: other threads pass the check above only now
        return self._value

    def peek(self):
        """This process's value if it was made, else None."""
        return self._value if self._pid == os.getpid() else None

    def pop(self):
        """Forget this process's value and return it (None if there was none) so the caller can close it."""
        with self._lock:
            value = self.peek()
            self._value = self._pid = None
        return value

    def _after_fork(self):
        # The parent's value (and a lock some parent thread held at fork time) are useless here.
        self._lock = threading.Lock()
        self._value = self._pid = None


def _reset_all():
    for instance in list(_instances):
        instance._after_fork()


os.register_at_fork(after_in_child=_reset_all)


def thread_local():
    """A ForkLocal threading.local: per thread and per process (a child's main thread starts empty)."""
    return ForkLocal(threading.local)
