"""`run`: one sandboxed command, whichever backend runs here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from grader.sandbox.bwrap import run_bwrap
from grader.sandbox.detect import detect_backend
from grader.sandbox.docker import run_docker
from grader.sandbox.local import run_none
from grader.sandbox.model import Limits, SandboxResult

_BACKENDS = {"bwrap": run_bwrap, "docker": run_docker, "none": run_none}


def run(
    argv: Sequence[str],
    job_dir: Path,
    limits: Limits,
    *,
    backend: str = "auto",
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    kernel_identity: bool = False,
) -> SandboxResult:
    """Run `argv` in a sandbox with `job_dir` as its writable home and cwd (/home/student).

    With `kernel_identity`, isolating backends running as root give the program a second uid for the
    student's kernel (in `DGM_KERNEL_UID`) and keep for the program only the capabilities to start and
    stop processes as that uid; otherwise the program has no capabilities at all.

    `argv[0] == "python"` means the sandbox's interpreter. `ro_binds` maps paths inside (e.g.
    "/opt/dgm") to host directories bound read-only. The job dir is given to the sandbox user and
    everything in it is untrusted afterwards. What the program did (crash, timeout, OOM) is in the
    result's `reason`; only problems on our side raise (`SandboxUnavailable`, bad arguments).
    """
    job_dir = Path(job_dir).resolve()
    if not job_dir.is_dir():
        raise ValueError(f"job_dir: expected an existing directory, got {job_dir}")
    if not argv:
        raise ValueError("argv: expected a command, got an empty list")
    for target, source in ro_binds.items():
        if not target.startswith("/") or target in ("/", "/home/student"):
            raise ValueError(f"ro_binds: expected an absolute path other than / and the home, got {target!r}")
        if not Path(source).exists():
            raise ValueError(f"ro_binds[{target!r}]: {source} does not exist")
    chosen = detect_backend(backend)
    resolved = {k: Path(v).resolve() for k, v in ro_binds.items()}
    return _BACKENDS[chosen](argv, job_dir, limits, ro_binds=resolved, env=env, kernel_identity=kernel_identity)
