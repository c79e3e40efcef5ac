"""Which backend runs here: forced by argument or `DGM_SANDBOX`, else docker, else bwrap, else refuse.

Docker counts only when its engine answers, the image is present and a probe job runs with the real
flags (both identities, a job dir bound from where this process makes them); bwrap only when a probe
sandbox runs. `none` is never chosen automatically. Every answer is cached for the process and logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from grader.errors import SandboxUnavailable
from grader.sandbox.docker import docker_image, run_docker
from grader.sandbox.model import MIB, Limits

log = logging.getLogger(__name__)

BACKENDS = ("docker", "bwrap", "none")
DOCKER_TIMEOUT_S = 5.0


def _docker_problem() -> str | None:
    """Why docker cannot be used, or None when the engine answers and the image exists."""
    if shutil.which("docker") is None:
        return "no docker client"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False,
        )  # fmt: skip
        if info.returncode != 0:
            return f"docker engine not answering: {info.stderr.strip()[:200]}"
        image = docker_image()
        inspect = subprocess.run(
            ["docker", "image", "inspect", image],
            capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False,
        )  # fmt: skip
        if inspect.returncode != 0:
            return f"docker image {image} not found (build it: make docker-images)"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"docker engine not answering: {exc}"
    return _docker_probe()


def _docker_probe() -> str | None:
    """Why a minimal job fails under the docker backend, or None when it reads its job dir and exits 0.

    The job dir comes from TMPDIR as every grading's does: an engine on another host (a compose
    worker's) binds the same path of its own filesystem, so a TMPDIR it cannot see fails here.
    """
    check = "import sys; sys.exit(0 if open('/home/student/inputs/probe').read() == 'ok' else 3)"
    with tempfile.TemporaryDirectory(prefix="dgm-probe-") as tmp:
        job = Path(tmp)
        (job / "inputs").mkdir(mode=0o700)
        (job / "inputs" / "probe").write_text("ok")
        (job / "work").mkdir()
        (job / "work").chmod(0o1777)
        limits = Limits(wall_s=60, memory_bytes=256 * MIB)
        result = run_docker(["python", "-c", check], job, limits, kernel_identity=True)
    if result.reason == "ok":
        return None
    if result.reason == "exit":
        return (
            f"the probe job could not read its job dir {tmp} inside the container: the engine must see "
            f"this process's job dirs at the same path (TMPDIR={os.environ.get('TMPDIR', 'unset')}, writable "
            f"by uid {os.geteuid()}?) {result.stderr.strip()[-200:]}"
        ).rstrip()
    if result.reason == "sandbox_error":
        return f"the probe job did not start: {result.message}"
    return f"the probe job failed: {result.message} {result.stderr.strip()[-200:]}".rstrip()


def _bwrap_problem() -> str | None:
    """Why bwrap cannot be used, or None when a minimal probe sandbox runs."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed (util-linux)"
    probe = ["bwrap", "--unshare-net", "--unshare-pid", "--ro-bind", "/usr", "/usr"]
    if os.geteuid() != 0:
        probe += ["--unshare-user", "--disable-userns"]
    for name in ("lib", "lib64", "bin"):
        if os.path.islink(f"/{name}"):
            probe += ["--symlink", os.readlink(f"/{name}"), f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            probe += ["--ro-bind", f"/{name}", f"/{name}"]
    probe += ["--proc", "/proc", "--dev", "/dev", "/usr/bin/true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"bwrap probe failed: {exc}"
    if done.returncode != 0:
        return f"bwrap probe failed: {done.stderr.strip()[:200]}"
    return None


@cache
def _auto_backend() -> str:
    docker_problem = _docker_problem()
    if docker_problem is None:
        log.info("sandbox backend: docker (%s)", docker_image())
        return "docker"
    bwrap_problem = _bwrap_problem()
    if bwrap_problem is None:
        log.info("sandbox backend: bwrap (docker unusable: %s)", docker_problem)
        return "bwrap"
    raise SandboxUnavailable(f"no sandbox backend: {docker_problem}; {bwrap_problem}")


@cache
def _check_forced(backend: str) -> str:
    problem = {"docker": _docker_problem, "bwrap": _bwrap_problem}.get(backend, lambda: None)()
    if problem is not None:
        raise SandboxUnavailable(f"sandbox backend {backend!r} was requested but {problem}")
    if backend == "none":
        log.warning("sandbox backend 'none' requested: notebooks run WITHOUT isolation")
    else:
        image = f", image {docker_image()}" if backend == "docker" else ""
        log.info("sandbox backend: %s (requested)%s", backend, image)
    return backend


def detect_backend(prefer: str = "auto") -> str:
    """ "docker", "bwrap" or "none"; raises `SandboxUnavailable` when nothing suitable runs.

    An explicit `prefer` wins over the `DGM_SANDBOX` environment variable, which wins over
    auto-detection. A forced backend is still checked, so a typo or a missing tool fails loudly.
    """
    choice = prefer if prefer != "auto" else os.environ.get("DGM_SANDBOX", "auto").strip().lower() or "auto"
    if choice == "auto":
        return _auto_backend()
    if choice not in BACKENDS:
        raise SandboxUnavailable(f"unknown sandbox backend {choice!r}: expected auto, {', '.join(BACKENDS)}")
    return _check_forced(choice)


def clear_cache() -> None:
    """Forget earlier detections (tests, or after installing docker/bwrap in a long-lived process)."""
    _auto_backend.cache_clear()
    _check_forced.cache_clear()
