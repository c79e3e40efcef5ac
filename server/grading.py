"""The boundary to the grading pipeline.

Workers call a :class:`GradeFn` ``(notebook_path, assignment_name) -> Report``. The default one calls
``grader.grade`` with the server's profile, sandbox and assignments folder; ``DGM_GRADER=module:callable``
swaps in another (the tests use :func:`server.testing.fake_grade`). ``grader`` is imported lazily: the
pipeline (torch, nbclient) loads in the worker, not when the web server starts.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from server.core.config import Settings
from server.errors import InvalidNotebook

if TYPE_CHECKING:
    from grader.results import Report

log = logging.getLogger(__name__)


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


def check_sandbox(settings: Settings) -> None:
    """Check the configured sandbox backend before a worker takes jobs, and log it.

    Raises ``grader.errors.SandboxUnavailable`` with the reason when it cannot run here (bwrap missing,
    no engine, image missing, or the docker probe job cannot read a job directory).
    """
    if settings.grader:
        log.info("grading with %s (no sandbox)", settings.grader)
        return
    from grader.sandbox import detect_backend

    log.info("grading in the %s sandbox, profile %s", detect_backend(settings.sandbox), settings.profile)


def validate_notebook(data: bytes) -> None:
    """Reject what cannot be a notebook, with a one-line reason (raises InvalidNotebook).

    The grading pipeline's own check: size, JSON nesting depth (measured before parsing, which
    recurses), nbformat 4 and its schema.
    """
    from grader.errors import InvalidSubmission
    from grader.prepare import validate_notebook as grader_validate

    try:
        grader_validate(data)
    except InvalidSubmission as exc:
        raise InvalidNotebook(str(exc)) from exc
