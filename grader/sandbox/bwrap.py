"""The bubblewrap backend (local and CI): profile C of the sandbox notes.

As root: no user namespace (one would map the sandbox user to host root, and every root-owned 0600
file would be readable), a net/pid/ipc/uts/cgroup unshare, allow-list binds only (never `/`), tmpfs
/tmp and /dev/shm, then `setpriv` to an unprivileged uid with no capabilities and no_new_privs. As a
non-root caller bwrap makes an unprivileged user namespace instead, with nested ones disabled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from grader.sandbox.cgroups import open_cgroup
from grader.sandbox.model import CgroupStats, Limits, SandboxResult, result_from
from grader.sandbox.prepare import (
    HOME,
    ORCHESTRATOR_CAPS,
    chown_tree,
    drop_privileges,
    grader_python,
    python_dirs,
    resolve_python,
    sandbox_env,
    secret_dirs,
)
from grader.sandbox.process import rlimits_for, supervise
from grader.sandbox.seccomp import seccomp_bpf
from grader.sandbox.uids import sandbox_uid

log = logging.getLogger(__name__)

# /etc files the dynamic loader and Python's locale/time code read; nothing else of /etc.
ETC_FILES = ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/nsswitch.conf")
TOP_LEVEL_LINKS = ("bin", "lib", "lib64", "lib32", "libx32", "sbin")


class _Mounts:
    """Builds bwrap arguments, creating each missing parent dir with mode 0755 first.

    (As real root, bwrap creates missing parents with mode 0700, which the sandbox user cannot
    traverse.)
    """

    def __init__(self) -> None:
        self.args: list[str] = []
        self.made: set[str] = {"/"}

    def parents(self, target: str) -> None:
        for parent in reversed(Path(target).parents):
            if str(parent) not in self.made:
                self.args += ["--perms", "0755", "--dir", str(parent)]
                self.made.add(str(parent))

    def add(self, *args: str) -> None:
        self.args += args


def bwrap_command(
    argv: Sequence[str],
    *,
    job_dir: Path,
    python_dirs: Sequence[Path],
    hidden_dirs: Sequence[Path] = (),
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str],
    tmpfs_bytes: int,
    uid: int,
    kernel_uid: int | None = None,
    privileged: bool,
    passwd_fd: int,
    group_fd: int,
    hosts_fd: int,
    status_fd: int,
    seccomp_fd: int | None,
) -> list[str]:
    """The full bwrap argv (a pure function of its arguments, so tests can read it)."""
    m = _Mounts()
    if privileged:
        m.add("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup")
    else:
        m.add("--unshare-all", "--unshare-user", "--disable-userns")
    m.add("--hostname", "sandbox", "--die-with-parent", "--new-session", "--json-status-fd", str(status_fd))
    if seccomp_fd is not None:
        m.add("--seccomp", str(seccomp_fd))

    m.add("--ro-bind", "/usr", "/usr")
    for name in TOP_LEVEL_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            m.add("--symlink", os.readlink(path), path)
        elif os.path.isdir(path):
            m.add("--ro-bind", path, path)
    m.add("--perms", "0755", "--dir", "/etc")
    m.made.add("/etc")
    for path in ETC_FILES:
        m.add("--ro-bind-try", path, path)
    for fd, path in ((passwd_fd, "/etc/passwd"), (group_fd, "/etc/group"), (hosts_fd, "/etc/hosts")):
        m.add("--perms", "0644", "--ro-bind-data", str(fd), path)
    m.add("--proc", "/proc", "--dev", "/dev")
    # tmpfs before any bind below it, or the tmpfs would cover the bind.
    size = str(tmpfs_bytes)
    m.add("--perms", "1777", "--size", size, "--tmpfs", "/dev/shm")
    m.add("--perms", "1777", "--size", size, "--tmpfs", "/tmp")
    m.made.update({"/proc", "/dev", "/dev/shm", "/tmp", "/usr"})

    for d in python_dirs:
        m.parents(str(d))
        m.add("--ro-bind", str(d), str(d))
        m.made.add(str(d))
    for d in hidden_dirs:
        m.add("--perms", "0555", "--size", "4096", "--tmpfs", str(d))

    m.parents(HOME)
    m.add("--bind", str(job_dir), HOME)
    m.made.add(HOME)
    # The kernel's only writable directories besides /tmp: memory-backed, size-capped and charged to
    # the job's memory cgroup, so a file flood fills the job's own limit, never the host's disk.
    m.add("--perms", "1777", "--size", size, "--tmpfs", f"{HOME}/work")
    m.made.add(f"{HOME}/work")
    for target, source in sorted(ro_binds.items()):
        m.parents(target)
        m.add("--ro-bind", str(source), target)
        m.made.add(target)

    m.add("--chdir", HOME, "--clearenv")
    for key, value in env.items():
        m.add("--setenv", key, value)

    cmd = ["bwrap", *m.args, "--"]
    if privileged:
        cmd += drop_privileges(uid, keep=ORCHESTRATOR_CAPS if kernel_uid is not None else "")
    else:
        cmd += ["setpriv", "--no-new-privs", "--"]
    return cmd + list(argv)


@contextlib.contextmanager
def _data_fds(*blobs: bytes) -> Iterator[list[int]]:
    """Read ends of pipes pre-filled with `blobs` (each well under the 64 KiB pipe buffer)."""
    fds: list[int] = []
    try:
        for blob in blobs:
            r, w = os.pipe()
            fds.append(r)
            try:
                os.write(w, blob)
            finally:
                os.close(w)
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def _identity_files(uid: int, kernel_uid: int | None = None) -> tuple[bytes, bytes, bytes]:
    passwd = f"root:x:0:0:root:/root:/usr/sbin/nologin\ngrader:x:{uid}:{uid}:grader:{HOME}:/bin/sh\n"
    group = f"root:x:0:\ngrader:x:{uid}:\n"
    if kernel_uid is not None:
        passwd += f"student:x:{kernel_uid}:{kernel_uid}:student:{HOME}/work:/bin/sh\n"
        group += f"student:x:{kernel_uid}:\n"
    passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    group += "nogroup:x:65534:\n"
    hosts = "127.0.0.1 localhost sandbox\n::1 localhost\n"
    return passwd.encode(), group.encode(), hosts.encode()


def _child_exited(status: bytes) -> bool:
    """Whether bwrap reported the program's exit (`{"exit-code": N}` on --json-status-fd).

    bwrap reports `child-pid` before it sets up the mounts, so only `exit-code` proves that the
    sandbox was complete and the program ran. It is missing after a setup failure ("bwrap: Can't
    find source path ...") and when we killed the sandbox.
    """
    decoder = json.JSONDecoder()
    text, pos = status.decode(errors="replace"), 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return False
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return False
        if isinstance(obj, dict) and "exit-code" in obj:
            return True


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    return b"".join(chunks)


def run_bwrap(
    argv: Sequence[str],
    job_dir: Path,
    limits: Limits,
    *,
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    kernel_identity: bool = False,
) -> SandboxResult:
    privileged = os.geteuid() == 0
    python = grader_python()
    bpf = seccomp_bpf()
    with contextlib.ExitStack() as stack:
        uid = stack.enter_context(sandbox_uid() if privileged else contextlib.nullcontext(os.getuid()))
        # As root, the student's kernel gets a uid of its own (see run_notebook.py); without root there
        # is one uid and the kernel shares it with the orchestrator.
        kernel_uid = stack.enter_context(sandbox_uid()) if privileged and kernel_identity else None
        if privileged:
            chown_tree(job_dir, uid, uid)
        passwd_fd, group_fd, hosts_fd, *seccomp_fd = stack.enter_context(
            _data_fds(*_identity_files(uid, kernel_uid), *([bpf] if bpf is not None else []))
        )
        status_r, status_w = os.pipe()
        stack.callback(os.close, status_r)
        cgroup = open_cgroup(limits)
        if cgroup is not None:
            stack.callback(cgroup.remove)
            stack.callback(cgroup.kill_all)  # callbacks run last-in first-out: kill, then remove
        cmd = bwrap_command(
            resolve_python(argv, str(python)),
            job_dir=job_dir,
            python_dirs=python_dirs(),
            hidden_dirs=secret_dirs(),
            ro_binds=ro_binds,
            env=sandbox_env(
                limits,
                python_bin=str(python.parent),
                extra={**env, **({"DGM_KERNEL_UID": str(kernel_uid)} if kernel_uid is not None else {})},
            ),
            tmpfs_bytes=limits.tmpfs_bytes,
            uid=uid,
            kernel_uid=kernel_uid,
            privileged=privileged,
            passwd_fd=passwd_fd,
            group_fd=group_fd,
            hosts_fd=hosts_fd,
            status_fd=status_w,
            seccomp_fd=seccomp_fd[0] if seccomp_fd else None,
        )
        try:
            outcome = supervise(
                cmd,
                cwd=job_dir,
                env={"PATH": "/usr/bin:/bin"},
                limits=limits,
                cgroup=cgroup,
                rlimits=rlimits_for(limits, memory_fallback=cgroup is None),
                pass_fds=[passwd_fd, group_fd, hosts_fd, *seccomp_fd, status_w],
            )
        finally:
            os.close(status_w)
        ran = _child_exited(_read_all(status_r))
        stats = cgroup.stats() if cgroup is not None else CgroupStats()

    failure = None
    if outcome.start_error:
        failure = outcome.start_error
    elif not ran and not outcome.timed_out and not stats.oom_killed:
        failure = _bwrap_error(outcome.stderr)
    if failure is not None:
        log.error("bwrap failed to start the sandbox: %s", failure)
    return result_from(
        outcome, limits, backend="bwrap", isolated=True, degraded=cgroup is None, stats=stats, start_failure=failure
    )


def _bwrap_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("bwrap:")]
    return lines[-1] if lines else (stderr.strip().splitlines() or ["no output"])[-1]
