"""Assignment folders: `assignments/hwN/` with template, rubric, probes, checks and baselines."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from grader.errors import AssignmentError
from grader.rubric import Baseline, Rubric, load_rubric

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_assignments_dir() -> Path:
    """`DGM_ASSIGNMENTS_DIR`, else the `assignments/` folder of this checkout."""
    return Path(os.environ.get("DGM_ASSIGNMENTS_DIR", REPO_ROOT / "assignments"))


@dataclass(frozen=True)
class ProbeDecl:
    """A probe as `@probe(name, needs=..., steps=...)` in `probes.py` declares it (see `harness.probe`)."""

    name: str
    needs: tuple[str, ...] = ()
    steps: str | None = None


def read_probes(path: Path) -> list[ProbeDecl]:
    """The probes of `path`, in query order, read from their decorators without running the file."""
    if not path.exists():
        return []
    decls = []
    for node in ast.parse(path.read_text(), str(path)).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "probe":
                try:
                    args = [ast.literal_eval(a) for a in deco.args]
                    kwargs = {k.arg: ast.literal_eval(k.value) for k in deco.keywords if k.arg}
                except ValueError as exc:
                    raise AssignmentError(f"{path}:{deco.lineno}: @probe takes literal arguments only") from exc
                if "needs" in kwargs:
                    kwargs["needs"] = tuple(kwargs["needs"])
                decls.append(ProbeDecl(*args, **kwargs))
    return decls


@dataclass(frozen=True)
class Assignment:
    name: str
    path: Path
    rubric: Rubric

    @property
    def template_path(self) -> Path:
        return template_file(self.path)

    @property
    def source_path(self) -> Path:
        """The instructor notebook that `dgm-grader assign` builds the template and the solution from."""
        return self.path / "source.ipynb"

    @property
    def probes_path(self) -> Path:
        return self.path / "probes.py"

    def probes(self) -> list[ProbeDecl]:
        return read_probes(self.probes_path)

    @property
    def checks_path(self) -> Path:
        return self.path / "checks.py"

    @property
    def baselines_path(self) -> Path:
        return self.path / "baselines.json"

    @property
    def solution_path(self) -> Path:
        return REPO_ROOT / "reference_solutions" / "notebooks" / f"{self.name}.ipynb"

    def baselines(self, profile: str) -> dict[str, Baseline]:
        """Calibrated reference metric values for `profile`: item id -> median and worst ratio."""
        if not self.baselines_path.exists():
            return {}
        data = json.loads(self.baselines_path.read_text())
        return {
            item: Baseline(float(entry["value"]), entry.get("worst_ratio"))
            for item, entry in data.get(profile, {}).items()
        }

    def load_checks(self) -> ModuleType:
        """Import the trusted host-side `checks.py` of this assignment under a private module name."""
        spec = importlib.util.spec_from_file_location(f"dgm_checks_{self.name}", self.checks_path)
        if spec is None or spec.loader is None or not self.checks_path.exists():
            raise AssignmentError(f"{self.name}: no checks.py in {self.path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
        spec.loader.exec_module(module)
        return module


def template_file(folder: Path) -> Path:
    """The student template of the assignment in `folder`: `hwN/hwN.ipynb`."""
    return folder / f"{folder.name}.ipynb"


def assignment_folder(name: str | Path, assignments_dir: Path | None = None) -> Path:
    """The folder of an assignment given by name (`hw1`, in `assignments_dir`) or by path."""
    if isinstance(name, Path) or os.sep in name:
        return Path(name)
    return (assignments_dir or default_assignments_dir()) / name


def load_assignment(name: str | Path, assignments_dir: Path | None = None) -> Assignment:
    """Load an assignment by name (`hw1`) or folder path; validates its rubric and files."""
    path = assignment_folder(name, assignments_dir)
    rubric_path = path / "rubric.yaml"
    if not rubric_path.exists():
        raise AssignmentError(f"unknown assignment {str(name)!r}: no {rubric_path}")
    rubric = load_rubric(rubric_path)
    assignment = Assignment(name=path.name, path=path, rubric=rubric)
    if rubric.assignment != assignment.name:
        raise AssignmentError(f"{rubric_path}: says assignment {rubric.assignment!r}, folder is {path.name!r}")
    if not assignment.template_path.exists():
        raise AssignmentError(f"{assignment.name}: template {assignment.template_path} is missing")
    names = {p.name for p in assignment.probes()}
    for profile, spec in rubric.profiles.items():
        if unknown := sorted(spec.budgets.keys() - names):
            raise AssignmentError(f"{rubric_path}: profile {profile} has budgets for {unknown}, which name no probe")
    return assignment


def list_assignments(assignments_dir: Path | None = None) -> list[Assignment]:
    """Every folder of `assignments_dir` that holds a `rubric.yaml`, sorted by name."""
    root = assignments_dir or default_assignments_dir()
    if not root.is_dir():
        return []
    return [load_assignment(p) for p in sorted(root.iterdir()) if (p / "rubric.yaml").exists()]


def write_baselines(assignment: Assignment, profile: str, values: dict[str, dict[str, Any]]) -> None:
    """Replace the baselines of `profile`, keeping the other profiles' values."""
    path = assignment.baselines_path
    data = json.loads(path.read_text()) if path.exists() else {}
    data[profile] = values
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
