"""The Docker backend (production): the same limits expressed as `docker run` flags.

No Docker engine runs on the development machines, so `docker_command` is a pure function whose
output the tests check flag by flag; `run_docker` runs it and interprets the result.

The container is not started with `--rm`: `docker run --rm` waits for the removal, after which
`docker inspect` can no longer tell an OOM kill (State.OOMKilled) from any other SIGKILL. It is
removed explicitly with `docker rm -f` once inspected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from grader.sandbox.model import CgroupStats, Limits, SandboxResult, result_from
from grader.sandbox.prepare import (
    HOME,
    ORCHESTRATOR_CAPS,
    chown_tree,
    drop_privileges,
    resolve_python,
    sandbox_env,
)
from grader.sandbox.process import supervise

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "dgm-grader-sandbox:latest"
IMAGE_PYTHON = "/opt/venv/bin/python"
IMAGE_UID = 65534
KERNEL_UID = 65533  # the student's kernel, when the orchestrator runs as IMAGE_UID
DOCKER_RUN_FAILED = 125  # the docker client's own "could not create/start the container"


def docker_image() -> str:
    return os.environ.get("DGM_SANDBOX_IMAGE", DEFAULT_IMAGE)


def docker_command(
    argv: Sequence[str],
    *,
    job_dir: Path,
    limits: Limits,
    name: str,
    image: str = DEFAULT_IMAGE,
    uid: int = IMAGE_UID,
    kernel_uid: int | None = None,
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
) -> list[str]:
    """The `docker run` argv for one job (pure: the same inputs give the same list).

    With `kernel_uid`, the container starts as root with only the orchestrator's capabilities, and
    `setpriv` runs `argv` as `uid` keeping them (as the bwrap backend does).
    """
    argv = resolve_python(argv, IMAGE_PYTHON)
    identity = {"DGM_KERNEL_UID": str(kernel_uid)} if kernel_uid is not None else {}
    full_env = sandbox_env(limits, python_bin=str(Path(IMAGE_PYTHON).parent), extra={**env, **identity})
    if kernel_uid is not None:
        argv = [*drop_privileges(uid, keep=ORCHESTRATOR_CAPS), *argv]
        caps = [a for cap in ORCHESTRATOR_CAPS.split(",") for a in ("--cap-add", cap[1:].upper())]
        user = ["--user", "0:0", "--cap-drop", "ALL", *caps]
        work = ["--tmpfs", f"{HOME}/work:rw,nosuid,nodev,size={limits.tmpfs_bytes},mode=1777"]
    else:
        user, work = ["--user", f"{uid}:{uid}", "--cap-drop", "ALL"], []
    cmd = [
        "docker", "run",
        "--name", name,
        "--init",  # tini as PID 1 reaps the zombies a notebook leaves
        "--network", "none",
        "--read-only",
        "--tmpfs", f"/tmp:rw,nosuid,nodev,size={limits.tmpfs_bytes},mode=1777",
        *user,
        "--security-opt", "no-new-privileges",
        "--memory", str(limits.memory_bytes),
        "--memory-swap", str(limits.memory_bytes),  # equal to --memory: no swap
        "--cpus", f"{limits.cpus:g}",
        "--pids-limit", str(limits.pids),
        "--shm-size", str(limits.tmpfs_bytes),
        "--ulimit", f"fsize={limits.fsize_bytes}:{limits.fsize_bytes}",
        "--ulimit", f"nofile={limits.nofile}:{limits.nofile}",
        "--ulimit", "core=0:0",
    ]  # fmt: skip
    if limits.cpu_s is not None:
        soft = max(1, round(limits.cpu_s))
        cmd += ["--ulimit", f"cpu={soft}:{soft + 1}"]
    # Output reaches us through the attached client; a logging driver would also store it on the
    # daemon's disk (gigabytes for a runaway print loop).
    cmd += ["--log-driver", "none"]
    cmd += ["-v", f"{job_dir}:{HOME}:rw", *work]
    for target, source in sorted(ro_binds.items()):
        cmd += ["-v", f"{source}:{target}:ro"]
    cmd += ["-w", HOME]
    for key, value in full_env.items():
        cmd += ["-e", f"{key}={value}"]
    return [*cmd, image, *argv]


def _docker(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def run_docker(
    argv: Sequence[str],
    job_dir: Path,
    limits: Limits,
    *,
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    kernel_identity: bool = False,
) -> SandboxResult:
    name = f"dgm-sbx-{secrets.token_hex(6)}"
    if os.geteuid() == 0:
        chown_tree(job_dir, IMAGE_UID, IMAGE_UID)
    cmd = docker_command(
        argv,
        job_dir=job_dir,
        limits=limits,
        name=name,
        image=docker_image(),
        kernel_uid=KERNEL_UID if kernel_identity else None,
        ro_binds=ro_binds,
        env=env,
    )

    def kill() -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _docker("kill", name, timeout=15)

    try:
        outcome = supervise(
            cmd,
            cwd=job_dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            limits=limits,
            cgroup=None,
            rlimits=[],
            on_timeout=kill,
        )
        oom = False
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            inspect = _docker("inspect", "--format", "{{.State.OOMKilled}}", name)
            oom = inspect.stdout.strip() == "true"
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _docker("rm", "-f", name, timeout=60)

    failure = None
    if outcome.start_error:
        failure = outcome.start_error
    elif outcome.returncode == DOCKER_RUN_FAILED and not oom and not outcome.timed_out:
        failure = (outcome.stderr.strip().splitlines() or ["no output"])[-1]
    if failure is not None:
        log.error("docker failed to start the sandbox: %s", failure)
    # Peak memory and the pids counter are gone with the container; docker cannot report them.
    return result_from(
        outcome,
        limits,
        backend="docker",
        isolated=True,
        degraded=False,
        stats=CgroupStats(oom_killed=oom),
        start_failure=failure,
    )
