"""How much parallelism the service uses, sized from the CPUs this process may actually run on.

The host's core count (os.cpu_count) overstates it in a container or under taskset: the usable CPUs
are the affinity mask, capped by a cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`).
gunicorn.conf.py sizes workers and threads from here, and each worker's TensorFlow and OpenCV thread pools too.
"""

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Request threads per worker: one computes (the GIL lets one at a time) while the others wait on the socket
# or the database. Measured (README, Serving under load): SQLite gains little from 2 to 6. Cassandra on the
# same 2 cores: 4 threads gave the throughput of 6 with half its tail (p99 2.2 x p50 in two runs, against
# 2.7-4.1 x with 6 and 2.6-4.2 x with 3). One thread gives a load of canvas drawings a shorter tail, but then a
# photo (or a slow upload) holds its whole worker: drawings behind photos had a p99 of 218-258 ms against
# 46-54 ms with 4 (README, Serving under load; bench_serving --mode mixed).
DEFAULT_THREADS = 4
# TensorFlow (or ONNX Runtime) threads per worker: one image is too small to split across cores; the
# workers are the parallelism.
DEFAULT_TF_THREADS = 1
# OpenCV threads per worker, for the same reason: its pool (one thread per core by default) splits a canvas's
# resize or labelling into slivers and spins between them, which cost 1.6 ms of CPU per request here.
DEFAULT_OPENCV_THREADS = 1


def _own_cgroup_paths(proc_cgroup="/proc/self/cgroup"):
    """{controller or '' (v2): path} of this process's cgroups."""
    paths = {}
    try:
        for line in Path(proc_cgroup).read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except (OSError, ValueError):
        pass
    return paths


def _ancestors(base, path):
    """base/path, then each parent folder up to base (a limit set higher up applies too)."""
    folder = base / path.strip("/")
    while True:
        yield folder
        if folder == base:
            return
        folder = folder.parent


def cgroup_cpu_limit(root=CGROUP_ROOT, proc_cgroup="/proc/self/cgroup"):
    """The CPU quota in CPUs (e.g. 1.5) that a cgroup v2 or v1 sets on this process, or None."""
    own = _own_cgroup_paths(proc_cgroup)
    limits = []
    for folder in _ancestors(root, own.get("", "/")):  # v2: "max 100000" or "150000 100000"
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and int(period) > 0:
            limits.append(int(quota) / int(period))
    for base in (root / "cpu", root / "cpu,cpuacct"):  # v1
        for folder in _ancestors(base, own.get("cpu", "/")):
            try:
                quota = int((folder / "cpu.cfs_quota_us").read_text())
                period = int((folder / "cpu.cfs_period_us").read_text())
            except (OSError, ValueError):
                continue
            if quota > 0 and period > 0:
                limits.append(quota / period)
    return min(limits) if limits else None


def usable_cpus():
    """Whole CPUs this process may use: its affinity mask, capped by a cgroup quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def _env_count(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def serving_plan():
    """{cpus, workers, threads, tf_intra_op, tf_inter_op, opencv, onnx}: from the usable CPUs; env overrides each."""
    cpus = usable_cpus()
    return {
        "cpus": cpus,
        # One worker per CPU: inference is CPU-bound and the GIL lets one thread compute at a time.
        "workers": _env_count("WEB_CONCURRENCY", cpus),
        "threads": _env_count("GUNICORN_THREADS", DEFAULT_THREADS),
        "tf_intra_op": _env_count("MNIST_TF_INTRA_OP_THREADS", DEFAULT_TF_THREADS),
        "tf_inter_op": _env_count("MNIST_TF_INTER_OP_THREADS", DEFAULT_TF_THREADS),
        "opencv": _env_count("MNIST_OPENCV_THREADS", DEFAULT_OPENCV_THREADS),
        "onnx": _env_count("MNIST_ONNX_THREADS", DEFAULT_TF_THREADS),
    }
