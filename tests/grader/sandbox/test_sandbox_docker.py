"""The docker backend's command line and how its failures read (no engine needed; `make docker-test` runs
test_sandbox_docker_engine.py against a real one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grader.sandbox import Limits, docker_command
from grader.sandbox.docker import start_failure


def test_docker_command_for_given_limits() -> None:
    limits = Limits(
        wall_s=300,
        memory_bytes=2 * 2**30,
        pids=128,
        cpus=1.5,
        cpu_s=250,
        fsize_bytes=100 * 2**20,
        nofile=256,
        tmpfs_bytes=64 * 2**20,
    )
    cmd = docker_command(
        ["python", "/opt/dgm/run_notebook.py", "grading.ipynb"],
        job_dir=Path("/srv/jobs/42"),
        limits=limits,
        name="dgm-sbx-test",
        image="registry.example/dgm-sandbox:3",
        ro_binds={"/opt/dgm": Path("/srv/dgm/runner")},
        env={"DGM_SEED": "1234"},
    )
    assert cmd == [
        "docker", "run",
        "--name", "dgm-sbx-test",
        "--pull", "never",
        "--init",
        "--network", "none",
        "--read-only",
        "--tmpfs", "/tmp:rw,nosuid,nodev,size=67108864,mode=1777",
        "--user", "65534:65534",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--memory", "2147483648",
        "--memory-swap", "2147483648",
        "--cpus", "1.5",
        "--pids-limit", "128",
        "--shm-size", "67108864",
        "--ulimit", "fsize=104857600:104857600",
        "--ulimit", "nofile=256:256",
        "--ulimit", "core=0:0",
        "--ulimit", "cpu=250:251",
        "--log-driver", "none",
        "-v", "/srv/jobs/42:/home/student:rw",
        "-v", "/srv/dgm/runner:/opt/dgm:ro",
        "-w", "/home/student",
        "-e", "HOME=/home/student",
        "-e", "PATH=/opt/venv/bin:/usr/bin:/bin",
        "-e", "LANG=C.UTF-8",
        "-e", "PYTHONDONTWRITEBYTECODE=1",
        "-e", "IPYTHONDIR=/home/student/.ipython",
        "-e", "MPLBACKEND=Agg",
        "-e", "OMP_NUM_THREADS=2",
        "-e", "MKL_NUM_THREADS=2",
        "-e", "DGM_GRADING=1",
        "-e", "DGM_SEED=1234",
        "registry.example/dgm-sandbox:3",
        "/opt/venv/bin/python", "/opt/dgm/run_notebook.py", "grading.ipynb",
    ]  # fmt: skip


def test_docker_command_with_a_kernel_identity_keeps_only_the_orchestrators_capabilities() -> None:
    cmd = docker_command(["python", "run.py"], job_dir=Path("/j"), limits=Limits(), name="n", kernel_uid=65533)
    joined = " ".join(cmd)
    assert "--user 0:0 --cap-drop ALL --cap-add SETUID --cap-add SETGID --cap-add SETPCAP --cap-add KILL" in joined
    assert "--security-opt no-new-privileges" in joined and "-e DGM_KERNEL_UID=65533" in joined
    assert "--tmpfs /home/student/work:rw,nosuid,nodev,size=" in joined
    image = cmd.index("dgm-grader-sandbox:latest")
    assert cmd[image + 1 : image + 4] == ["setpriv", "--reuid=65534", "--regid=65534"]
    assert "--bounding-set=-all,+setuid,+setgid,+setpcap,+kill" in cmd and cmd[-2:] == [
        "/opt/venv/bin/python",
        "run.py",
    ]


def test_docker_command_never_shares_network_or_privileges() -> None:
    cmd = docker_command(["/bin/true"], job_dir=Path("/j"), limits=Limits(), name="n")
    joined = " ".join(cmd)
    assert "--privileged" not in cmd and "--network none" in joined and "host" not in cmd
    assert "--ulimit cpu" not in joined  # no CPU-time limit asked for
    assert cmd[-2:] == ["dgm-grader-sandbox:latest", "/bin/true"]


def test_dockerfile_builds_a_grader_free_image_from_the_wheelhouse_only() -> None:
    dockerfile = (Path(__file__).resolve().parents[3] / "docker" / "sandbox.Dockerfile").read_text()
    assert "USER 65534:65534" in dockerfile
    copied = [line for line in dockerfile.splitlines() if line.startswith(("COPY", "ADD"))]
    assert copied == [
        "COPY docker/wheels/sandbox /wheels",
        "COPY docker/sandbox-requirements.txt /tmp/sandbox-requirements.txt",
        "COPY --from=build /opt/venv /opt/venv",
    ]
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all("--no-index --find-links /wheels" in line for line in installs)
    assert "assert torch.version.cuda is None" in dockerfile


NO_SUCH_IMAGE = (
    "Unable to find image 'x:latest' locally\n"
    "docker: Error response from daemon: No such image: x:latest.\n"
    "See 'docker run --help'.\n"
)


@pytest.mark.parametrize(
    ("returncode", "stderr", "state", "expected"),
    [
        (125, NO_SUCH_IMAGE, None, "Error response from daemon: No such image: x:latest."),
        (127, "", {"Error": 'exec: "setpriv": executable file not found in $PATH'}, 'exec: "setpriv": executable'),
        (126, "", {"Error": "permission denied"}, "permission denied"),
        (127, "sh: nope: not found", {"Error": ""}, None),  # the program's own status 127
        (1, NO_SUCH_IMAGE, None, None),
        (0, "", {"Error": ""}, None),
    ],
)
def test_a_start_failure_is_told_by_the_engine_not_by_the_status(
    returncode: int, stderr: str, state: dict[str, Any] | None, expected: str | None
) -> None:
    failure = start_failure(returncode, stderr, state)
    assert failure == expected if expected is None else failure is not None and failure.startswith(expected)
