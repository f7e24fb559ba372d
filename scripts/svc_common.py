"""What every local server shares: errors, free ports, pid files, bounded stops and waits, log tails."""

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger("services")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVICES_DIR = REPO_ROOT / ".cache" / "services"


class ServiceError(RuntimeError):
    """A server could not be set up, started or stopped; the message says what is missing."""


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (for tests that start their own servers)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host, port, timeout=1.0):
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pid(pid_file):
    """The pid in a pid file, or None."""
    try:
        return int(Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid, marker=None):
    """True when pid runs and (if given) its command line contains marker, so a reused pid is not ours."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "?"
    if state == "Z":  # a zombie child of this process: it has exited
        return False
    return marker is None or marker in cmdline


class PidFileServer:
    """A background server known by its pid file and a marker in its command line (so a reused pid is not it)."""

    pid_file = None
    marker = None

    @property
    def pid(self):
        """The server's process id from the pid file, or None."""
        return read_pid(self.pid_file)

    def is_running(self):
        """True when the server's process is alive."""
        return alive(self.pid, self.marker)


def reap(pid):
    """Collect the exit status of our own child so it is not left a zombie (no-op for others)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def terminate(pid, marker, timeout, what):
    """SIGTERM the process (group), wait up to timeout seconds, then SIGKILL; bounded."""
    if not alive(pid, marker):
        return False
    if timeout > 0:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reap(pid)
            if not alive(pid, marker):
                return True
            time.sleep(0.2)
        log.warning("%s (pid %s) did not stop within %.0f s: killing it", what, pid, timeout)
    _signal_group(pid, signal.SIGKILL)
    for _ in range(50):
        reap(pid)
        if not alive(pid, marker):
            break
        time.sleep(0.1)
    return True


def wait_until(check, timeout, interval, what, detail=None):
    """Call check() until it returns a true value (returned) or timeout seconds pass (ServiceError).

    `what` names the awaited thing in the error; `detail()`, if given, adds to it (a log tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what}: not within {timeout:.0f} s{detail() if detail else ''}")
        time.sleep(interval)


def tail(path, lines=30):
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def env_float(name, default):
    """A float setting from the environment."""
    return float(os.environ.get(name) or default)


def docker_available():
    """True when a Docker engine answers `docker info`."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
