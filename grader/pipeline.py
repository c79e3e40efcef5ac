"""The grading pipeline: prepare -> execute -> collect -> check -> score -> report, in that order."""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from grader import sandbox as sandboxes
from grader import theory
from grader.assignment import Assignment, load_assignment
from grader.checks import CheckContext, CheckResult, find_checks, run_check
from grader.collect import Artifacts, collect
from grader.errors import AssignmentError, GradingFailed
from grader.execute import execute
from grader.prepare import Prepared, prepare, read_notebook
from grader.results import Report, SandboxSummary
from grader.rubric import Rubric
from grader.score import Outcome, score, totals

log = logging.getLogger(__name__)


def grade(
    notebook: Path | bytes,
    assignment: str | Path | Assignment,
    *,
    profile: str = "ci",
    sandbox: str = "auto",
    assignments_dir: Path | None = None,
    seed: int | None = None,
    executed_path: Path | None = None,
) -> Report:
    """Grade one notebook and return its report.

    Raises `InvalidSubmission` for unusable input, `AssignmentError` / `SandboxUnavailable` for problems
    on our side; everything the student's code does (crash, timeout, OOM, bad artifacts) is a result.
    `executed_path`, if given, receives the executed notebook (for the TA view).
    """
    start = time.monotonic()
    if not isinstance(assignment, Assignment):
        assignment = load_assignment(assignment, assignments_dir)
    rubric = assignment.rubric
    spec = rubric.profile(profile)
    submission = read_notebook(notebook if isinstance(notebook, bytes) else notebook.read_bytes())
    prepared = prepare(submission, nbformat.read(str(assignment.template_path), as_version=4))
    suite = find_checks(assignment.load_checks(), rubric)
    backend = sandboxes.detect_backend(sandbox)
    seed = secrets.randbits(31) if seed is None else seed
    try:
        inputs = suite.make_inputs(profile, seed) if suite.make_inputs else {}
    except FileNotFoundError as exc:  # a profile's data set or weights are not on this machine: say which
        raise AssignmentError(f"{assignment.name}, profile {profile}: {exc}") from exc

    workdir = Path(tempfile.mkdtemp(prefix="dgm-grade-"))
    try:
        t0 = time.monotonic()
        result = execute(
            prepared.notebook, assignment, profile=profile, seed=seed, inputs=inputs, workdir=workdir, backend=backend
        )
        log.info("%s: executed in %.1f s (%s, %s)", assignment.name, time.monotonic() - t0, backend, result.reason)
        _raise_if_ours(result)
        artifacts = collect(workdir / "job")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if executed_path is not None and artifacts.executed is not None:
        nbformat.write(artifacts.executed, str(executed_path))

    baselines = assignment.baselines(profile)
    ctx = CheckContext(
        inputs=inputs,
        seed=seed,
        profile=profile,
        artifacts=artifacts,
        budgets=spec.budgets,
        baselines={item: b.value for item, b in baselines.items()},
    )
    outcomes = {item_id: Outcome(*run_check(fn, ctx, item_id)) for item_id, fn in suite.checks.items()}
    answers = theory.extract_answers(prepared.answer_sources)
    outcomes |= _theory_outcomes(rubric, answers.answers)
    items = score(rubric, outcomes, baselines=baselines, profile=profile)
    warnings = [*prepared.warnings, *answers.warnings, *artifacts.problems, *_run_warnings(result, artifacts, prepared)]
    return Report(
        assignment=assignment.name,
        profile=profile,
        max_total=rubric.points,
        items=items,
        task_titles={t.id: t.title for t in rubric.tasks},
        warnings=warnings,
        sandbox=SandboxSummary(
            backend=result.backend,
            reason=result.reason,
            exit_code=result.exit_code,
            duration_s=round(result.duration_s, 3),
            peak_memory_bytes=result.peak_memory_bytes,
            isolated=result.isolated,
        ),
        figures=ctx.figures,
        duration_s=round(time.monotonic() - start, 3),
        **totals(items),
    )


def _raise_if_ours(result: sandboxes.SandboxResult) -> None:
    """A sandbox that did not start, or an orchestrator that crashed, is our failure and never a score.

    The student's code cannot end the orchestrator: it runs as another uid. What the student can cause
    (a timeout of the whole run, the job's OOM) is a result.
    """
    if result.reason == "sandbox_error":
        raise GradingFailed(f"the sandbox did not start ({result.backend}): {result.message}")
    if result.reason in ("exit", "signal"):
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise GradingFailed(f"the grader's orchestrator failed ({result.reason} {result.exit_code}): {tail}")


def _theory_outcomes(rubric: Rubric, answers: dict[str, str]) -> dict[str, Outcome]:
    outcomes = {}
    for item in rubric.items:
        if item.kind != "theory" or item.answer is None:
            continue
        ok, message = theory.grade_answer(
            answers.get(item.id),
            item.answer.key,
            answer_id=item.id,
            symbols=item.answer.symbols,
            rtol=item.answer.rtol,
            domain=item.answer.domain,
        )
        outcomes[item.id] = Outcome(CheckResult(fraction=1.0 if ok else 0.0, message=message))
    return outcomes


def _run_warnings(result: sandboxes.SandboxResult, artifacts: Artifacts, prepared: Prepared) -> list[str]:
    """What the student should know about how the run went: limits hit, cells that failed."""
    warnings = []
    if result.reason != "ok":
        warnings.append(f"the grading run ended early ({result.reason}): {result.message}".rstrip(": "))
    if artifacts.status is not None:
        ids = {
            i: (c.get("metadata", {}).get("dgm", {}) or {}).get("id", "") for i, c in enumerate(prepared.notebook.cells)
        }
        for cell in artifacts.status.cells:
            if cell.status == "ok" or cell.id == "_probes":
                continue
            name = ids.get(cell.index) or f"#{cell.index}"
            warnings.append(f"cell '{name}': {cell.status.replace('_', ' ')}: {cell.detail}".rstrip(": "))
        if artifacts.status.kernel_died:
            warnings.append("the kernel died (out of memory or crashed); later cells and probes did not run")
    elif result.reason == "ok":
        warnings.append("the notebook runner did not report a status")
    return warnings
