"""One local redis-server (Debian's), daemonized with its own folder and pid file, for dev and tests."""

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from svc_common import DEFAULT_SERVICES_DIR, PidFileServer, ServiceError, alive, port_open, tail, wait_until

log = logging.getLogger("services")


class RedisServer(PidFileServer):
    """One local redis-server, daemonized with its own dir and pid file: start(), stop(), url, wait_ready()."""

    def __init__(self, base_dir=None, host=None, port=None, db=None):
        env = os.environ
        self.base_dir = Path(base_dir or env.get("REDIS_DIR") or DEFAULT_SERVICES_DIR / "redis").resolve()
        self.host = host or env.get("REDIS_HOST", "127.0.0.1")
        self.port = int(port or env.get("REDIS_PORT", 6379))
        self.db = int(db if db is not None else env.get("REDIS_DB", 0))
        self.pid_file = self.base_dir / "redis.pid"
        self.log_file = self.base_dir / "redis.log"
        # redis-server titles itself "redis-server HOST:PORT": a reused pid will not match.
        self.marker = f"redis-server {self.host}:{self.port}"

    @property
    def url(self):
        """The MNIST_DATABASE_URL that reaches this server."""
        return f"redis://{self.host}:{self.port}/{self.db}"

    def start(self, wait=True, timeout=None):
        """Start redis-server daemonized (no-op if running) and, by default, wait for PING."""
        if self.is_running():
            log.info("redis already running (pid %s)", self.pid)
        else:
            binary = shutil.which("redis-server")
            if binary is None:
                raise ServiceError("redis-server is missing: apt-get install -y redis-server")
            if port_open(self.host, self.port):
                raise ServiceError(f"{self.host}:{self.port} is taken by another process")
            self.base_dir.mkdir(parents=True, exist_ok=True)
            cmd = [
                binary,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--dir",
                str(self.base_dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.log_file),
                # An append-only file keeps records across restarts (fsync once a second).
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ]
            subprocess.run(cmd, check=True, timeout=30, stdin=subprocess.DEVNULL)
            log.info("redis starting on %s:%s, data in %s", self.host, self.port, self.base_dir)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=None):
        """Block until the server answers PING; raise ServiceError after timeout seconds."""
        import redis

        timeout = float(timeout or os.environ.get("REDIS_START_TIMEOUT", 30))
        started = time.monotonic()
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=2, socket_connect_timeout=2)

        def pong():
            try:
                return client.ping()
            except redis.RedisError:
                return False

        try:
            wait_until(
                pong,
                timeout,
                0.1,
                f"redis answering PING on {self.host}:{self.port}",
                lambda: f"; log:\n{tail(self.log_file)}",
            )
        finally:
            client.close()
        return time.monotonic() - started

    def stop(self, timeout=30.0):
        """Stop the server (SIGTERM makes it flush and exit; bounded wait, then SIGKILL)."""
        pid = self.pid
        if not alive(pid, self.marker):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid, self.marker):
            time.sleep(0.1)
        if alive(pid, self.marker):
            log.warning("redis (pid %s) did not stop within %.0f s: killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
