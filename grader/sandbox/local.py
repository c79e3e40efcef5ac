"""The `none` backend: a plain subprocess with the same limits, output caps and timeout, but no
isolation at all (it sees the host's files and network). Only for development, and only when asked
for by name; the result says `isolated=False`.

Paths that mean something inside a sandbox (`/home/student`, the targets of `ro_binds`) are mapped
to their host directories in argv and env, so the same command line works.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from grader.sandbox.cgroups import open_cgroup
from grader.sandbox.model import CgroupStats, Limits, SandboxResult, result_from
from grader.sandbox.prepare import HOME, grader_python, resolve_python, sandbox_env
from grader.sandbox.process import rlimits_for, supervise

log = logging.getLogger(__name__)
_warned = False


def _translate(value: str, mapping: Mapping[str, str]) -> str:
    for inside, host in mapping.items():
        if value == inside or value.startswith(inside + "/"):
            return host + value[len(inside) :]
    return value


def run_none(
    argv: Sequence[str],
    job_dir: Path,
    limits: Limits,
    *,
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    kernel_identity: bool = False,
) -> SandboxResult:
    global _warned
    if not _warned:
        log.warning("backend 'none': sandboxed programs run WITHOUT isolation in this process")
        _warned = True
    # Longest prefix first, so /opt/dgm/x wins over /opt/dgm.
    mapping = {HOME: str(job_dir), **{k: str(v) for k, v in ro_binds.items()}}
    mapping = dict(sorted(mapping.items(), key=lambda kv: -len(kv[0])))
    python = grader_python()
    argv = [_translate(a, mapping) for a in resolve_python(argv, str(python))]
    full_env = sandbox_env(limits, python_bin=str(python.parent), home=str(job_dir))
    full_env.update({k: _translate(v, mapping) for k, v in env.items()})

    cgroup = open_cgroup(limits)
    try:
        outcome = supervise(
            argv,
            cwd=job_dir,
            env=full_env,
            limits=limits,
            cgroup=cgroup,
            rlimits=rlimits_for(limits, memory_fallback=cgroup is None),
        )
        stats = cgroup.stats() if cgroup is not None else CgroupStats()
    finally:
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.remove()
    return result_from(
        outcome,
        limits,
        backend="none",
        isolated=False,
        degraded=cgroup is None,
        stats=stats,
        start_failure=outcome.start_error or None,
    )
