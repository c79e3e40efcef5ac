"""Backend detection: forcing, order of preference, refusal, caching."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.errors import SandboxUnavailable
from grader.sandbox import Limits, SandboxResult, detect, detect_backend


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DGM_SANDBOX", raising=False)
    detect.clear_cache()
    yield
    detect.clear_cache()


def fake_host(monkeypatch: pytest.MonkeyPatch, *, docker: str | None, bwrap: str | None) -> list[str]:
    calls: list[str] = []

    def docker_problem() -> str | None:
        calls.append("docker")
        return docker

    def bwrap_problem() -> str | None:
        calls.append("bwrap")
        return bwrap

    monkeypatch.setattr(detect, "_docker_problem", docker_problem)
    monkeypatch.setattr(detect, "_bwrap_problem", bwrap_problem)
    return calls


def test_auto_prefers_docker_then_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_host(monkeypatch, docker=None, bwrap=None)
    assert detect_backend() == "docker"
    detect.clear_cache()
    fake_host(monkeypatch, docker="docker engine not answering", bwrap=None)
    assert detect_backend() == "bwrap"


def test_auto_refuses_rather_than_running_unsandboxed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_host(monkeypatch, docker="no docker client", bwrap="bwrap is not installed")
    with pytest.raises(SandboxUnavailable, match="no docker client; bwrap is not installed"):
        detect_backend()


def test_auto_detection_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_host(monkeypatch, docker="no docker client", bwrap=None)
    assert [detect_backend() for _ in range(3)] == ["bwrap"] * 3
    assert calls == ["docker", "bwrap"]


def test_environment_forces_a_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_host(monkeypatch, docker=None, bwrap=None)
    monkeypatch.setenv("DGM_SANDBOX", "none")
    assert detect_backend() == "none"
    monkeypatch.setenv("DGM_SANDBOX", "bwrap")
    assert detect_backend() == "bwrap"
    assert calls == ["bwrap"]  # docker was never probed


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_host(monkeypatch, docker=None, bwrap=None)
    monkeypatch.setenv("DGM_SANDBOX", "docker")
    assert detect_backend("bwrap") == "bwrap"


def test_a_forced_backend_that_cannot_run_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_host(monkeypatch, docker="docker engine not answering", bwrap=None)
    monkeypatch.setenv("DGM_SANDBOX", "docker")
    with pytest.raises(SandboxUnavailable, match="'docker' was requested but docker engine not answering"):
        detect_backend()
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend 'firejail'"):
        detect_backend("firejail")


def test_real_docker_probe_answers_quickly_here() -> None:
    # Without an engine (everywhere but `make docker-test`) the probe must say so instead of hanging.
    problem = detect._docker_problem()
    assert problem is None or problem.startswith(("no docker client", "docker engine", "docker image"))


def test_auto_never_picks_an_engine_whose_probe_job_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that answers and has the image still loses to bwrap when the probe job cannot run."""
    answered = subprocess.CompletedProcess[str]([], 0, "20.10.24", "")
    monkeypatch.setattr(detect.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(detect.subprocess, "run", lambda *a, **k: answered)
    monkeypatch.setattr(detect, "_bwrap_problem", lambda: None)

    def failing_probe(argv: list[str], job_dir: Path, limits: Limits, **kw: object) -> SandboxResult:
        assert (job_dir / "inputs" / "probe").read_text() == "ok" and kw["kernel_identity"] is True
        return SandboxResult("sandbox_error", 125, 0.1, None, False, "", "", "docker", True, False,
                             message="sandbox failed to start: invalid mount config")  # fmt: skip

    monkeypatch.setattr(detect, "run_docker", failing_probe)
    assert detect_backend() == "bwrap"
    with pytest.raises(SandboxUnavailable, match="probe job did not start: sandbox failed to start: invalid mount"):
        detect_backend("docker")
