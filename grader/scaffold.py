"""`dgm-grader new-assignment NAME`: a new assignment folder, copied from `grader/templates/new_assignment/`.

The copy is a small working assignment (one rubric item of each kind, a probe, its checks and the metric's
baseline) that `dgm-grader assign NAME` accepts as it is; the author replaces its parts.
"""

from __future__ import annotations

import re
from pathlib import Path

from grader.assignment import default_assignments_dir
from grader.errors import AssignmentError

SKELETON = Path(__file__).resolve().parent / "templates" / "new_assignment"
PLACEHOLDER = "__NAME__"


def create_assignment(name: str, assignments_dir: Path | None = None) -> Path:
    """Create `<assignments_dir>/<name>/` from the skeleton and return it; an existing folder is never touched."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise AssignmentError(f"assignment name {name!r}: use letters, digits, '_' and '-', starting with a letter")
    folder = (assignments_dir or default_assignments_dir()) / name
    if folder.exists():
        raise AssignmentError(f"{folder} exists already")
    folder.mkdir(parents=True)
    for path in sorted(SKELETON.iterdir()):
        (folder / path.name).write_text(path.read_text().replace(PLACEHOLDER, name))
    return folder
