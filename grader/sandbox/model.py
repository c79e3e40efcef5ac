"""What goes into a sandboxed run (`Limits`) and what comes out (`SandboxResult`).

The reason is decided on the host from what the host observed, never from anything the sandboxed
program wrote: the timer we fired, the cgroup's OOM counter, the exit status.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Literal

Reason = Literal["ok", "exit", "timeout", "oom", "cpu_limit", "signal", "sandbox_error"]

MIB = 2**20
GIB = 2**30


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run. Sizes in bytes, times in seconds."""

    wall_s: float = 600.0
    memory_bytes: int = 3 * GIB
    pids: int = 256
    cpus: float = 1.0
    cpu_s: float | None = None  # RLIMIT_CPU backstop -> reason "cpu_limit"
    fsize_bytes: int = 512 * MIB
    nofile: int = 1024
    tmpfs_bytes: int = 256 * MIB
    output_bytes: int = 1 * MIB  # cap on captured stdout/stderr each (the tail is kept)

    def __post_init__(self) -> None:
        if not (self.wall_s > 0 and self.memory_bytes > 0 and self.pids > 0 and self.cpus > 0):
            raise ValueError(f"limits must be positive, got {self}")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError(f"cpu_s must be positive or None, got {self.cpu_s}")

    @property
    def threads(self) -> int:
        """Thread count for OMP/MKL: the CPU quota rounded up (os.cpu_count() shows the host's)."""
        return max(1, math.ceil(self.cpus))


@dataclass
class SandboxResult:
    """How one sandboxed run ended, as observed by the host."""

    reason: Reason
    exit_code: int | None
    duration_s: float
    peak_memory_bytes: int | None
    pids_limit_hit: bool
    stdout: str  # tail, capped at Limits.output_bytes
    stderr: str  # tail, capped at Limits.output_bytes
    backend: str  # "bwrap" | "docker" | "none"
    isolated: bool  # False only for "none"
    degraded: bool  # True when limits fell back to rlimits (no cgroups)
    signal_name: str | None = None
    message: str = ""


@dataclass(frozen=True)
class CgroupStats:
    """What a run's cgroup counted; the defaults are all a run without a cgroup can tell."""

    oom_killed: bool = False
    peak_memory_bytes: int | None = None
    pids_limit_hit: bool = False


@dataclass
class Outcome:
    """What the host saw of one process, before interpretation."""

    returncode: int | None
    timed_out: bool
    duration_s: float
    stdout: str
    stderr: str
    cpu_time_s: float | None
    start_error: str = ""


def format_bytes(n: int) -> str:
    """`3.0 GiB`, `256 MiB`: the unit a person would use for a memory limit."""
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n} B"


def _format_seconds(s: float) -> str:
    return f"{s:g}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def classify(
    *,
    timed_out: bool,
    oom_killed: bool,
    returncode: int | None,
    limits: Limits,
    cpu_time_s: float | None = None,
) -> tuple[Reason, str | None, str]:
    """Decide (reason, signal_name, message) in the order of the sandbox notes.

    `returncode` is as the host saw it: negative for a signal death of a direct child (`none`
    backend), 128 + signal when bwrap or docker relays one. The CPU limit shows as SIGXCPU (soft
    limit) or, if the program ignored that, SIGKILL with at least `cpu_s` seconds of CPU used.
    """
    if timed_out:
        return "timeout", None, f"killed after {_format_seconds(limits.wall_s)} s wall-clock limit"
    if oom_killed:
        return "oom", None, f"out of memory (limit {format_bytes(limits.memory_bytes)})"
    if returncode is None:
        return "sandbox_error", None, "the sandboxed process was never started"
    signum: int | None = None
    if returncode < 0:
        signum = -returncode
    elif returncode > 128:
        signum = returncode - 128
    if limits.cpu_s is not None and signum is not None:
        used_cpu = cpu_time_s is not None and cpu_time_s >= limits.cpu_s
        if signum == signal.SIGXCPU or (signum == signal.SIGKILL and used_cpu):
            return "cpu_limit", signal_name(signum), (f"killed after {_format_seconds(limits.cpu_s)} s CPU-time limit")
    if returncode == 0:
        return "ok", None, "exited normally"
    if signum is not None:
        name = signal_name(signum)
        return "signal", name, f"killed by signal {name}"
    return "exit", None, f"exited with status {returncode}"


def result_from(
    outcome: Outcome,
    limits: Limits,
    *,
    backend: str,
    isolated: bool,
    degraded: bool,
    stats: CgroupStats = CgroupStats(),
    start_failure: str | None = None,
) -> SandboxResult:
    """The result of a run; `start_failure` (why the backend never started the program) wins."""
    signame: str | None = None
    if start_failure is not None:
        reason: Reason = "sandbox_error"
        message = f"sandbox failed to start: {start_failure}"
    else:
        reason, signame, message = classify(
            timed_out=outcome.timed_out,
            oom_killed=stats.oom_killed,
            returncode=outcome.returncode,
            limits=limits,
            cpu_time_s=outcome.cpu_time_s,
        )
    if not isolated:
        message += " (not sandboxed)"
    return SandboxResult(
        reason=reason,
        # After a timeout the status is that of our own SIGKILL, not the program's.
        exit_code=None if reason == "timeout" else outcome.returncode,
        duration_s=outcome.duration_s,
        peak_memory_bytes=stats.peak_memory_bytes,
        pids_limit_hit=stats.pids_limit_hit,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        backend=backend,
        isolated=isolated,
        degraded=degraded,
        signal_name=signame,
        message=message,
    )
