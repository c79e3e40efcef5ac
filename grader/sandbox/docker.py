"""The Docker backend (production): the same limits expressed as `docker run` flags.

`docker_command` is a pure function whose output the tests check flag by flag; `run_docker` runs it
and interprets the result (`make docker-test` runs it on a real engine).

Identities: the container starts as root with only the orchestrator's capabilities (no
CAP_DAC_OVERRIDE, so it cannot read what it does not own) and `setpriv` switches to the orchestrator's
uid. A grader running as root gives the job dir to IMAGE_UID; a grader running as its own user (the
compose worker, uid 10001) cannot chown, so the orchestrator runs as that user's uid, which owns the
job dir already. The student's kernel gets KERNEL_UID either way.

The container is not started with `--rm`: `docker run --rm` waits for the removal, after which
`docker inspect` can no longer tell an OOM kill (State.OOMKilled) from any other SIGKILL. It is
removed explicitly with `docker rm -f` once inspected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
KERNEL_UID = 65533  # the student's kernel (each container has its own pid namespace)
# The docker client's own statuses: could not create the container (125), could not run its command
# (126) or found no such command (127). A program inside may exit with these too, so they mean a start
# failure only when the engine recorded an error (State.Error) or never created the container.
DOCKER_START_STATUSES = (125, 126, 127)


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
        "--pull", "never",  # a missing image is our error, never a download from some registry
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


def _client_env() -> dict[str, str]:
    """The docker client's environment: PATH and its own settings (DOCKER_HOST, DOCKER_CONFIG, ...)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **{k: v for k, v in os.environ.items() if k.startswith("DOCKER_")},
    }


def _identities(job_dir: Path, kernel_identity: bool) -> tuple[int, int | None]:
    """(orchestrator uid, kernel uid or None) inside the container; as root, gives `job_dir` away."""
    if os.geteuid() == 0:
        chown_tree(job_dir, IMAGE_UID, IMAGE_UID)
        uid = IMAGE_UID
    else:
        uid = os.geteuid()
    if not kernel_identity:
        return uid, None
    return uid, KERNEL_UID if uid != KERNEL_UID else KERNEL_UID - 1


def _state(name: str) -> dict[str, Any] | None:
    """The container's `.State` (OOMKilled, ExitCode, Error, ...), or None when it was never created."""
    with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError):
        done = _docker("inspect", "--format", "{{json .State}}", name)
        if done.returncode == 0:
            state = json.loads(done.stdout)
            return state if isinstance(state, dict) else None
    return None


def start_failure(returncode: int | None, stderr: str, state: dict[str, Any] | None) -> str | None:
    """Why the engine never ran the program (its own message, not the client's usage hint), or None."""
    if returncode not in DOCKER_START_STATUSES or (state is not None and not state.get("Error")):
        return None
    if state is not None:
        return str(state["Error"])
    lines = stderr.strip().splitlines()
    own = [line.removeprefix("docker: ") for line in lines if line.startswith("docker: ")]
    return (own or lines or ["no output"])[0]


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
    uid, kernel_uid = _identities(job_dir, kernel_identity)
    cmd = docker_command(
        argv,
        job_dir=job_dir,
        limits=limits,
        name=name,
        image=docker_image(),
        uid=uid,
        kernel_uid=kernel_uid,
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
            env=_client_env(),
            limits=limits,
            cgroup=None,
            rlimits=[],
            on_timeout=kill,
        )
        state = _state(name)
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _docker("rm", "-f", name, timeout=60)

    oom = state is not None and state.get("OOMKilled") is True
    failure = None
    if outcome.start_error:
        failure = outcome.start_error
    elif not oom and not outcome.timed_out:
        failure = start_failure(outcome.returncode, outcome.stderr, state)
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
