"""DGM Grader: sandboxed, oracle-checked grading of generative-model homework notebooks.

Public names are imported lazily so that `import grader.errors` (or the CLI's `--help`) does not pay
for torch, nbclient and the sandbox.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Assignment": "grader.assignment",
    "list_assignments": "grader.assignment",
    "load_assignment": "grader.assignment",
    "AssignmentError": "grader.errors",
    "GraderError": "grader.errors",
    "InvalidSubmission": "grader.errors",
    "SandboxUnavailable": "grader.errors",
    "grade": "grader.pipeline",
    "validate_notebook": "grader.prepare",
    "ItemResult": "grader.results",
    "Report": "grader.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'grader' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
