"""Homework 1 graded through the real pipeline in the bwrap sandbox: the solved notebook gets every
automatic point, the blank template none, and each fixture loses exactly what
`tests/fixtures/hw1/expected.yaml` says (its header documents the keys and shorthands).
"""

from __future__ import annotations

import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml

from grader import Report, grade, load_assignment
from grader.errors import InvalidSubmission

pytestmark = [pytest.mark.xdist_group("hw1"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "hw1"
HW1 = load_assignment("hw1")
EXPECTED = yaml.safe_load((FIXTURES / "expected.yaml").read_text())["fixtures"]
GRADED = sorted(name for name, spec in EXPECTED.items() if not spec.get("invalid"))
# alternative correct solutions (tests/fixtures/variants.py builds them): every automatic point each
CORRECT = sorted(path.name for path in (FIXTURES / "correct").glob("*.ipynb"))
SEED = 7
RANDOM_SEED = secrets.randbits(31)  # a new one each run: the solved notebook must get every point on any seed


def _expand(names: list[str]) -> set[str]:
    ids = [i.id for i in HW1.rubric.items if i.kind != "manual"]
    shorthands = {
        "pixelcnn_all": [i for i in ids if i.startswith("pixelcnn_")],
        "imagegpt_all": [i for i in ids if i.startswith("imagegpt_")],
        "imagegpt_uses_mask": [i for i in ids if i.startswith("imagegpt_") and i != "imagegpt_sos"],
    }
    return {item for name in names for item in shorthands.get(name, [name])}


@pytest.fixture(scope="module")
def graded() -> dict[str, tuple[Report, nbformat.NotebookNode]]:
    """Every notebook graded once, two at a time (each grading is a sandboxed subprocess)."""
    jobs = {
        "solved": (HW1.solution_path, SEED),
        "solved_random": (HW1.solution_path, RANDOM_SEED),
        "template": (HW1.template_path, SEED),
    } | {n: (FIXTURES / n, SEED) for n in GRADED}
    jobs |= {f"correct/{n}": (FIXTURES / "correct" / n, SEED) for n in CORRECT}
    out = Path(tempfile.mkdtemp(prefix="hw1-executed-"))

    def run(key: str) -> tuple[Report, nbformat.NotebookNode]:
        executed = out / f"{key.replace('/', '-')}.ipynb"
        path, seed = jobs[key]
        report = grade(path, HW1, profile="ci", sandbox="bwrap", seed=seed, executed_path=executed)
        return report, nbformat.read(executed, as_version=4)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(jobs, pool.map(run, jobs), strict=True))


def _lost(report: Report) -> dict[str, str]:
    return {i.id: i.message for i in report.items if i.kind != "manual" and i.points < i.max_points}


def test_solution_gets_every_automatic_point(graded) -> None:
    report, _ = graded["solved"]
    assert _lost(report) == {}
    assert report.auto_total == report.auto_max == 11
    assert report.pending_manual == 2
    assert report.sandbox is not None and report.sandbox.isolated and report.sandbox.reason == "ok"
    assert report.warnings == []
    assert len(report.figures) == 5  # two sample grids, PixelCNN completions, two training curves


def test_solution_gets_every_automatic_point_on_a_random_seed(graded) -> None:
    report, _ = graded["solved_random"]
    assert _lost(report) == {}, f"seed {RANDOM_SEED} (reproduce with --seed {RANDOM_SEED}): {_lost(report)}"


@pytest.mark.parametrize("name", CORRECT)
def test_correct_alternative_gets_every_automatic_point(graded, name: str) -> None:
    report, _ = graded[f"correct/{name}"]
    assert _lost(report) == {}
    assert report.auto_total == report.auto_max == 11
    assert report.sandbox is not None and report.sandbox.reason == "ok"
    assert report.warnings == []


def test_blank_template_gets_no_automatic_point(graded) -> None:
    report, _ = graded["template"]
    assert report.auto_total == 0, {i.id: i.points for i in report.items if i.points}
    assert report.pending_manual == 2


@pytest.mark.parametrize("name", GRADED)
def test_fixture_loses_exactly_its_items(graded, name: str) -> None:
    spec = EXPECTED[name]
    report, executed = graded[name]
    lost = _lost(report)
    must, may = _expand(spec.get("lose", [])), _expand(spec.get("may_lose", []))
    assert must <= lost.keys(), f"{name} should lose {sorted(must - lost.keys())}"
    assert lost.keys() <= must | may, (
        f"{name} lost more than it should: { {k: lost[k] for k in lost.keys() - must - may} }"
    )
    assert report.sandbox is not None
    assert report.sandbox.reason in spec.get("sandbox_reason", ["ok"]), report.warnings
    for cell, status in spec.get("cells", {}).items():
        assert any(w.startswith(f"cell '{cell}': {status}") for w in report.warnings), report.warnings
    outputs = "".join(str(o) for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for text in spec.get("output_must_not_contain", []):
        assert text not in outputs


@pytest.mark.parametrize("name", sorted(n for n, s in EXPECTED.items() if s.get("invalid")))
def test_invalid_fixture_is_rejected_with_a_reason(name: str) -> None:
    with pytest.raises(InvalidSubmission, match=r"not a notebook|invalid"):
        grade(FIXTURES / name, HW1, sandbox="bwrap")


def test_edited_locked_cell_is_reported(graded) -> None:
    report, _ = graded["edits_locked_cell.ipynb"]
    assert any("was edited; the template's version was used" in w for w in report.warnings)
