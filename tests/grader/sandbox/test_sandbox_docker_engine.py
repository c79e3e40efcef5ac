"""Real runs through a Docker engine: isolation, limits and the verdicts the host draws.

These need an engine and the sandbox image, which `make docker-test` provides (a private dockerd whose
socket it exports as DOCKER_HOST); without DOCKER_HOST they are skipped. Each payload is a Python
one-liner, so a test costs a container start (~0.5 s) plus what it provokes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from grader.sandbox import Limits, SandboxResult, detect, run
from grader.sandbox.docker import IMAGE_UID, KERNEL_UID
from tests.grader.sandbox.identities import ORCHESTRATOR

pytestmark = [
    pytest.mark.skipif("DOCKER_HOST" not in os.environ, reason="needs a Docker engine: make docker-test"),
    pytest.mark.xdist_group("docker"),
]

MIB = 2**20
CAPS_OF_THE_ORCHESTRATOR = "00000000000001e0"  # kill (5), setgid (6), setuid (7), setpcap (8)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    return d


def py(job: Path, code: str, *, kernel_identity: bool = False, **limits: float) -> SandboxResult:
    argv = ["python", "-c", textwrap.dedent(code)]
    return run(argv, job, Limits(**limits), backend="docker", kernel_identity=kernel_identity)  # type: ignore[arg-type]


def py_json(job: Path, code: str, **limits: float) -> dict:
    """Run `code`, which must print one JSON object as its last line, and return that object."""
    result = py(job, code, **limits)
    assert result.reason == "ok", (result.message, result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_engine_and_image_pass_the_probe() -> None:
    detect.clear_cache()
    assert detect._docker_problem() is None
    assert detect.detect_backend("docker") == "docker"


def test_network_is_unreachable(job: Path) -> None:
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        port = server.getsockname()[1]
        out = py_json(
            job,
            f"""
            import json, os, socket
            out = {{"interfaces": sorted(os.listdir("/sys/class/net"))}}
            for name, address in {{"loopback": "127.0.0.1", "gateway": "172.17.0.1", "ip": "151.101.0.223"}}.items():
                try:
                    socket.create_connection((address, {port} if name != "ip" else 443), timeout=3)
                    out[name] = "connected"
                except OSError as e:
                    out[name] = type(e).__name__
            try:
                socket.getaddrinfo("pypi.org", 443)
                out["dns"] = "resolved"
            except OSError as e:
                out["dns"] = type(e).__name__
            print(json.dumps(out))
            """,
        )
    assert out["interfaces"] == ["lo"]
    assert out["loopback"] == "ConnectionRefusedError"  # the container's own loopback, not the host's
    assert out["gateway"] != "connected" and out["ip"] != "connected"
    assert out["dns"] == "gaierror"


def test_root_is_read_only_and_the_job_dir_is_writable(job: Path) -> None:
    out = py_json(
        job,
        """
        import json
        out = {}
        for path in ("/usr/evil", "/etc/evil", "/opt/venv/evil", "/home/student/mine", "/tmp/mine"):
            try:
                open(path, "w").write("x")
                out[path] = "written"
            except OSError as e:
                out[path] = type(e).__name__
        print(json.dumps(out))
        """,
    )
    assert out["/usr/evil"] == out["/etc/evil"] == out["/opt/venv/evil"] in ("OSError", "PermissionError")
    assert out["/home/student/mine"] == out["/tmp/mine"] == "written"
    assert (job / "mine").read_text() == "x"


def test_runs_as_an_unprivileged_uid_without_capabilities(job: Path) -> None:
    out = py_json(
        job,
        """
        import json, os
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        out = {k: status[k].strip() for k in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp")}
        out["uid"], out["gid"] = os.getuid(), os.getgid()
        out["pids"] = [p for p in os.listdir("/proc") if p.isdigit()]
        print(json.dumps(out))
        """,
    )
    assert out["uid"] == out["gid"] == (IMAGE_UID if os.geteuid() == 0 else os.geteuid())
    assert out["CapEff"] == out["CapBnd"] == out["CapPrm"] == "0000000000000000"
    assert out["NoNewPrivs"] == "1" and out["Seccomp"] == "2"  # docker's default seccomp profile
    assert len(out["pids"]) <= 3  # docker-init and us


def _check_identities(out: dict, orchestrator_uid: int) -> None:
    assert out["me"] == orchestrator_uid and out["caps"] == CAPS_OF_THE_ORCHESTRATOR
    kernel = out["kernel"]
    assert kernel["uid"] == KERNEL_UID and kernel["caps"] == "0" * 32
    assert kernel["signal"] == kernel["write_out"] == kernel["list_out"] == "denied"
    assert kernel["write_work"] == "allowed"


@pytest.mark.skipif(os.geteuid() != 0, reason="the test switches to the worker's uid")
def test_kernel_identity_as_root_and_as_the_compose_workers_uid(job: Path) -> None:
    """As root the job dir is given to IMAGE_UID; a worker running as uid 10001 cannot chown, so its own
    uid is the orchestrator's (the compose worker scored 2/13 when the sandbox could not read its job)."""
    for d, mode in (("out", 0o700), ("work", 0o1777)):
        (job / d).mkdir()
        (job / d).chmod(mode)
    result = py(job, ORCHESTRATOR, kernel_identity=True)
    assert result.reason == "ok", (result.message, result.stderr)
    _check_identities(json.loads(result.stdout.strip().splitlines()[-1]), IMAGE_UID)
    assert not (job / "work" / "mine").exists()  # the work dir is a tmpfs inside the container

    worker = Path(tempfile.mkdtemp(prefix="dgm-worker-"))  # pytest's tmp_path is root's 0700
    shutil.chown(worker, 10001, 10001)
    try:
        result_10001 = _run_as_the_worker(worker)
    finally:
        shutil.rmtree(worker)
    assert result_10001["reason"] == "ok", result_10001
    _check_identities(json.loads(result_10001["stdout"].strip().splitlines()[-1]), 10001)


def _run_as_the_worker(worker: Path) -> dict:
    script = textwrap.dedent(
        f"""
        import json, sys, tempfile
        from pathlib import Path
        from grader.sandbox import Limits, run
        job = Path(tempfile.mkdtemp(dir={str(worker)!r}))
        job.chmod(0o711)  # as grader.execute lays it out
        for d, mode in (("inputs", 0o700), ("out", 0o700), ("work", 0o1777)):
            (job / d).mkdir()
            (job / d).chmod(mode)
        (job / "inputs" / "config.json").write_text("{{}}")
        code = "open('/home/student/inputs/config.json').read()\\n" + {ORCHESTRATOR!r}
        r = run(["python", "-c", code], job, Limits(), backend="docker", kernel_identity=True)
        print(json.dumps({{"reason": r.reason, "message": r.message, "stderr": r.stderr[-2000:], "stdout": r.stdout}}))
        """
    )
    socket_gid = os.stat(os.environ["DOCKER_HOST"].removeprefix("unix://")).st_gid
    done = subprocess.run(
        ["setpriv", "--reuid=10001", "--regid=10001", f"--groups={socket_gid}", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(worker)},
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memory_bomb_is_reported_as_oom(job: Path) -> None:
    result = py(job, "x = [bytearray(32 << 20) for _ in range(64)]", memory_bytes=128 * MIB, wall_s=60)
    assert result.reason == "oom", (result.message, result.stderr)
    assert result.message == "out of memory (limit 128 MiB)"


def test_fork_bomb_hits_the_pids_limit(job: Path) -> None:
    code = """
        import os, sys
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    os.pause()
                children += 1
        except OSError as e:
            print(children, type(e).__name__)
            sys.exit(3)
        """
    result = py(job, code, pids=24, wall_s=30)
    assert result.reason == "exit" and result.exit_code == 3, (result.message, result.stderr)
    children, error = result.stdout.split()
    assert int(children) < 24 and error == "BlockingIOError"


def test_infinite_loop_is_killed_at_the_wall_clock_limit(job: Path) -> None:
    result = py(job, "while True: pass", wall_s=3.0)
    assert result.reason == "timeout"
    assert result.exit_code is None
    assert 3.0 <= result.duration_s < 3.0 + 5.0
    assert result.message == "killed after 3 s wall-clock limit"


def test_cpu_rlimit_is_reported_as_cpu_limit(job: Path) -> None:
    result = py(job, "while True: pass", cpu_s=1, wall_s=30)
    assert result.reason == "cpu_limit", (result.message, result.stderr)
    assert result.signal_name == "SIGXCPU"


def test_the_cpu_quota_throttles(job: Path) -> None:
    code = """
        import json, time
        start, wall = time.process_time(), time.monotonic()
        while time.process_time() - start < 0.5:
            pass
        print(json.dumps({"wall": time.monotonic() - wall}))
        """
    out = py_json(job, code, cpus=0.25, wall_s=60)
    assert out["wall"] >= 1.5  # 0.5 s of CPU at a quarter of a core takes about 2 s


def test_exit_status_of_the_program_is_not_a_start_failure(job: Path) -> None:
    result = py(job, "import sys; sys.exit(127)")
    assert (result.reason, result.exit_code) == ("exit", 127)


def test_a_missing_image_is_a_sandbox_error_with_the_engines_message(
    job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DGM_SANDBOX_IMAGE", "dgm-grader-no-such-image:latest")
    result = py(job, "print('never')")
    assert result.reason == "sandbox_error"
    assert "No such image: dgm-grader-no-such-image:latest" in result.message, result.message
    assert "--help" not in result.message
