"""Backend detection: forcing, order of preference, refusal, caching."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from grader.errors import SandboxUnavailable
from grader.sandbox import detect, detect_backend


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
    # No engine runs on these machines: the probe must say so instead of hanging.
    problem = detect._docker_problem()
    assert problem is None or problem.startswith(("no docker client", "docker engine", "docker image"))
