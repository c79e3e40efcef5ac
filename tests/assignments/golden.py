"""The golden tests' shared part: grade an assignment's notebooks once through the real pipeline and
compare each report with what its fixture must score (`tests/fixtures/<assignment>/expected.yaml`).

`golden(name)` is one `Golden` per assignment per process: the first test that asks for a report grades
every notebook of the assignment, two at a time (each run is a sandboxed subprocess, single-threaded, with
its own sandbox uid), so the number of tests does not multiply the gradings. Tests of one assignment carry
`pytest.mark.xdist_group(name)`, so that they run in one worker and share the reports.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

from grader import Report, grade, load_assignment

ROOT = Path(__file__).resolve().parents[2]
PARALLEL_GRADES = 2  # keeps a 2-core runner busy
SEEDS = {"hw4": 4, "hw5": 6, "hw6": 3, "upm_cvae": 5}  # the fixed seed each assignment's notebooks are graded on


class Golden:
    """The solved notebook (on `seed` and on a random seed), the blank template, every fixture and every
    alternative correct solution of `assignment`, graded in the `ci` profile under bwrap."""

    def __init__(self, assignment: str, seed: int) -> None:
        self.assignment, self.seed = assignment, seed
        self.random_seed = secrets.randbits(31)  # a new one each run: full points on any seed
        self.fixtures = ROOT / "tests" / "fixtures" / assignment
        self.solved = ROOT / "reference_solutions" / "notebooks" / f"{assignment}.ipynb"
        self.template = load_assignment(assignment).template_path
        self.expected: dict[str, dict[str, Any]] = yaml.safe_load((self.fixtures / "expected.yaml").read_text())[
            "fixtures"
        ]
        self.correct = sorted(path.name for path in (self.fixtures / "correct").glob("*.ipynb"))
        self.fixture_names = sorted(self.expected)

    @cached_property
    def _reports(self) -> dict[tuple[Path, int], Report]:
        paths = [self.solved, self.template, *(self.fixtures / name for name in sorted(self.expected))]
        paths += [self.fixtures / "correct" / name for name in self.correct]
        jobs = [(path, self.seed) for path in paths] + [(self.solved, self.random_seed)]
        with ThreadPoolExecutor(PARALLEL_GRADES) as pool:
            reports = pool.map(
                lambda job: grade(job[0], self.assignment, profile="ci", sandbox="bwrap", seed=job[1]), jobs
            )
            return dict(zip(jobs, reports, strict=True))

    def report(self, path: Path, seed: int | None = None) -> Report:
        return self._reports[(path, self.seed if seed is None else seed)]

    def fixture(self, name: str) -> Report:
        return self.report(self.fixtures / name)

    def alternative(self, name: str) -> Report:
        return self.report(self.fixtures / "correct" / name)

    @cached_property
    def points(self) -> tuple[float, float]:
        """(automatic, manual) points of the rubric."""
        items = load_assignment(self.assignment).rubric.items
        manual = sum(i.points for i in items if i.kind == "manual")
        return sum(i.points for i in items) - manual, manual


@cache
def golden(assignment: str) -> Golden:
    """The assignment's notebooks, graded once per process."""
    return Golden(assignment, SEEDS[assignment])


def auto(report: Report) -> dict[str, tuple[float, float, str]]:
    """Automatic items: id -> (points, max points, message)."""
    return {i.id: (i.points, i.max_points, i.message) for i in report.items if i.kind != "manual"}


def lost(report: Report) -> dict[str, tuple[float, float, str]]:
    """Automatic items that did not get their full points."""
    return {k: v for k, v in auto(report).items() if v[0] < v[1]}


def assert_loses_exactly(report: Report, name: str, expected: dict[str, Any]) -> None:
    """`report` loses every item of `expected["lose"]`, keeps every item outside `lose` and `may_lose`, and
    reports the cells `expected["cells"]` names with their status."""
    assert report.sandbox is not None and report.sandbox.reason == "ok", (report.sandbox, report.warnings)
    items = auto(report)
    lose, may = set(expected["lose"]), set(expected.get("may_lose", []))
    assert lose | may <= items.keys()
    kept_wrongly = {i: items[i] for i in lose if items[i][0] >= items[i][1]}
    lost_wrongly = {i: v for i, v in items.items() if i not in lose | may and v[0] < v[1]}
    assert not kept_wrongly, f"{name} should lose {sorted(kept_wrongly)}: {kept_wrongly}"
    assert not lost_wrongly, f"{name} should keep {sorted(lost_wrongly)}: {lost_wrongly}"
    for cell, status in expected.get("cells", {}).items():
        assert any(w.startswith(f"cell '{cell}': {status}") for w in report.warnings), report.warnings
