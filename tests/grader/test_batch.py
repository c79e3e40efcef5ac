"""Batch grading: LMS layouts, a zip export, one summary row per student whatever the submission did."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader import load_assignment
from grader.batch import BatchResult, find_submissions, unpack, write_summary
from grader.cli import main

TOY = Path(__file__).parent / "toy"


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")


def test_a_notebook_per_student_and_a_folder_per_student(tmp_path: Path) -> None:
    _touch(tmp_path, "alice.ipynb", "notes.txt", ".hidden.ipynb")
    _touch(tmp_path, "Bob Smith_42_assignsubmission_file_/hw1.ipynb", "Bob Smith_42_assignsubmission_file_/x.pdf")
    _touch(tmp_path, "carol/sub/hw1.ipynb", "carol/.ipynb_checkpoints/hw1-checkpoint.ipynb")
    _touch(tmp_path, "dave/a.ipynb", "dave/b.ipynb")
    (tmp_path / "erin").mkdir()
    _touch(tmp_path, "frank.ipynb", "frank/hw1.ipynb")
    found = {s.student: s for s in find_submissions(tmp_path)}
    assert sorted(found) == ["Bob Smith_42", "alice", "carol", "dave", "erin", "frank"]
    assert found["alice"].path == tmp_path / "alice.ipynb"
    assert found["carol"].path == tmp_path / "carol/sub/hw1.ipynb"
    assert found["dave"].path is None and "found a.ipynb, b.ipynb" in found["dave"].problem
    assert found["erin"].path is None and "found none" in found["erin"].problem
    assert found["frank"].path is None and "2 submissions under the name frank" in found["frank"].problem


def test_zip_export_is_unpacked_safely_through_a_wrapper_folder(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("export/alice/hw1.ipynb", "{}")
        zf.writestr("export/bob/hw1.ipynb", "{}")
        zf.writestr("../../escape.ipynb", "{}")
        zf.writestr("__MACOSX/export/._alice.ipynb", "{}")
        zf.writestr("export/readme.txt", "hi")
    root = unpack(archive, tmp_path / "out")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "escape.ipynb",
        "export/alice/hw1.ipynb",
        "export/bob/hw1.ipynb",
    ]
    assert [s.student for s in find_submissions(tmp_path / "out" / "export")] == ["alice", "bob"]


def test_summary_cells_cannot_be_spreadsheet_formulas(tmp_path: Path) -> None:
    toy = load_assignment(TOY)
    write_summary([BatchResult("=HYPERLINK(1)", "invalid", "+1 -1 @x")], toy, tmp_path / "s.csv")
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert rows[0] == ["student", "status", "total", "max_total", "pending_manual", "theory", "code", "message"]
    assert rows[1] == ["'=HYPERLINK(1)", "invalid", "", "", "", "", "", "'+1 -1 @x"]


@pytest.mark.slow
@pytest.mark.xdist_group("sandbox")
def test_grade_a_zip_with_a_folder_per_student(tmp_path: Path, capsys) -> None:
    solved = nbformat.read(TOY / "solution.ipynb", as_version=4)
    looping = nbformat.read(TOY / "solution.ipynb", as_version=4)
    next(c for c in looping.cells if c.metadata["dgm"]["id"] == "square").source = "while True:\n    pass"
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice/toy.ipynb", nbformat.writes(solved))
        zf.writestr("bob/toy.ipynb", (TOY / "toy.ipynb").read_text())
        zf.writestr("carol/toy.ipynb", nbformat.writes(solved)[:100])
        zf.writestr("dave/toy.ipynb", nbformat.writes(looping))
    out = tmp_path / "graded"
    args = ["grade", str(archive), "--assignment", str(TOY), "--jobs", "2", "--sandbox", "bwrap", "--out", str(out)]
    assert main(args) == 0
    rows = {r["student"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert {s: (r["status"], r["total"], r["code"]) for s, r in rows.items()} == {
        "alice": ("graded", "3", "2.5"),
        "bob": ("graded", "0", "0"),
        "carol": ("invalid", "", ""),
        "dave": ("graded", "0.5", "0"),
    }
    assert "not a notebook" in rows["carol"]["message"]
    assert sorted(p.name for p in out.iterdir()) == [
        *(f"{s}.{ext}" for s in ("alice", "bob", "dave") for ext in ("html", "json")),
        "summary.csv",
    ]
    assert "3 graded, 1 invalid, 0 failed" in capsys.readouterr().out
