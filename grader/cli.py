"""The `dgm-grader` command line (DESIGN.md fixes `grade`, `serve`, `worker`, `calibrate`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from grader.errors import GraderError

log = logging.getLogger("grader")


def _grade(args: argparse.Namespace) -> int:
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


def _calibrate(args: argparse.Namespace) -> int:
    from grader.calibrate import calibrate

    for profile in args.profile:
        baselines = calibrate(args.assignment, profile=profile, runs=args.runs, sandbox=args.sandbox)
        for item, entry in baselines.items():
            print(
                f"{args.assignment} {profile} {item}: {entry['value']:.5g} (runs: "
                + ", ".join(f"{v:.4g}" for v in entry["values"])
                + ")"
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgm-grader", description="Sandboxed grading for the DGM course.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade one notebook and write its report")
    g.add_argument("notebook")
    g.add_argument("--assignment", required=True, help="hwN, or an assignment folder")
    g.add_argument("--json", metavar="OUT", help="write the JSON report here")
    g.add_argument("--html", metavar="OUT", help="write the HTML feedback here")
    g.add_argument("--gradescope", metavar="OUT", help="write Gradescope's results.json here")
    g.add_argument("--executed", metavar="OUT", help="write the executed notebook here")
    g.add_argument("--profile", choices=["ci", "full"], default="ci")
    g.add_argument("--sandbox", choices=["auto", "bwrap", "docker", "none"], default="auto")
    g.add_argument("--seed", type=int, default=None, help="fix the probe seed (default: a secret random one)")
    g.set_defaults(func=_grade)

    c = sub.add_parser("calibrate", help="grade the reference solution and store its metric baselines")
    c.add_argument("assignment")
    c.add_argument("--profile", choices=["ci", "full"], action="append", help="default: ci")
    c.add_argument("--runs", type=int, default=3)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "profile", None) is None and args.command == "calibrate":
        args.profile = ["ci"]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except GraderError as exc:
        print(f"dgm-grader: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
