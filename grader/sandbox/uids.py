"""A distinct unprivileged uid for each concurrent run.

Namespaces already separate concurrent runs, but RLIMIT_NPROC (the fallback pids limit) and the
kernel's per-user accounting count every process of a uid on the host, and a shared uid would let one
job signal or ptrace another's processes if they ever met. So each run borrows a slot: uid
BASE_UID + slot, held with an flock on a lock file for as long as the run lasts. The lock is released
by the kernel if the grader dies, so slots never leak.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from grader.errors import SandboxUnavailable

BASE_UID = 60000
SLOTS = 64


def lock_dir() -> Path:
    """`DGM_SANDBOX_LOCK_DIR`, else /run/dgm-grader/sandbox-slots as root, else a per-user temp dir."""
    override = os.environ.get("DGM_SANDBOX_LOCK_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0 and os.access("/run", os.W_OK):
        return Path("/run/dgm-grader/sandbox-slots")
    return Path(tempfile.gettempdir()) / f"dgm-grader-slots-{os.geteuid()}"


@contextlib.contextmanager
def sandbox_uid(
    *, base: int = BASE_UID, slots: int = SLOTS, directory: Path | None = None, wait_s: float = 600.0
) -> Iterator[int]:
    """Hold a free uid from the pool for the duration of the `with` block."""
    directory = directory or lock_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + wait_s
    order = list(range(slots))
    while True:
        random.shuffle(order)  # spreads concurrent callers so they rarely probe the same lock
        for slot in order:
            fd = os.open(directory / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield base + slot
            finally:
                os.close(fd)  # releases the lock
            return
        if time.monotonic() > deadline:
            raise SandboxUnavailable(f"all {slots} sandbox uid slots in {directory} stayed busy")
        time.sleep(0.1)
