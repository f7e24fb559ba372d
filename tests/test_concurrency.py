"""CPU sizing: the affinity mask capped by a cgroup v2 or v1 quota, read from real files laid out as the kernel does."""

import math
import os

import pytest

from mnist_web.concurrency import cgroup_cpu_limit, serving_plan, usable_cpus


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_process_cgroup_and_its_parents(tmp_path):
    proc = tmp_path / "proc_cgroup"
    write(proc, "0::/machine/app\n")
    root = tmp_path / "cgroup"
    write(root / "cpu.max", "max 100000\n")
    write(root / "machine" / "cpu.max", "300000 100000\n")
    write(root / "machine" / "app" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(root, proc) == 1.5
    write(root / "machine" / "app" / "cpu.max", "max 100000\n")  # the parent's limit still applies
    assert cgroup_cpu_limit(root, proc) == 3.0


def test_cgroup_v1_quota(tmp_path):
    proc = tmp_path / "proc_cgroup"
    write(proc, "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n")
    root = tmp_path / "cgroup"
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "50000\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, proc) == 0.5
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "-1\n")  # no quota
    assert cgroup_cpu_limit(root, proc) is None


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None


def test_usable_cpus_follow_the_affinity_mask():
    mask = os.sched_getaffinity(0)
    limit = cgroup_cpu_limit()
    expected = len(mask) if limit is None else min(len(mask), math.ceil(limit))
    assert usable_cpus() == max(1, expected)
    if len(mask) > 1:  # pinning the process to one CPU halves what it may use, whatever os.cpu_count says
        os.sched_setaffinity(0, {min(mask)})
        try:
            assert usable_cpus() == 1
        finally:
            os.sched_setaffinity(0, mask)


def test_plan_defaults_and_overrides(monkeypatch):
    for name in (
        "WEB_CONCURRENCY",
        "GUNICORN_THREADS",
        "MNIST_TF_INTRA_OP_THREADS",
        "MNIST_TF_INTER_OP_THREADS",
        "MNIST_OPENCV_THREADS",
        "MNIST_ONNX_THREADS",
        "MNIST_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    plan = serving_plan()
    assert plan["workers"] == usable_cpus() and plan["threads"] == 4
    assert plan["tf_intra_op"] == plan["tf_inter_op"] == plan["opencv"] == plan["onnx"] == 1
    # Every store gets the same threads (a Cassandra node on the same cores had the shortest tail with 4).
    monkeypatch.setenv("MNIST_DATABASE_URL", "cassandra://127.0.0.1:9042/mnist")
    assert serving_plan()["threads"] == 4
    monkeypatch.setenv("GUNICORN_THREADS", "3")
    assert serving_plan()["threads"] == 3
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    monkeypatch.setenv("MNIST_TF_INTRA_OP_THREADS", "3")
    plan = serving_plan()
    assert plan["workers"] == 5 and plan["tf_intra_op"] == 3


@pytest.mark.parametrize("text", ["", "garbage", "max"])
def test_unreadable_cpu_max_is_ignored(tmp_path, text):
    proc = tmp_path / "proc_cgroup"
    write(proc, "0::/\n")
    write(tmp_path / "cgroup" / "cpu.max", text)
    assert cgroup_cpu_limit(tmp_path / "cgroup", proc) is None
