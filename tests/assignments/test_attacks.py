"""Hostile homework 1 submissions graded through the real pipeline in the bwrap sandbox.

Each attack fixture (tests/fixtures/attacks, built by make_attacks.py) must get exactly the points of its
honest twin, item by item, or send the items `expected.yaml` names to a TA; denial-of-service fixtures
must leave the host alone and be stopped in time. Every notebook is graded once, two at a time, while a
watcher measures the jobs' directories on the host disk.

The fast tests at the end feed the orchestrator and `collect` crafted messages and replies directly.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import math
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from grader import Report, grade, load_assignment
from grader.collect import collect

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "attacks"
HW1 = load_assignment("hw1")
SPEC = yaml.safe_load((FIXTURES / "expected.yaml").read_text())
EXPECTED: dict[str, dict[str, Any]] = SPEC["fixtures"]
SEED = 7
MAX_JOB_BYTES = 64 * 2**20  # the host's job directory: inputs, replies, the executed notebook
MAX_JOB_INODES = 2000


class JobWatcher:
    """Polls the size and inode count of every job directory under `root` while gradings run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.peak_bytes = 0
        self.peak_inodes = 0
        self.start_free = self.min_free = shutil.disk_usage(root).free
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.min_free = min(self.min_free, shutil.disk_usage(self.root).free)
            for job in self.root.glob("dgm-grade-*"):
                size, inodes = 0, 0
                for dirpath, dirnames, filenames in os.walk(job):
                    inodes += len(dirnames) + len(filenames)
                    for name in filenames:
                        with contextlib.suppress(OSError):
                            size += os.lstat(os.path.join(dirpath, name)).st_size
                self.peak_bytes = max(self.peak_bytes, size)
                self.peak_inodes = max(self.peak_inodes, inodes)

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


Graded = dict[str, tuple[Report, nbformat.NotebookNode]]


@pytest.fixture(scope="module")
def graded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, testrun_uid: str
) -> tuple[Graded, dict[str, int]]:
    """The notebooks the selected tests need (all, normally), graded once per test run, two at a time.

    xdist's loadgroup does not keep this module on one worker under pytest 9 (it renames `_nodeid`,
    pytest reads `_id`), so the gradings are shared through a locked folder: a worker grades what is not
    there yet while any other waits for it, then reads the reports.
    """
    shared = tmp_path_factory.getbasetemp().parent / f"attacks-{testrun_uid}"
    shared.mkdir(exist_ok=True)
    keys = _needed(request.session.items)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        host = json.loads((shared / "host.json").read_text()) if (shared / "host.json").exists() else {}
        missing = [key for key in keys if not (shared / f"{key}.json").exists()]
        if missing:
            seen = _grade_all(missing, shared)
            host = {k: max(v, host.get(k, v)) for k, v in seen.items()}
            (shared / "host.json").write_text(json.dumps(host))
    results = {
        key: (
            Report.model_validate_json((shared / f"{key}.json").read_text()),
            nbformat.read(shared / f"{key}.executed.ipynb", as_version=4),
        )
        for key in keys
    }
    return results, host


def _needed(items: list[pytest.Item]) -> list[str]:
    """The selected attack fixtures and their twins, twins first; every one if a test needs them all."""
    names: set[str] = set()
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__ == __name__ and "graded" in getattr(item, "fixturenames", ()):
            name = getattr(item, "callspec", None) and item.callspec.params.get("name")
            names |= {name} if name else set(EXPECTED)
    twins = [twin for twin in ["solved", *SPEC["twins"][1:]] if any(EXPECTED[n]["twin"] == twin for n in names)]
    return twins + sorted(names)


def _grade_all(keys: list[str], into: Path) -> dict[str, int]:
    """Grade `keys` into `into` (report and executed notebook each); what the host's disk saw meanwhile."""
    paths = {key: HW1.solution_path if key == "solved" else FIXTURES / key for key in keys}
    work = Path(tempfile.mkdtemp(prefix="attacks-"))  # grade()'s job directories, watched

    def run(key: str) -> None:
        executed = into / f"{key}.executed.ipynb"
        report = grade(paths[key], HW1, profile="ci", sandbox="bwrap", seed=SEED, executed_path=executed)
        (into / f"{key}.json").write_text(report.model_dump_json())

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tempfile, "tempdir", str(work))
            with JobWatcher(work) as watcher, ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(run, keys))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "peak_bytes": watcher.peak_bytes,
        "peak_inodes": watcher.peak_inodes,
        "disk_free_drop_bytes": watcher.start_free - watcher.min_free,  # informative: other processes share the disk
    }


