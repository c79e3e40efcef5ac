"""The boundary to the grading pipeline.

Workers call a :class:`GradeFn` ``(notebook_path, assignment_name) -> Report``. The default one calls
``grader.grade`` with the server's profile, sandbox and assignments folder; ``DGM_GRADER=module:callable``
swaps in another (the tests use :func:`server.testing.fake_grade`). ``grader`` is imported lazily so
the server starts even where the grading pipeline is not importable.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from server.core.config import Settings
from server.errors import InvalidNotebook

if TYPE_CHECKING:
    from grader.results import Report


class GradeFn(Protocol):
    """Grade one notebook; write the executed notebook to ``executed_path`` when one is given."""

    def __call__(self, notebook_path: Path, assignment: str, *, executed_path: Path | None = None) -> Report: ...


class PermanentGradingError(Exception):
    """Grading can never succeed for this submission (unusable notebook): do not retry."""


def load_grader(settings: Settings) -> GradeFn:
    """The grading function the settings select."""
    if settings.grader:
        module_name, _, attr = settings.grader.partition(":")
        fn: GradeFn = getattr(importlib.import_module(module_name), attr or "grade")
        return fn

    def grade(notebook_path: Path, assignment: str, *, executed_path: Path | None = None) -> Report:
        import grader
        from grader.errors import InvalidSubmission

        try:
            return grader.grade(
                notebook_path,
                assignment,
                profile=settings.profile,
                sandbox=settings.sandbox,
                assignments_dir=settings.assignments_dir,
                executed_path=executed_path,
            )
        except InvalidSubmission as exc:
            raise PermanentGradingError(str(exc)) from exc

    return grade


def validate_notebook(data: bytes) -> None:
    """Reject what cannot be a notebook, with a one-line reason (raises InvalidNotebook).

    Uses ``grader.validate_notebook`` when the pipeline provides it, else an nbformat check.
    """
    try:
        from grader import validate_notebook as grader_validate
        from grader.errors import InvalidSubmission
    except ImportError:
        _validate_with_nbformat(data)
        return
    try:
        grader_validate(data)
    except InvalidSubmission as exc:
        raise InvalidNotebook(str(exc)) from exc


def _validate_with_nbformat(data: bytes) -> None:
    import nbformat

    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidNotebook(f"not a notebook: the file is not JSON ({exc})") from exc
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        raise InvalidNotebook("not a notebook: expected a JSON object with 'cells' and 'nbformat'")
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidNotebook(f"invalid notebook: {reason}") from exc
