"""The whole pipeline on the toy assignment, in the real sandbox and without one."""

import json
from pathlib import Path

import nbformat
import pytest

from grader import grade, load_assignment
from grader.errors import InvalidSubmission

TOY = Path(__file__).parent / "toy"
pytestmark = pytest.mark.xdist_group("sandbox")


@pytest.fixture(scope="module")
def toy():
    return load_assignment(TOY)


def with_cell(key: str, source: str) -> bytes:
    nb = nbformat.read(TOY / "solution.ipynb", as_version=4)
    next(c for c in nb.cells if c.metadata["dgm"]["id"] == key).source = source
    return nbformat.writes(nb).encode()


@pytest.mark.parametrize("backend", ["bwrap", "none"])
def test_solution_gets_every_automatic_point(toy, backend):
    report = grade(TOY / "solution.ipynb", toy, sandbox=backend)
    assert [(i.id, i.status) for i in report.items] == [
        ("t1", "passed"),
        ("t1_proof", "pending"),
        ("square", "passed"),
        ("fit_loss", "passed"),
    ]
    assert report.auto_total == report.auto_max == 3.0
    assert report.pending_manual == 1.0
    assert report.sandbox.isolated == (backend != "none")
    assert report.warnings == []


def test_blank_template_gets_nothing(toy):
    report = grade(TOY / "toy.ipynb", toy, sandbox="bwrap")
    assert report.auto_total == 0
    by_id = {i.id: i for i in report.items}
    assert "NotImplementedError" in by_id["square"].message
    assert "missing answer t1" in by_id["t1"].message


def test_crashing_probe_costs_only_its_items(toy):
    report = grade(with_cell("line", "Line = None"), toy, sandbox="bwrap")
    by_id = {i.id: i for i in report.items}
    assert by_id["square"].status == "passed"
    assert by_id["fit_loss"].status == "failed"
    assert "TypeError" in by_id["fit_loss"].message


def test_student_cannot_read_inputs_or_write_results(toy, tmp_path):
    """The kernel runs as its own uid: the orchestrator's inputs and outputs are out of its reach."""
    cheat = (
        "import json, os\nLine = None\nfound = {}\n"
        "for path in ('../inputs/config.json', '../inputs/q0.safetensors', '../out/status.json'):\n"
        "    try:\n        open(path).read(1)\n        found[path] = 'read'\n"
        "    except OSError as exc:\n        found[path] = type(exc).__name__\n"
        "try:\n    open('../out/status.json', 'w').write(json.dumps({'cells': []}))\n    found['write'] = 'written'\n"
        "except OSError as exc:\n    found['write'] = type(exc).__name__\n"
        "print(json.dumps(found))\n"
    )
    report = grade(with_cell("line", cheat), toy, sandbox="bwrap", executed_path=tmp_path / "run.ipynb")
    by_id = {i.id: i for i in report.items}
    assert by_id["fit_loss"].status == "failed" and "TypeError" in by_id["fit_loss"].message
    executed = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    line = next(c for c in executed.cells if c.metadata["dgm"]["id"] == "line")
    found = json.loads(line.outputs[0]["text"])
    assert set(found.values()) == {"PermissionError"}, found


def test_failed_sandbox_start_is_our_failure_not_a_score(toy, tmp_path, monkeypatch):
    from grader import execute as execute_stage
    from grader.cli import main
    from grader.errors import GradingFailed
    from grader.sandbox.model import SandboxResult

    def broken(*args, **kwargs):
        return SandboxResult(
            reason="sandbox_error", exit_code=125, duration_s=0.1, peak_memory_bytes=None, pids_limit_hit=False,
            stdout="", stderr="", backend="docker", isolated=True, degraded=False, message="image not found",
        )  # fmt: skip

    monkeypatch.setattr(execute_stage.sandbox, "run", broken)
    with pytest.raises(GradingFailed, match=r"did not start .* image not found"):
        grade(TOY / "solution.ipynb", toy, sandbox="none")
    out = tmp_path / "r.json"
    assert main(["grade", str(TOY / "solution.ipynb"), "--assignment", str(TOY), "--json", str(out)]) != 0
    assert not out.exists()


def test_timeout_in_one_cell_is_reported_and_the_rest_still_grades(toy):
    looping = with_cell("line", "import time\nwhile True:\n    time.sleep(0.1)")
    report = grade(looping, toy, sandbox="bwrap")
    assert "cell 'line': timeout: exceeded 10 s and was interrupted" in report.warnings
    statuses = {i.id: i.status for i in report.items}
    assert statuses["square"] == "passed"
    assert statuses["fit_loss"] == "failed"


def test_malformed_notebook_is_rejected(toy):
    with pytest.raises(InvalidSubmission):
        grade(b"{", toy, sandbox="none")


def test_json_report_contract(toy, tmp_path):
    from grader.cli import main

    out = tmp_path / "r.json"
    assert (
        main(["grade", str(TOY / "solution.ipynb"), "--assignment", str(TOY), "--json", str(out), "--sandbox", "bwrap"])
        == 0
    )
    data = json.loads(out.read_text())
    for key in ("assignment", "total", "max_total", "auto_total", "auto_max", "pending_manual", "items"):
        assert key in data
    for item in data["items"]:
        assert {"id", "kind", "points", "max_points", "status", "message"} <= item.keys()


def test_printing_gigabytes_costs_time_not_memory(toy, tmp_path):
    flood = "def square(x):\n    return x * x\nfor _ in range(2048):\n    print('x' * 2**20)\n"
    report = grade(with_cell("square", flood), toy, sandbox="bwrap", executed_path=tmp_path / "run.ipynb")
    assert report.sandbox.reason == "ok"  # 2 GiB printed under a 1 GiB memory limit
    assert report.auto_total == report.auto_max
    executed = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    square = next(c for c in executed.cells if c.metadata["dgm"]["id"] == "square")
    text = "".join(o.get("text", "") for o in square.outputs)
    assert text.endswith("[output truncated by the grader]\n")
    assert len(text) < 200_000
