"""Real runs through bubblewrap: isolation, limits and the verdicts the host draws.

Each payload is a Python one-liner, so a test costs a sandbox start (~0.2 s) plus what it provokes.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy
import pytest

import grader
from grader.errors import SandboxUnavailable
from grader.sandbox import Limits, SandboxResult, detect_backend, run
from grader.sandbox import bwrap as bwrap_module
from grader.sandbox.cgroups import host_layout
from grader.sandbox.uids import BASE_UID
from tests.grader.sandbox.identities import ORCHESTRATOR

try:
    detect_backend("bwrap")
    BWRAP_PROBLEM = ""
except SandboxUnavailable as exc:
    BWRAP_PROBLEM = str(exc)

pytestmark = pytest.mark.skipif(bool(BWRAP_PROBLEM), reason=BWRAP_PROBLEM)

REPO = Path(grader.__file__).resolve().parents[1]
MIB = 2**20


@pytest.fixture
def job(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    return d


def py(job: Path, code: str, backend: str = "bwrap", **limits: float) -> SandboxResult:
    return run(["python", "-c", textwrap.dedent(code)], job, Limits(**limits), backend=backend)  # type: ignore[arg-type]


def py_json(job: Path, code: str, **limits: float) -> dict:
    """Run `code`, which must print one JSON object as its last line, and return that object."""
    result = py(job, code, **limits)
    assert result.reason == "ok", (result.message, result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline:
                found.append(int(entry))
    return found


def test_network_is_unreachable(job: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        out = py_json(
            job,
            f"""
            import json, socket
            out = {{}}
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=3)
                out["tcp"] = "connected"
            except OSError as e:
                out["tcp"] = type(e).__name__
            try:
                socket.getaddrinfo("pypi.org", 443)
                out["dns"] = "resolved"
            except OSError as e:
                out["dns"] = type(e).__name__
            try:
                socket.create_connection(("151.101.0.223", 443), timeout=3)
                out["ip"] = "connected"
            except OSError as e:
                out["ip"] = type(e).__name__
            print(json.dumps(out))
            """,
        )
    assert out["tcp"] == "ConnectionRefusedError"  # the sandbox's own loopback, not the host's
    assert out["dns"] == "gaierror"
    assert out["ip"] != "connected"


def test_only_the_allow_list_is_visible_and_only_the_job_dir_is_writable(job: Path, tmp_path: Path) -> None:
    host_secret = tmp_path / "hidden_tests.py"
    host_secret.write_text("SECRET = 1\n")
    host_root = {e for e in os.listdir("/root")} - {".pyenv"}
    (job / "input.txt").write_text("from the host")
    scratch = f"dgm-scratch-{secrets.token_hex(4)}"
    probe_paths = [str(host_secret), str(REPO / "pyproject.toml"), str(REPO / "grader"), "/etc/shadow"]
    out = py_json(
        job,
        f"""
        import json, os
        out = {{"visible": [p for p in {probe_paths!r} if os.path.exists(p)]}}
        out["root"] = sorted(os.listdir("/root"))
        out["tmp"] = os.listdir("/tmp")
        try:
            import grader
            out["grader"] = "importable"
        except ImportError:
            out["grader"] = "hidden"
        denied = []
        for target in ["/usr/pwn", "/etc/pwn", "/pwn", "/home/pwn", "{REPO}/pwn", "/root/pwn"]:
            try:
                open(target, "w").write("x")
            except OSError:
                denied.append(target)
        out["denied"] = denied
        out["input"] = open("input.txt").read()
        open("/home/student/output.txt", "w").write("from the sandbox")
        open("/tmp/{scratch}", "w").write("ok")
        out["cwd"] = os.getcwd()
        print(json.dumps(out))
        """,
    )
    assert out["visible"] == []
    assert not set(out["root"]) & host_root
    # only the parents of the bound interpreter appear there, when it lives under /tmp (a CI checkout)
    bound = {Path(p).relative_to("/tmp").parts[0] for p in (sys.prefix, sys.base_prefix) if p.startswith("/tmp/")}
    assert set(out["tmp"]) == bound
    assert out["grader"] == "hidden"
    assert len(out["denied"]) == 6
    assert out["input"] == "from the host"
    assert out["cwd"] == "/home/student"
    assert (job / "output.txt").read_text() == "from the sandbox"
    assert not (Path("/tmp") / scratch).exists()  # the sandbox's /tmp is its own tmpfs


def test_installed_secret_packages_are_covered(job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The venv here has the grader installed editable (nothing to hide), so hide a real package.
    numpy_dir = Path(numpy.__file__).parent
    monkeypatch.setattr(bwrap_module, "secret_dirs", lambda: [numpy_dir])
    out = py_json(
        job,
        f"""
        import json, os
        try:
            import numpy  # at most an empty namespace package: the directory entry itself stays
            state = "usable" if hasattr(numpy, "ndarray") else "empty"
        except ImportError:
            state = "missing"
        print(json.dumps({{"numpy": state, "listing": os.listdir("{numpy_dir}")}}))
        """,
    )
    assert out["numpy"] in ("empty", "missing")
    assert out["listing"] == []


def test_runs_as_an_unprivileged_uid_without_capabilities(job: Path) -> None:
    out = py_json(
        job,
        """
        import json, os
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        out = {k: status[k].strip() for k in ("CapEff", "CapBnd", "CapAmb", "CapPrm", "NoNewPrivs", "Seccomp")}
        out["uid"], out["euid"], out["gid"] = os.getuid(), os.geteuid(), os.getgid()
        out["pids"] = [p for p in os.listdir("/proc") if p.isdigit()]
        try:
            os.kill(1, 9)
            out["kill1"] = "sent"
        except PermissionError:
            out["kill1"] = "denied"
        print(json.dumps(out))
        """,
    )
    assert out["uid"] == out["euid"] == out["gid"]
    assert BASE_UID <= out["uid"] < BASE_UID + 1000
    assert out["CapEff"] == out["CapBnd"] == out["CapAmb"] == out["CapPrm"] == "0000000000000000"
    assert out["NoNewPrivs"] == "1"
    assert out["Seccomp"] == "2"
    assert len(out["pids"]) <= 3  # bwrap's init and us: the host's processes are invisible
    assert out["kill1"] == "denied"


@pytest.mark.skipif(os.geteuid() != 0, reason="two identities need root")
def test_kernel_identity_cannot_touch_the_orchestrator_or_its_files(job: Path) -> None:
    """The orchestrator keeps only setuid/setgid/setpcap/kill; the kernel's uid has nothing and can
    neither signal the orchestrator nor read or write its files."""
    (job / "out").mkdir(mode=0o700)
    (job / "work").mkdir(mode=0o1777)
    result = run(["python", "-c", ORCHESTRATOR], job, Limits(), backend="bwrap", kernel_identity=True)
    assert result.reason == "ok", (result.message, result.stderr)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["caps"] == "00000000000001e0"  # kill (5), setgid (6), setuid (7), setpcap (8)
    kernel = out["kernel"]
    assert kernel["uid"] != out["me"] and BASE_UID <= kernel["uid"] < BASE_UID + 1000
    assert kernel["caps"] == "0" * 32
    assert kernel["signal"] == kernel["write_out"] == kernel["list_out"] == "denied"
    assert kernel["write_work"] == "allowed"
    assert not (job / "work" / "mine").exists()  # the work dir is a tmpfs inside the sandbox


def test_seccomp_refuses_new_user_namespaces_but_fork_works(job: Path) -> None:
    out = py_json(
        job,
        """
        import ctypes, errno, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.unshare(0x10000000)  # CLONE_NEWUSER
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        err = errno.errorcode[ctypes.get_errno()]
        print(json.dumps({"rc": rc, "errno": err, "child": os.waitstatus_to_exitcode(status)}))
        """,
    )
    assert (out["rc"], out["errno"]) == (-1, "EPERM")
    assert out["child"] == 7


def test_descriptors_of_the_grader_do_not_leak_in(job: Path, tmp_path: Path) -> None:
    secret = tmp_path / "grades.db"
    secret.write_text("all the grades")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        out = py_json(
            job,
            f"""
            import json, os
            try:
                data = os.read({fd}, 100).decode()
            except OSError as e:
                data = type(e).__name__
            print(json.dumps({{"data": data, "fds": sorted(os.listdir("/proc/self/fd"))}}))
            """,
        )
    finally:
        os.close(fd)
    assert out["data"] == "OSError"
    assert str(fd) not in out["fds"] or fd <= 3


def test_memory_bomb_is_reported_as_oom(job: Path) -> None:
    result = py(job, "x = [bytearray(32 << 20) for _ in range(64)]", memory_bytes=128 * MIB, wall_s=30)
    assert result.reason == "oom", (result.message, result.stderr)
    assert result.message == "out of memory (limit 128 MiB)"
    assert result.peak_memory_bytes is not None and 96 * MIB < result.peak_memory_bytes <= 128 * MIB


def test_fork_bomb_is_contained(job: Path) -> None:
    token = f"forkbomb-{secrets.token_hex(4)}"
    code = f"""
        import os
        '{token}'
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """
    result = py(job, code, pids=24, wall_s=1.5, cpus=0.5)
    assert result.reason in ("timeout", "exit")
    assert result.pids_limit_hit
    assert result.duration_s < 1.5 + 2.0
    assert processes_with(token) == []


def test_infinite_loop_is_killed_at_the_wall_clock_limit(job: Path) -> None:
    result = py(job, "while True: pass", wall_s=1.0)
    assert result.reason == "timeout"
    assert result.exit_code is None
    assert 1.0 <= result.duration_s < 1.0 + 1.0
    assert result.message == "killed after 1 s wall-clock limit"


def test_cpu_rlimit_is_reported_as_cpu_limit(job: Path) -> None:
    result = py(job, "while True: pass", cpu_s=1, wall_s=20)
    assert result.reason == "cpu_limit"
    assert result.signal_name == "SIGXCPU"
    assert result.message == "killed after 1 s CPU-time limit"


def test_output_flood_is_capped_and_host_memory_stays_bounded(job: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    code = """
        import sys
        block = b"x" * (1 << 20)
        for _ in range(200):
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.write(b"THE END")
        """
    result = py(job, code, output_bytes=256 * 1024, wall_s=60)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert result.reason == "ok"
    assert result.stdout.endswith("THE END")
    assert result.stdout.startswith("[... ")
    assert len(result.stdout) < 256 * 1024 + 100
    assert grown < 64 * MIB


def test_file_size_limit_makes_the_write_fail(job: Path) -> None:
    result = py(job, "open('big.bin', 'wb').write(b'x' * (4 << 20))", fsize_bytes=1 * MIB)
    assert result.reason == "exit"
    assert result.exit_code == 1
    assert "File too large" in result.stderr
    assert (job / "big.bin").stat().st_size <= 1 * MIB


@pytest.mark.parametrize(
    ("backend", "wall_s", "linger"), [("bwrap", 5.0, False), ("bwrap", 1.0, True), ("none", 5.0, False)]
)
def test_a_process_left_behind_with_setsid_is_killed(job: Path, backend: str, wall_s: float, linger: bool) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    code = f"""
        import subprocess, time
        subprocess.Popen(["sleep", "{token}"], start_new_session=True)
        print("started", flush=True)
        if {linger}:
            time.sleep(100)
        """
    result = py(job, code, backend=backend, wall_s=wall_s)
    assert result.stdout.startswith("started")
    assert result.reason == ("timeout" if linger else "ok")
    assert processes_with(token) == []


def test_result_fields_of_a_normal_run(job: Path) -> None:
    result = py(job, "import sys; print('to stdout'); print('to stderr', file=sys.stderr)", memory_bytes=512 * MIB)
    assert result.reason == "ok" and result.exit_code == 0 and result.signal_name is None
    assert (result.stdout, result.stderr) == ("to stdout\n", "to stderr\n")
    assert 0 < result.duration_s < 10
    assert (result.backend, result.isolated, result.pids_limit_hit) == ("bwrap", True, False)
    assert result.degraded == (host_layout() is None)
    if not result.degraded:
        assert result.peak_memory_bytes is not None and MIB < result.peak_memory_bytes < 512 * MIB


def test_exit_status_and_signal_are_told_apart(job: Path) -> None:
    exited = py(job, "raise SystemExit(3)")
    assert (exited.reason, exited.exit_code, exited.message) == ("exit", 3, "exited with status 3")
    crashed = py(job, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert (crashed.reason, crashed.signal_name) == ("signal", "SIGSEGV")


def test_environment_and_read_only_binds(job: Path, tmp_path: Path) -> None:
    opt = tmp_path / "opt_dgm"
    opt.mkdir()
    (opt / "harness.py").write_text("VALUE = 42\n")
    code = """
        import json, os, sys
        sys.path.insert(0, "/opt/dgm")
        import harness
        try:
            open("/opt/dgm/pwn", "w")
            writable = True
        except OSError:
            writable = False
        print(json.dumps({"env": dict(os.environ), "value": harness.VALUE, "writable": writable}))
        """
    result = run(
        ["python", "-c", textwrap.dedent(code)],
        job,
        Limits(cpus=2.0),
        backend="bwrap",
        ro_binds={"/opt/dgm": opt},
        env={"DGM_SEED": "7"},
    )
    out = json.loads(result.stdout)
    env = out["env"]
    assert env["HOME"] == "/home/student" and env["DGM_GRADING"] == "1" and env["DGM_SEED"] == "7"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["PATH"].endswith(":/usr/bin:/bin")
    expected = {"HOME", "PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "IPYTHONDIR", "MPLBACKEND"}
    expected |= {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "DGM_GRADING", "DGM_SEED"}
    assert set(env) - {"PWD", "LC_CTYPE"} == expected  # nothing of the grader's environment
    assert (out["value"], out["writable"]) == (42, False)
    assert not (opt / "pwn").exists()


def test_a_sandbox_that_cannot_start_is_a_sandbox_error(job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bwrap_module, "python_dirs", lambda: [Path("/nonexistent/interpreter")])
    result = py(job, "print('never')")
    assert result.reason == "sandbox_error"
    assert result.message.startswith("sandbox failed to start: bwrap:")


def test_none_backend_runs_unisolated_with_paths_mapped(job: Path, tmp_path: Path) -> None:
    (job / "script.py").write_text("import os; print(open('data.txt').read(), os.environ['HOME'] == os.getcwd())")
    (job / "data.txt").write_text("hello")
    result = run(["python", "/home/student/script.py"], job, Limits(), backend="none")
    assert (result.reason, result.isolated, result.backend) == ("ok", False, "none")
    assert result.stdout == "hello True\n"
    assert result.message == "exited normally (not sandboxed)"


def test_killing_the_grader_takes_the_sandbox_down(job: Path) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from grader.sandbox import Limits, run
        run(["python", "-c", "import subprocess; subprocess.run(['sleep', '{token}'])"],
            Path("{job}"), Limits(wall_s=60), backend="bwrap")
        """
    )
    grader_proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while not processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token), "the sandboxed sleep never started"
    grader_proc.kill()
    grader_proc.wait()
    deadline = time.monotonic() + 3
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == []


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root to switch user")
def test_unprivileged_variant_isolates_too() -> None:
    """What a non-root grader would run: bwrap's own user namespace, no setpriv uid switch."""
    job = Path(tempfile.mkdtemp(prefix="dgm-sbx-userns-"))  # pytest's tmp dirs are root-only
    os.chown(job, 65534, 65534)
    code = (
        "import os, json; s = open('/proc/self/status').read(); "
        "print(json.dumps([os.getuid(), os.listdir('/'), 'NoNewPrivs:\\t1' in s, 'CapEff:\\t' + '0' * 16 in s]))"
    )
    try:
        with bwrap_module._data_fds(*bwrap_module._identity_files(65534)) as fds:
            r, w = os.pipe()
            cmd = bwrap_module.bwrap_command(
                ["/usr/bin/python3", "-c", code],
                job_dir=job,
                python_dirs=[],
                env={"HOME": "/home/student"},
                tmpfs_bytes=2**24,
                uid=65534,
                privileged=False,
                passwd_fd=fds[0],
                group_fd=fds[1],
                hosts_fd=fds[2],
                status_fd=w,
                seccomp_fd=None,
            )
            drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            done = subprocess.run(drop + cmd, pass_fds=[*fds, w], capture_output=True, text=True, timeout=30)
            os.close(w)
            os.close(r)
    finally:
        shutil.rmtree(job)
    assert done.returncode == 0, done.stderr
    uid, root, nnp, no_caps = json.loads(done.stdout)
    assert uid == 65534 and nnp and no_caps
    assert "work" not in root and "root" not in root


