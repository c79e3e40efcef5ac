"""Time to grade one notebook, and the sandbox's overhead as a ratio against the same run without isolation.

    python bench/bench_grade.py [--assignment hw1] [--runs 2]

Both variants run in one process, interleaved, so machine noise hits them alike; the ratio is what to
compare across machines, not the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from grader import grade, load_assignment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="hw1")
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    assignment = load_assignment(args.assignment)
    times: dict[str, list[float]] = {"bwrap": [], "none": []}
    for run in range(args.runs):
        for backend in times:
            start = time.perf_counter()
            report = grade(assignment.solution_path, assignment, profile=args.profile, sandbox=backend, seed=run)
            times[backend].append(time.perf_counter() - start)
            print(
                f"run {run + 1}/{args.runs} {backend:5s}: {times[backend][-1]:6.1f} s, "
                f"{report.auto_total:g}/{report.auto_max:g} automatic points",
                flush=True,
            )
    sandboxed, bare = statistics.median(times["bwrap"]), statistics.median(times["none"])
    print(
        f"{args.assignment} ({args.profile}): {sandboxed:.1f} s per notebook in the bwrap sandbox, "
        f"{bare:.1f} s without isolation; overhead ratio {sandboxed / bare:.3f}"
    )


if __name__ == "__main__":
    main()
