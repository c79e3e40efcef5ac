"""The `dgm-grader` command line (DESIGN.md fixes `grade`, `serve`, `worker`, `calibrate`; also `assign`,
`new-assignment`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from grader.children import stop_children
from grader.errors import GraderError

log = logging.getLogger("grader")


def _grade(args: argparse.Namespace) -> int:
    target = Path(args.notebook)
    if target.is_dir() or target.suffix.lower() == ".zip":
        return _grade_batch(args, target)
    from grader.pipeline import grade
    from grader.report import render_summary, write_reports

    report = grade(
        Path(args.notebook),
        args.assignment,
        profile=args.profile,
        sandbox=args.sandbox,
        seed=args.seed,
        executed_path=Path(args.executed) if args.executed else None,
    )
    write_reports(
        report,
        json_path=Path(args.json) if args.json else None,
        html_path=Path(args.html) if args.html else None,
        gradescope_path=Path(args.gradescope) if args.gradescope else None,
    )
    print(render_summary(report))
    return 0


def _grade_batch(args: argparse.Namespace, target: Path) -> int:
    from grader.assignment import load_assignment
    from grader.batch import SUMMARY_NAME, grade_folder
    from grader.sandbox import detect_backend

    if args.json or args.html or args.gradescope or args.executed:
        raise GraderError("--json, --html, --gradescope and --executed are for one notebook; a batch writes into --out")
    assignment = load_assignment(args.assignment)
    out = Path(args.out) if args.out else target.parent / f"{target.name.removesuffix('.zip')}-graded"
    results = grade_folder(
        target,
        assignment,
        out_dir=out,
        jobs=args.jobs,
        profile=args.profile,
        sandbox=detect_backend(args.sandbox),  # once, so that no sandbox fails the command, not every row
        seed=args.seed,
    )
    statuses = [r.status for r in results]
    print(", ".join(f"{statuses.count(s)} {s}" for s in ("graded", "invalid", "failed")) + f"; {out / SUMMARY_NAME}")
    for r in results:
        if r.status != "graded":
            print(f"  {r.student}: {r.status}: {r.message}")
    return 1 if "failed" in statuses else 0  # a failure on our side is never a score


def _assign(args: argparse.Namespace) -> int:
    from grader.authoring import write_notebooks
    from grader.batch import Submission, grade_all

    assignment = write_notebooks(args.assignment)
    print(f"{assignment.name}: wrote {assignment.template_path} and {assignment.solution_path}")
    if args.no_check:
        return 0
    checks = [Submission("solved", assignment.solution_path), Submission("template", assignment.template_path)]
    results = grade_all(
        checks,
        assignment,
        out_dir=None,
        jobs=args.jobs,
        profile=args.profile,
        sandbox=args.sandbox,
        progress="checking",
    )
    ok = True
    for r in results:
        if r.report is None:
            print(f"{r.student}: {r.status}: {r.message}")
            ok = False
            continue
        report, want = r.report, (r.report.auto_max if r.student == "solved" else 0.0)
        good = report.auto_total == want
        ok &= good
        verdict = "ok" if good else f"expected {want:g}"
        print(f"{r.student:>8}: {report.auto_total:g} / {report.auto_max:g} automatic points ({verdict})")
        for item in report.items:
            off = item.points < item.max_points if r.student == "solved" else item.points > 0
            if item.kind != "manual" and off:
                print(f"          {item.id}: {item.points:g} / {item.max_points:g}: {item.message}")
    return 0 if ok else 1


def _new_assignment(args: argparse.Namespace) -> int:
    from grader.scaffold import create_assignment

    folder = create_assignment(args.name, Path(args.dir) if args.dir else None)
    print(f"created {folder}: edit source.ipynb, rubric.yaml, probes.py and checks.py, then run dgm-grader assign")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from grader.calibrate import DEFAULT_RUNS, calibrate

    for profile in args.profile:
        baselines = calibrate(args.assignment, profile=profile, runs=args.runs or DEFAULT_RUNS, sandbox=args.sandbox)
        for item, entry in baselines.items():
            print(
                f"{args.assignment} {profile} {item}: median {entry['value']:.5g}, worst seed "
                f"{entry['worst_ratio']:.3f}x (runs: " + ", ".join(f"{v:.4g}" for v in entry["values"]) + ")"
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgm-grader", description="Sandboxed grading for the DGM course.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade one notebook, or a folder or zip of them, and write the reports")
    g.add_argument("notebook", help="a notebook, or a folder or zip export with one notebook per student")
    g.add_argument("--assignment", required=True, help="hwN, or an assignment folder")
    g.add_argument("--json", metavar="OUT", help="write the JSON report here")
    g.add_argument("--html", metavar="OUT", help="write the HTML feedback here")
    g.add_argument("--gradescope", metavar="OUT", help="write Gradescope's results.json here")
    g.add_argument("--executed", metavar="OUT", help="write the executed notebook here")
    g.add_argument("--profile", choices=["ci", "full"], default="ci")
    g.add_argument("--sandbox", choices=["auto", "bwrap", "docker", "none"], default="auto")
    g.add_argument("--seed", type=int, default=None, help="fix the probe seed (default: a secret random one)")
    g.add_argument("--out", metavar="DIR", help="batch: reports and summary.csv go here (default: NAME-graded/)")
    g.add_argument("--jobs", type=int, help="batch: parallel gradings (default: what the cores and memory hold)")
    g.set_defaults(func=_grade)

    a = sub.add_parser("assign", help="build the template and the solved notebook from source.ipynb, grade both")
    a.add_argument("assignment", help="hwN, or an assignment folder")
    a.add_argument("--no-check", action="store_true", help="only write the notebooks")
    a.add_argument("--profile", choices=["ci", "full"], default="ci")
    a.add_argument("--sandbox", choices=["auto", "bwrap", "docker", "none"], default="auto")
    a.add_argument("--jobs", type=int, default=2, help="grade the two notebooks in parallel (default) or not (1)")
    a.set_defaults(func=_assign)

    n = sub.add_parser("new-assignment", help="create an assignment folder that `assign` accepts")
    n.add_argument("name", help="the folder name, e.g. hw4")
    n.add_argument("--dir", help="the assignments folder (default: DGM_ASSIGNMENTS_DIR or ./assignments)")
    n.set_defaults(func=_new_assignment)

    c = sub.add_parser("calibrate", help="grade the reference solution and store its metric baselines")
    c.add_argument("assignment")
    c.add_argument("--profile", choices=["ci", "full"], action="append", help="default: ci")
    c.add_argument("--runs", type=int, help="calibration seeds (default: 10)")
    c.add_argument("--sandbox", choices=["auto", "bwrap", "docker", "none"], default="auto")
    c.set_defaults(func=_calibrate)

    for module in ("grader.metrics.commands", "server.commands"):
        try:
            register = __import__(module, fromlist=["register"]).register
        except ImportError as exc:  # an optional part that is not installed
            log.debug("%s not available: %s", module, exc)
            continue
        register(sub)
    return parser


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so the `finally` below stops our children


def main(argv: list[str] | None = None) -> int:
    """Run one command. Heavy modules (torch, sympy, FastAPI, SQLAlchemy) load in the command that needs
    them, so ``--help`` answers at once; child processes stop when the command ends, however it ends."""
    args = build_parser().parse_args(argv)
    if getattr(args, "profile", None) is None and args.command == "calibrate":
        args.profile = ["ci"]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return int(args.func(args) or 0)
    except GraderError as exc:
        print(f"dgm-grader: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        stop_children()


if __name__ == "__main__":
    sys.exit(main())
