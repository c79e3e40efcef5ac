"""The seccomp filter bwrap installs (`--seccomp FD`): defence in depth, not the isolation itself.

Default allow; EPERM for the calls a notebook never needs and a sandbox escape usually does
(namespaces, mounts, keyrings, bpf, ptrace, kernel modules, io_uring, ...). clone() with any
CLONE_NEW* flag is refused, clone3 answers ENOSYS so glibc falls back to clone (whose flags a
filter can see). Threads, fork, multiprocessing, sockets on loopback, torch DataLoader workers and
ipykernel all keep working. Syscalls from other ABIs (32-bit x86) hit libseccomp's default
bad-arch action, which kills the process.
"""

from __future__ import annotations

import errno
import logging
import tempfile
from functools import cache

log = logging.getLogger(__name__)

DENIED_SYSCALLS = (
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # keyrings, bpf, perf, tracing, other processes' memory
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "ptrace",
    "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    # kernel modules, kexec, reboot, swap, accounting, clocks, quotas
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "quotactl", "quotactl_fd", "syslog", "vhangup", "iopl", "ioperm",
    "lookup_dcookie", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
    # file handles, userfaultfd, io_uring, fanotify
    "open_by_handle_at", "name_to_handle_at", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
)  # fmt: skip

CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
TIOCSTI = 0x5412  # push characters into the controlling terminal's input
TIOCLINUX = 0x541C


@cache
def seccomp_bpf() -> bytes | None:
    """The compiled BPF program, or None (with a warning) when pyseccomp is not importable."""
    try:
        import pyseccomp as sc
    except ImportError:
        log.warning("pyseccomp is not installed: bwrap runs without a seccomp filter")
        return None

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError) as exc:  # unknown on this architecture
            log.debug("seccomp: skipping %s: %s", name, exc)
    for flag in CLONE_NEW_FLAGS:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as tmp:
        f.export_bpf(tmp)
        tmp.seek(0)
        return tmp.read()