def test_bad_arguments_are_our_error_not_a_result(job: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="job_dir"):
        run(["true"], tmp_path / "missing", Limits(), backend="bwrap")
    with pytest.raises(ValueError, match="ro_binds"):
        run(["true"], job, Limits(), backend="bwrap", ro_binds={"/home/student": tmp_path})
    with pytest.raises(ValueError, match="ro_binds"):
        run(["true"], job, Limits(), backend="bwrap", ro_binds={"/opt/x": tmp_path / "missing"})


def test_without_cgroups_rlimits_still_bound_memory_and_processes(job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bwrap_module, "open_cgroup", lambda limits: None)
    bomb = py(job, "x = [bytearray(32 << 20) for _ in range(64)]", memory_bytes=128 * MIB)
    assert (bomb.degraded, bomb.reason, bomb.peak_memory_bytes) == (True, "exit", None)
    assert "MemoryError" in bomb.stderr  # RLIMIT_AS (3x the limit) instead of the OOM killer
    forks = py(
        job,
        """
        import os, time
        children = 0
        try:
            while children < 100:
                if os.fork() == 0:
                    time.sleep(5)
                    os._exit(0)
                children += 1
        except OSError:
            pass
        print(children, flush=True)
        os._exit(0)
        """,
        pids=16,
    )
    assert forks.reason == "ok" and int(forks.stdout) < 16  # RLIMIT_NPROC on the run's own uid