def _items(names: list[str]) -> set[str]:
    probe_items = {i.id for i in HW1.rubric.items if i.kind in ("check", "metric")}
    return {item for name in names for item in (probe_items if name == "probe_items" else {name})}


def _auto(report: Report) -> dict[str, Any]:
    return {i.id: i for i in report.items if i.kind != "manual"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.slow
@pytest.mark.xdist_group("attacks")
def test_attack_gets_the_honest_score(graded, name: str) -> None:
    results, _ = graded
    spec = EXPECTED[name]
    report, _ = results[name]
    twin = _auto(results[spec["twin"]][0])
    review, lose, zero, differs = (_items(spec.get(k, [])) for k in ("review", "lose", "zero", "differs"))
    problems = []
    for item_id, item in _auto(report).items():
        want = twin[item_id]
        if item_id in review:
            if item.status != "pending" or "review" not in item.message:
                problems.append(f"{item_id} should go to a TA, got {item.points} ({item.status}): {item.message}")
        elif item_id in zero and item.points != 0:
            problems.append(f"{item_id} should get 0, got {item.points}: {item.message}")
        elif item_id in lose and not item.points < want.points:
            problems.append(f"{item_id} should lose points against its twin ({want.points}): {item.message}")
        elif item_id not in zero | lose and not math.isclose(item.points, want.points):
            problems.append(f"{item_id}: {item.points} points, its honest twin {want.points}: {item.message}")
        if item_id in differs and item.message == want.message:
            problems.append(f"{item_id}: the attack's answers never reached the host ({item.message})")
    assert not problems, "\n".join(problems)
    assert report.sandbox is not None and report.sandbox.isolated and report.sandbox.reason == "ok", report.warnings


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.slow
@pytest.mark.xdist_group("attacks")
def test_the_ta_sees_the_real_code_and_bounded_outputs(graded, name: str) -> None:
    results, _ = graded
    spec = EXPECTED[name]
    report, executed = results[name]
    submitted = nbformat.read(FIXTURES / name, as_version=4)
    shown = {c.metadata.get("dgm", {}).get("id"): c.source for c in executed.cells}
    for cell in submitted.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert shown.get(cell.metadata["dgm"]["id"]) == cell.source, cell.metadata["dgm"]["id"]
    size = len(nbformat.writes(executed).encode())
    assert size <= spec.get("max_executed_bytes", 1_000_000)
    outputs = "".join(str(o) for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for text in spec.get("output_must_not_contain", []):
        assert text not in outputs
    for cell, status in spec.get("cells", {}).items():
        assert any(w.startswith(f"cell '{cell}': {status}") for w in report.warnings), report.warnings
    for text in spec.get("warnings_contain", []):
        assert any(text in w for w in report.warnings), report.warnings
    assert report.sandbox is not None
    assert spec.get("min_duration_s", 0) <= report.sandbox.duration_s <= spec.get("max_duration_s", 300)


@pytest.mark.slow
@pytest.mark.xdist_group("attacks")
def test_the_host_is_unaffected(graded) -> None:
    _, host = graded
    assert host["peak_bytes"] <= MAX_JOB_BYTES, f"a job directory reached {host['peak_bytes']} bytes"
    assert host["peak_inodes"] <= MAX_JOB_INODES, f"a job directory reached {host['peak_inodes']} entries"
    names = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            names.append(comm.read_text().strip())
    assert "dgm-outlives" not in names, "a process of a finished sandbox is still running"


# ---------------------------------------------------------------- the orchestrator and collect, directly


def _orchestrator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dgm_run_notebook", ROOT / "grader" / "runner" / "run_notebook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(runner: ModuleType, nb: nbformat.NotebookNode, cap: int) -> Any:
    client = runner.Orchestrator(nb, cap=cap)
    client.clear_before_next_output = False  # set per cell by nbclient's execute_cell
    return client


def _message(msg_type: str, content: Any) -> dict[str, Any]:
    return {"msg_type": msg_type, "content": content, "header": {"msg_type": msg_type}, "parent_header": {}}


def test_crafted_messages_are_dropped_not_fatal() -> None:
    runner = _orchestrator()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_markdown_cell("text")])
    client = _client(runner, nb, 10_000)
    cell = nb.cells[0]
    for _ in range(5):
        client.process_message(
            _message("display_data", {"data": {"text/plain": "."}, "metadata": {}, "transient": {"display_id": "d"}}),
            cell,
            0,
        )
    client._display_id_map["d"][1] = [3]  # a stale target: the markdown cell (no outputs)
    client._display_id_map["d"][7] = [0]  # a cell that does not exist
    for msg in (
        _message("status", {}),
        _message("execute_input", {"code": "", "execution_count": "9" * 100_000}),
        _message("stream", {"name": "stdout", "text": ["not", "text"]}),
        _message("display_data", {"data": {}, "metadata": {}, "transient": {"display_id": ["unhashable"]}}),
        _message("display_data", "not a dict"),
        _message(
            "update_display_data", {"data": {"text/plain": "y"}, "metadata": {}, "transient": {"display_id": "d"}}
        ),
        _message("comm_open", {"comm_id": "c", "data": {"state": {"x": "y" * 1000}}}),
    ):
        client.process_message(msg, cell, 0)
    assert [o["data"]["text/plain"] for o in cell.outputs if o["output_type"] == "display_data"] == ["y"] * 5
    assert client.widget_state == {}
    assert cell.get("execution_count") is None


