"""The cgroup writer against fake hierarchies in tmp: v2 (not present on our hosts) and v1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from grader.sandbox.cgroups import Cgroup, CgroupError, CgroupLayout, discover, open_cgroup
from grader.sandbox.model import Limits

LIMITS = Limits(memory_bytes=2**30, pids=64, cpus=1.5)


def mountinfo(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_discover_prefers_v2_when_the_unified_tree_offers_memory_and_pids(tmp_path: Path) -> None:
    mnt = tmp_path / "cgroup"
    own = mnt / "grader.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    info = mountinfo(f"30 23 0:27 / {mnt} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate")
    layout = discover(info, "0::/grader.service\n")
    assert layout == CgroupLayout(version=2, dirs={"unified": own})


def test_discover_falls_back_to_v1_on_a_hybrid_host_and_honours_mount_roots(tmp_path: Path) -> None:
    base = tmp_path / "sys"
    (base / "unified").mkdir(parents=True)  # no cgroup.controllers: controller-less v2 tree
    info = mountinfo(
        f"32 31 0:29 / {base}/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct",
        # memory is mounted from a sub-path, as inside a container
        f"35 31 0:32 /process_api {base}/memory rw,relatime - cgroup cgroup rw,memory",
        f"39 31 0:36 / {base}/pids rw,relatime - cgroup cgroup rw,pids",
        f"41 31 0:38 / {base}/unified rw,relatime - cgroup2 cgroup2 rw",
        "22 1 0:21 / /proc rw - proc proc rw",
    )
    proc = "8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n"
    layout = discover(info, proc)
    assert layout is not None and layout.version == 1
    assert layout.dirs == {
        "memory": base / "memory" / "abc",
        "pids": base / "pids",
        "cpu": base / "cpu",
        "unified": base / "unified",
    }


def test_discover_gives_up_without_memory_and_pids() -> None:
    assert discover(mountinfo("22 1 0:21 / /proc rw - proc proc rw"), "0::/\n") is None


def fake_v2(tmp_path: Path, subtree: str = "") -> CgroupLayout:
    parent = tmp_path / "grader.service"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpu memory pids\n")
    (parent / "cgroup.subtree_control").write_text(subtree)
    return CgroupLayout(version=2, dirs={"unified": parent})


def test_v2_child_gets_every_limit_and_the_controllers_are_delegated(tmp_path: Path) -> None:
    layout = fake_v2(tmp_path)
    group = Cgroup.create(layout, LIMITS, name="dgm-sbx-1-0-aa")
    child = tmp_path / "grader.service" / "dgm-sbx-1-0-aa"
    assert group.dirs == {"unified": child}
    assert (tmp_path / "grader.service" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    files = {p.name: p.read_text() for p in child.iterdir()}
    assert files == {
        "memory.max": str(2**30),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "pids.max": "64",
        "cpu.max": "150000 100000",
    }
    assert group.procs_files() == [str(child / "cgroup.procs")]


def test_v2_counters_are_read_from_their_files(tmp_path: Path) -> None:
    group = Cgroup.create(fake_v2(tmp_path, "cpu memory pids"), LIMITS, name="dgm-sbx-1-1-bb")
    child = group.dirs["unified"]
    assert (group.oom_killed(), group.pids_limit_hit(), group.peak_memory()) == (False, False, None)
    (child / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    (child / "pids.events").write_text("max 3\n")
    (child / "memory.peak").write_text("1073741824\n")
    assert (group.oom_killed(), group.pids_limit_hit(), group.peak_memory()) == (True, True, 2**30)


def test_kill_all_kills_and_reaps_every_listed_process(tmp_path: Path) -> None:
    group = Cgroup.create(fake_v2(tmp_path, "cpu memory pids"), LIMITS, name="dgm-sbx-1-2-cc")
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    (group.dirs["unified"] / "cgroup.procs").write_text("".join(f"{p.pid}\n" for p in sleepers))
    assert group.kill_all(timeout_s=5)
    for p in sleepers:
        with pytest.raises(ChildProcessError):  # killed and already reaped by kill_all
            os.waitpid(p.pid, os.WNOHANG)
        p.returncode = -9


def test_v2_without_delegable_controllers_falls_back(tmp_path: Path) -> None:
    layout = fake_v2(tmp_path)
    (layout.dirs["unified"] / "cgroup.subtree_control").unlink()
    (layout.dirs["unified"] / "cgroup.subtree_control").mkdir()  # writing it fails like EBUSY would
    with pytest.raises(CgroupError):
        Cgroup.create(layout, LIMITS, name="dgm-sbx-1-3-dd")
    assert not (layout.dirs["unified"] / "dgm-sbx-1-3-dd").exists()
    assert open_cgroup(LIMITS, layout) is None


def test_v1_child_in_each_hierarchy(tmp_path: Path) -> None:
    dirs = {k: tmp_path / k for k in ("memory", "pids", "cpu")}
    for d in dirs.values():
        d.mkdir()
    group = Cgroup.create(CgroupLayout(version=1, dirs=dirs), LIMITS, name="dgm-sbx-1-4-ee")
    read = lambda key, name: (tmp_path / key / "dgm-sbx-1-4-ee" / name).read_text()  # noqa: E731
    assert read("memory", "memory.limit_in_bytes") == str(2**30)
    assert read("memory", "memory.memsw.limit_in_bytes") == str(2**30)
    assert read("pids", "pids.max") == "64"
    assert (read("cpu", "cpu.cfs_period_us"), read("cpu", "cpu.cfs_quota_us")) == ("100000", "150000")
    assert len(group.procs_files()) == 3
    mem = group.dirs["memory"]
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (mem / "memory.max_usage_in_bytes").write_text("5000\n")
    (group.dirs["pids"] / "pids.events").write_text("max 0\n")
    assert (group.oom_killed(), group.peak_memory(), group.pids_limit_hit()) == (True, 5000, False)
    for d in group.dirs.values():  # a real cgroupfs removes its control files with the directory
        for f in d.iterdir():
            f.unlink()
    group.remove()
    assert group.dirs == {} and all(not (d / "dgm-sbx-1-4-ee").exists() for d in dirs.values())
