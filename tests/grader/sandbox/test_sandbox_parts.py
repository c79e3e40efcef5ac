"""The sandbox's pure parts: verdicts, output tails, rlimits, uid slots, the bwrap command line."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest

from grader.errors import SandboxUnavailable
from grader.sandbox.bwrap import bwrap_command
from grader.sandbox.model import Limits, classify
from grader.sandbox.prepare import secret_dirs
from grader.sandbox.process import TailBuffer, rlimits_for
from grader.sandbox.uids import sandbox_uid


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"timed_out": True, "oom_killed": True, "returncode": -9}, ("timeout", None)),
        ({"timed_out": False, "oom_killed": True, "returncode": 137}, ("oom", None)),
        ({"timed_out": False, "oom_killed": False, "returncode": 128 + signal.SIGXCPU}, ("cpu_limit", "SIGXCPU")),
        ({"timed_out": False, "oom_killed": False, "returncode": 137, "cpu_time_s": 6.1}, ("cpu_limit", "SIGKILL")),
        ({"timed_out": False, "oom_killed": False, "returncode": 137, "cpu_time_s": 0.2}, ("signal", "SIGKILL")),
        ({"timed_out": False, "oom_killed": False, "returncode": -11}, ("signal", "SIGSEGV")),
        ({"timed_out": False, "oom_killed": False, "returncode": 0}, ("ok", None)),
        ({"timed_out": False, "oom_killed": False, "returncode": 2}, ("exit", None)),
    ],
)
def test_reason_order(kwargs: dict, expected: tuple[str, str | None]) -> None:
    reason, sig, _ = classify(limits=Limits(cpu_s=5), **kwargs)
    assert (reason, sig) == expected


def test_sigxcpu_without_a_cpu_limit_is_just_a_signal() -> None:
    reason, sig, message = classify(timed_out=False, oom_killed=False, returncode=152, limits=Limits())
    assert (reason, sig, message) == ("signal", "SIGXCPU", "killed by signal SIGXCPU")


def test_messages_name_the_limit() -> None:
    limits = Limits(wall_s=600, memory_bytes=3 * 2**30)
    assert classify(timed_out=True, oom_killed=False, returncode=-9, limits=limits)[2] == (
        "killed after 600 s wall-clock limit"
    )
    assert classify(timed_out=False, oom_killed=True, returncode=137, limits=limits)[2] == (
        "out of memory (limit 3.0 GiB)"
    )


def test_tail_buffer_keeps_exactly_the_last_bytes() -> None:
    tail = TailBuffer(10)
    for chunk in (b"0123456789", b"abcdef", b"", b"ghijklmnopqrstuvwxyz" * 3, b"END"):
        tail.feed(chunk)
        assert tail.size < 10 + 64 * 1024
    assert tail.text() == "[... 69 bytes of output dropped ...]\ntuvwxyzEND"


def test_tail_buffer_below_the_cap_is_untouched_and_survives_bad_utf8() -> None:
    tail = TailBuffer(100)
    tail.feed("héllo ".encode())
    tail.feed(b"\xff\n")
    assert tail.text() == "héllo \ufffd\n"


def test_rlimits_backstop_and_fallback() -> None:
    limits = Limits(memory_bytes=2**30, pids=50, cpu_s=10, fsize_bytes=1000, nofile=64)
    with_cgroup = {r: (s, h) for r, s, h in rlimits_for(limits, memory_fallback=False)}
    assert with_cgroup == {
        resource.RLIMIT_FSIZE: (1000, 1000),
        resource.RLIMIT_NOFILE: (64, 64),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_CPU: (10, 11),  # soft < hard: SIGXCPU first
    }
    without = {r: (s, h) for r, s, h in rlimits_for(limits, memory_fallback=True)}
    assert without[resource.RLIMIT_AS] == (3 * 2**30, 3 * 2**30)
    assert without[resource.RLIMIT_NPROC] == (50, 50)


def test_concurrent_runs_get_distinct_uids(tmp_path: Path) -> None:
    with (
        sandbox_uid(base=70000, slots=3, directory=tmp_path) as a,
        sandbox_uid(base=70000, slots=3, directory=tmp_path) as b,
    ):
        assert a != b and {a, b} <= {70000, 70001, 70002}
        with sandbox_uid(base=70000, slots=3, directory=tmp_path) as c:
            assert c not in (a, b)
    seen = set()
    for _ in range(20):  # released slots are handed out again
        with sandbox_uid(base=70000, slots=3, directory=tmp_path) as d:
            seen.add(d)
    assert seen <= {70000, 70001, 70002}


def test_no_free_uid_slot_is_an_error_after_waiting(tmp_path: Path) -> None:
    busy = sandbox_uid(base=70000, slots=1, directory=tmp_path, wait_s=0.2)
    with sandbox_uid(base=70000, slots=1, directory=tmp_path), pytest.raises(SandboxUnavailable, match="all 1"):
        busy.__enter__()


def test_bwrap_command_is_an_allow_list(tmp_path: Path) -> None:
    cmd = bwrap_command(
        ["/venv/bin/python", "-c", "pass"],
        job_dir=tmp_path,
        python_dirs=[Path("/root/.pyenv/versions/3.11.7"), Path("/work/main/.venv")],
        hidden_dirs=[Path("/work/main/.venv/lib/python3.11/site-packages/grader")],
        ro_binds={"/opt/dgm": Path("/srv/runner")},
        env={"HOME": "/home/student"},
        tmpfs_bytes=2**20,
        uid=60001,
        privileged=True,
        passwd_fd=3,
        group_fd=4,
        hosts_fd=5,
        status_fd=6,
        seccomp_fd=7,
    )
    pairs = list(zip(cmd, cmd[1:], cmd[2:], strict=False))
    binds = [(a, b, c) for a, b, c in pairs if a in ("--bind", "--ro-bind", "--ro-bind-try")]
    assert ("--ro-bind", "/", "/") not in binds
    assert {b for _, b, _ in binds} == {
        "/usr", "/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/nsswitch.conf",
        "/root/.pyenv/versions/3.11.7", "/work/main/.venv", str(tmp_path), "/srv/runner",
    } | {b for _, b, _ in binds if b in ("/lib", "/lib64", "/bin", "/sbin", "/lib32", "/libx32")}  # fmt: skip
    assert "--unshare-user" not in cmd and "--unshare-net" in cmd and "--die-with-parent" in cmd
    # the tmpfs on /tmp comes before every bind (a later tmpfs would cover them)
    assert cmd.index("/tmp") < cmd.index("/work/main/.venv")
    # each missing parent is made 0755 before its bind (bwrap would make it 0700 as root)
    for parent in ("/root", "/root/.pyenv", "/root/.pyenv/versions", "/work", "/work/main", "/home", "/opt"):
        i = cmd.index(parent)
        assert cmd[i - 3 : i] == ["--perms", "0755", "--dir"], parent
    # hiding comes after the venv is bound
    assert cmd.index("/work/main/.venv/lib/python3.11/site-packages/grader") > cmd.index("/work/main/.venv")
    setpriv = cmd.index("setpriv")
    assert cmd[setpriv:] == [
        "setpriv", "--reuid=60001", "--regid=60001", "--clear-groups", "--inh-caps=-all",
        "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", "/venv/bin/python", "-c", "pass",
    ]  # fmt: skip
    # the kernel's writable home is a size-capped tmpfs over the job dir's `work`
    work = cmd.index("/home/student/work")
    assert cmd[work - 5 : work] == ["--perms", "1777", "--size", str(2**20), "--tmpfs"]
    assert work > cmd.index(str(tmp_path))


def test_secret_packages_in_a_non_editable_install_are_found(tmp_path: Path) -> None:
    sp = tmp_path / "lib" / "python3.11" / "site-packages"
    for name in ("grader", "server", "reference_solutions", "numpy"):
        (sp / name).mkdir(parents=True)
    assert secret_dirs([tmp_path]) == [sp / "reference_solutions", sp / "grader", sp / "server"]