def test_display_updates_count_once_per_output_they_rewrite() -> None:
    runner = _orchestrator()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    client = _client(runner, nb, 100_000)
    cell = nb.cells[0]
    shown = {"data": {"text/plain": "."}, "metadata": {}, "transient": {"display_id": "many"}}
    for _ in range(100):
        client.process_message(_message("display_data", shown), cell, 0)
    update = {"data": {"text/plain": "y" * 5000}, "metadata": {}, "transient": {"display_id": "many"}}
    client.process_message(_message("update_display_data", update), cell, 0)  # 100 copies of 5 kB: over the cap
    assert 0 in client.truncated
    assert len(nbformat.writes(nb)) < 100_000


def test_replies_are_validated_and_capped_in_all(tmp_path, monkeypatch) -> None:
    runner = _orchestrator()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(runner, "MAX_TOTAL_REPLY_BYTES", 3000)
    client = runner.Orchestrator(nbformat.v4.new_notebook(), cap=1000)
    tensors = "A" * 2000  # base64 of 1500 bytes
    ok = runner._save_reply(client, {"status": "ok", "values": {"n": 1}, "tensors": tensors}, 0)
    assert ok == {"status": "ok", "message": "", "values": {"n": 1}, "tensors": "0.safetensors"}
    assert runner._save_reply(client, {"status": "ok", "tensors": tensors}, 1)["status"] == "ok"
    refused = runner._save_reply(client, {"status": "ok", "tensors": tensors}, 2)
    assert refused["status"] == "error" and "in all" in refused["message"]
    for bad in (
        {"status": "skipped"},
        {"status": "ok", "values": {"x": float("nan")}},
        {"status": "ok", "values": ["x"]},
    ):
        assert runner._save_reply(client, bad, 3)["status"] == "error"


def test_lone_surrogates_from_the_kernel_do_not_stop_the_writer(tmp_path, monkeypatch) -> None:
    runner = _orchestrator()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    cell = nbformat.v4.new_code_cell("print()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="bad \ud800")]
    runner._write(nbformat.v4.new_notebook(cells=[cell]), {"cells": [], "detail": "\udfff"})
    assert "bad ?" in (tmp_path / "out" / "executed.ipynb").read_text()
    assert json.loads((tmp_path / "out" / "status.json").read_text())["detail"] == "?"


def test_collect_caps_the_replies_in_all(tmp_path, monkeypatch) -> None:
    import grader.collect

    (tmp_path / "out" / "replies").mkdir(parents=True)
    queries = []
    for n in range(3):
        save_file({"x": np.zeros(1000, np.float32)}, str(tmp_path / "out" / "replies" / f"{n}.safetensors"))
        queries.append({"probe": f"p{n}", "status": "ok", "tensors": f"{n}.safetensors"})
    (tmp_path / "out" / "status.json").write_text(json.dumps({"cells": [], "queries": queries, "complete": True}))
    monkeypatch.setattr(grader.collect, "MAX_TENSOR_TOTAL_BYTES", 9000)
    art = collect(tmp_path)
    assert {name: record.status for name, record in art.probes.items()} == {"p0": "ok", "p1": "ok", "p2": "error"}


def test_the_watcher_sees_a_job_directory(tmp_path) -> None:
    (tmp_path / "dgm-grade-x" / "job").mkdir(parents=True)
    (tmp_path / "dgm-grade-x" / "job" / "f").write_bytes(b"x" * 1000)
    with JobWatcher(tmp_path) as watcher:
        time.sleep(1.2)
    assert watcher.peak_bytes == 1000 and watcher.peak_inodes == 2
