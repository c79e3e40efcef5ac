"""Which backend runs here: forced by argument or `DGM_SANDBOX`, else docker, else bwrap, else refuse.

`none` is never chosen automatically. The automatic answer is cached for the process and logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from functools import cache

from grader.errors import SandboxUnavailable
from grader.sandbox.docker import docker_image

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
            return f"docker image {image} not found (build it from docker/sandbox.Dockerfile)"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"docker engine not answering: {exc}"
    return None


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
