"""Grade a whole class at once: a folder or an LMS zip export in, per-student reports and a summary CSV out.

Layouts (as LMSs export them): a notebook per student (`alice.ipynb`; Canvas, Gradescope) or a folder per
student holding one notebook (`alice/hw1.ipynb`; Moodle's `Name_123_assignsubmission_file_/`). A wrapper
folder around either (a zipped folder) is looked through. Every submission gets a row in the summary:
`graded`, `invalid` (the student's notebook cannot be graded) or `failed` (our side: no points count).
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from grader.assignment import Assignment
from grader.errors import GraderError, InvalidSubmission
from grader.pipeline import grade
from grader.prepare import MAX_NOTEBOOK_BYTES
from grader.report import csv_cell, write_reports
from grader.results import Report
from grader.rubric import Limits
from grader.theory.worker import start_worker

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.csv"
_IGNORED = "__MACOSX"  # macOS zips; hidden entries (.ipynb_checkpoints, ...) are skipped too
_MOODLE_SUFFIX = "_assignsubmission_file_"


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: the student's folder holds no single notebook (see `problem`)
    problem: str = ""


@dataclass(frozen=True)
class BatchResult:
    student: str
    status: str  # graded | invalid | failed
    message: str = ""
    report: Report | None = None


def unpack(archive: Path, dest: Path) -> Path:
    """Extract the notebooks of a zip export into `dest` (names sanitised, each file capped) and return `dest`."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
            if info.is_dir() or not parts or not parts[-1].endswith(".ipynb") or _ignored(parts):
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:  # one byte over the limit is enough for grade() to refuse it
                target.write_bytes(src.read(MAX_NOTEBOOK_BYTES + 1))
    return dest


def find_submissions(root: Path) -> list[Submission]:
    """One submission per student of a folder in either layout, sorted by student."""
    while True:
        entries = [p for p in root.iterdir() if not _ignored([p.name])]
        if len(entries) != 1 or not entries[0].is_dir():
            break
        root = entries[0]  # a wrapper folder
    found = [Submission(p.stem, p) for p in entries if p.is_file() and p.suffix == ".ipynb"]
    for folder in (p for p in entries if p.is_dir()):
        notebooks = sorted(p for p in folder.rglob("*.ipynb") if not _ignored(p.relative_to(folder).parts))
        student = folder.name.removesuffix(_MOODLE_SUFFIX)
        if len(notebooks) == 1:
            found.append(Submission(student, notebooks[0]))
        else:
            names = ", ".join(str(p.relative_to(folder)) for p in notebooks) or "none"
            found.append(Submission(student, None, f"expected one notebook in {folder.name}/, found {names}"))
    by_student: dict[str, list[Submission]] = {}
    for sub in found:
        by_student.setdefault(sub.student, []).append(sub)
    return [  # a student with a notebook and a folder too: which one counts is theirs to say, not ours
        subs[0] if len(subs) == 1 else Submission(student, None, f"{len(subs)} submissions under the name {student}")
        for student, subs in sorted(by_student.items())
    ]


def default_jobs(limits: Limits) -> int:
    """As many parallel gradings as the cores and the memory hold at the profile's limits."""
    cores = len(os.sched_getaffinity(0))
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return max(1, min(int(cores // limits.cpus), memory_mb // limits.memory_mb))


def grade_all(
    submissions: Sequence[Submission],
    assignment: Assignment,
    *,
    out_dir: Path | None,
    jobs: int,
    profile: str = "ci",
    sandbox: str = "auto",
    seed: int | None = None,
    progress: str = "grading",
) -> list[BatchResult]:
    """Grade `submissions` `jobs` at a time with a progress bar; write `<student>.json/.html` into `out_dir`.

    Nothing a submission does stops the batch: each ends as one `BatchResult`, in the order given.
    """

    def one(sub: Submission) -> BatchResult:
        if sub.path is None:
            return BatchResult(sub.student, "invalid", sub.problem)
        try:
            report = grade(sub.path, assignment, profile=profile, sandbox=sandbox, seed=seed)
        except InvalidSubmission as exc:
            return BatchResult(sub.student, "invalid", str(exc))
        except GraderError as exc:
            return BatchResult(sub.student, "failed", str(exc))
        except Exception as exc:  # a bug on our side must not cost the other students their grades
            log.exception("%s: grading failed", sub.student)
            return BatchResult(sub.student, "failed", f"{type(exc).__name__}: {exc}")
        if out_dir is not None:
            write_reports(report, json_path=out_dir / f"{sub.student}.json", html_path=out_dir / f"{sub.student}.html")
        reason = report.sandbox.reason if report.sandbox else "ok"
        return BatchResult(sub.student, "graded", "" if reason == "ok" else f"run ended: {reason}", report)

    results: list[BatchResult | None] = [None] * len(submissions)
    start_worker()  # forked here, before any grading thread runs numpy (grader.theory.worker.start_worker)
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,  # each grading is a sandboxed subprocess
        tqdm(total=len(submissions), desc=progress, unit="notebook") as bar,
        logging_redirect_tqdm(),  # log lines above the bar, not through it
    ):
        futures = {pool.submit(one, sub): k for k, sub in enumerate(submissions)}
        for future in as_completed(futures):
            result = results[futures[future]] = future.result()
            bar.set_postfix_str(f"{result.student}: {result.status}", refresh=False)
            bar.update()
    return [r for r in results if r is not None]


def grade_folder(
    target: Path,
    assignment: Assignment,
    *,
    out_dir: Path,
    jobs: int | None = None,
    profile: str = "ci",
    sandbox: str = "auto",
    seed: int | None = None,
) -> list[BatchResult]:
    """Grade every submission of a folder or zip export: reports and `summary.csv` in `out_dir`."""
    with tempfile.TemporaryDirectory(prefix="dgm-batch-") as tmp:
        root = unpack(target, Path(tmp)) if target.is_file() else target
        submissions = find_submissions(root)
        if not submissions:
            raise InvalidSubmission(f"no notebooks in {target}")
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = jobs or default_jobs(assignment.rubric.profile(profile).limits)
        results = grade_all(
            submissions, assignment, out_dir=out_dir, jobs=jobs, profile=profile, sandbox=sandbox, seed=seed
        )
    write_summary(results, assignment, out_dir / SUMMARY_NAME)
    return results


def write_summary(results: Sequence[BatchResult], assignment: Assignment, path: Path) -> None:
    """One row per student: status, totals and the points of each task; spreadsheet-safe cells."""
    tasks = [task.id for task in assignment.rubric.tasks]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", "total", "max_total", "pending_manual", *tasks, "message"])
        for r in results:
            numbers: list[str] = [""] * (3 + len(tasks))
            if r.report is not None:
                per_task = [sum(i.points for i in r.report.items if i.task == t) for t in tasks]
                numbers = [f"{v:g}" for v in (r.report.total, r.report.max_total, r.report.pending_manual, *per_task)]
            writer.writerow(csv_cell(cell) for cell in [r.student, r.status, *numbers, r.message])


def _ignored(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == _IGNORED for p in parts)
