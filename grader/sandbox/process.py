"""Start one process, read its output with a cap, enforce the wall clock, kill what it leaves behind.

Shared by every backend. The output is read concurrently from both pipes in one select loop and only
the last `cap` bytes of each are kept, so a program printing gigabytes costs the host a bounded
amount of memory. Exit is watched through a pidfd; the child is reaped with wait4 so its CPU time
(including reaped descendants) is known for the RLIMIT_CPU verdict.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import resource
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from grader.sandbox.cgroups import Cgroup
from grader.sandbox.model import Limits, Outcome

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
DRAIN_S = 2.0  # how long to keep reading pipes after the process is gone (held open by a straggler)


class TailBuffer:
    """Keeps the last `cap` bytes of a stream without ever holding much more than that."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while self.chunks and self.size - len(self.chunks[0]) >= self.cap:
            first = self.chunks.popleft()
            self.size -= len(first)
            self.dropped += len(first)

    def text(self) -> str:
        data = b"".join(self.chunks)
        extra = max(0, len(data) - self.cap)
        data = data[extra:]
        dropped = self.dropped + extra
        text = data.decode("utf-8", errors="replace")
        if dropped:
            return f"[... {dropped} bytes of output dropped ...]\n{text}"
        return text


def rlimits_for(limits: Limits, *, memory_fallback: bool) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) triples applied in the child before exec.

    RLIMIT_CPU gets soft < hard so the program first receives SIGXCPU (recognisable as the CPU
    limit) and SIGKILL one second later. RLIMIT_AS counts virtual memory (thread stacks, mmaps), so
    it is set only without a memory cgroup, and generously (3x). RLIMIT_NPROC counts every process
    of the uid on the host, which is why each concurrent run gets its own uid.
    """
    out = [
        (resource.RLIMIT_FSIZE, limits.fsize_bytes, limits.fsize_bytes),
        (resource.RLIMIT_NOFILE, limits.nofile, limits.nofile),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if limits.cpu_s is not None:
        soft = max(1, round(limits.cpu_s))
        out.append((resource.RLIMIT_CPU, soft, soft + 1))
    if memory_fallback:
        out.append((resource.RLIMIT_AS, 3 * limits.memory_bytes, 3 * limits.memory_bytes))
        out.append((resource.RLIMIT_NPROC, limits.pids, limits.pids))
    return out


def _preexec(procs_files: Sequence[str], rlimits: Sequence[tuple[int, int, int]]) -> Callable[[], None]:
    """Join the cgroup and set rlimits in the forked child, before exec.

    Runs between fork and exec, so it only makes plain system calls (no logging, no imports, no
    locks) - the reason preexec_fn is considered unsafe in threaded programs does not apply.
    """

    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))

    return preexec


def _exited(pid: int) -> bool:
    """True once `pid` has exited, without reaping it (so its pid and group stay reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def supervise(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits,
    cgroup: Cgroup | None,
    rlimits: Sequence[tuple[int, int, int]],
    pass_fds: Sequence[int] = (),
    on_timeout: Callable[[], None] | None = None,
) -> Outcome:
    """Run `argv` to completion or to the wall-clock limit and return what happened."""
    procs = cgroup.procs_files() if cgroup is not None else []
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            close_fds=True,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
            preexec_fn=_preexec(procs, rlimits),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Outcome(None, False, time.monotonic() - start, "", "", None, start_error=str(exc))

    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    tails = {out_fd: TailBuffer(limits.output_bytes), err_fd: TailBuffer(limits.output_bytes)}
    sel = selectors.DefaultSelector()
    for fd in tails:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        log.debug("pidfd_open unavailable; polling for exit")

    def read_ready(timeout: float) -> bool:
        """Read whatever is ready; return True when the process has exited."""
        exited = False
        for key, _ in sel.select(timeout):
            fd = key.fd
            if fd == pidfd:
                exited = True
                continue
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            if data:
                tails[fd].feed(data)
            else:
                sel.unregister(fd)
        return exited or (pidfd is None and _exited(proc.pid))

    deadline = start + limits.wall_s
    timed_out = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = not _exited(proc.pid)
                break
            if read_ready(remaining if pidfd is not None else min(remaining, 0.05)):
                break
        duration = time.monotonic() - start
        if timed_out and on_timeout is not None:
            on_timeout()
        # The child is exited or about to be killed but not reaped, so its pid (and process group)
        # cannot have been reused: killing the group is safe and takes its stragglers along.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu_time = rusage.ru_utime + rusage.ru_stime
        if cgroup is not None:
            cgroup.kill_all()  # anything that left the process group (setsid) is still in here

        if pidfd is not None:
            sel.unregister(pidfd)
        drain_until = time.monotonic() + DRAIN_S
        while sel.get_map() and time.monotonic() < drain_until:
            read_ready(0.05)
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
        if proc.returncode is None:  # an exception above: never leave a sandbox running
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    return Outcome(
        returncode=proc.returncode,
        timed_out=timed_out,
        duration_s=duration,
        stdout=tails[out_fd].text(),
        stderr=tails[err_fd].text(),
        cpu_time_s=cpu_time,
    )
