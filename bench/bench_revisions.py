"""Grading time of a solved notebook at this checkout against an earlier revision, as a ratio.

    python bench/bench_revisions.py [--baseline 7ce4c3f] [--assignment hw1] [--runs 2]

The baseline revision is checked out into a temporary git worktree and imported from there with this
checkout's virtual environment. Both sides grade the same notebook in the bwrap sandbox, each run in a
fresh interpreter, interleaved, so machine noise hits them alike: compare the ratio, not the seconds.
(7ce4c3f is the last revision before probes became queries to a kernel under its own uid.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRADE = """
import json, sys, time
from grader import grade, load_assignment
assignment = load_assignment(sys.argv[1])
start = time.perf_counter()
report = grade(assignment.solution_path, assignment, profile=sys.argv[2], sandbox="bwrap", seed=int(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - start, "auto": report.auto_total, "max": report.auto_max}))
"""


def _grade(root: Path, assignment: str, profile: str, seed: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root), "DGM_ASSIGNMENTS_DIR": str(root / "assignments")}
    out = subprocess.run(
        [sys.executable, "-c", GRADE, assignment, profile, str(seed)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="7ce4c3f")
    parser.add_argument("--assignment", default="hw1")
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dgm-bench-") as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.baseline], check=True)
        try:
            times: dict[str, list[float]] = {"baseline": [], "current": []}
            for run in range(args.runs):
                for side, root in (("baseline", old), ("current", REPO)):
                    result = _grade(root, args.assignment, args.profile, seed=run)
                    times[side].append(result["seconds"])
                    print(
                        f"run {run + 1}/{args.runs} {side:8s}: {result['seconds']:6.1f} s, "
                        f"{result['auto']:g}/{result['max']:g} automatic points",
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=True)
    old_s, new_s = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(
        f"{args.assignment} ({args.profile}): {new_s:.1f} s now, {old_s:.1f} s at {args.baseline}; "
        f"ratio {new_s / old_s:.3f}"
    )


if __name__ == "__main__":
    main()
