"""How fair the scores are across seeds: each solved notebook graded on N random seeds.

    python bench/bench_seeds.py [hw1 hw2 ...] [-n 20] [--notebooks 'tests/fixtures/*/correct/*.ipynb'] [--seeds 3 17]

Prints, per notebook and rubric item, on how many seeds the item got full points and, for metrics, the
range of the ratio to the calibrated reference value; then how many seeds got every automatic point.
The goal is N of N for every correct notebook. Extra notebooks (`--notebooks`, a glob) are graded as
the homework named by a folder on their path (`.../hw2/...`). Grading runs in the bwrap sandbox.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
from collections import defaultdict
from glob import glob
from pathlib import Path

from grader import Report, grade, list_assignments


def _assignment_of(path: Path, names: set[str]) -> str:
    for part in reversed(path.parts):
        if part in names:
            return part
    raise SystemExit(f"{path}: no folder on its path names a homework ({', '.join(sorted(names))})")


def _summary(reports: list[Report]) -> list[str]:
    full: dict[str, int] = defaultdict(int)
    ratios: dict[str, list[float]] = defaultdict(list)
    for report in reports:
        for item in report.items:
            if item.kind == "manual":
                continue
            full[item.id] += item.points >= item.max_points
            if isinstance(ratio := item.details.get("ratio"), float):
                ratios[item.id].append(ratio)
    n = len(reports)
    lines = []
    for item_id, count in full.items():
        line = f"  {item_id:28s} full points {count:2d}/{n}"
        if values := ratios[item_id]:
            line += f"   ratio {min(values):.3f} .. {max(values):.3f} (median {statistics.median(values):.3f})"
        lines.append(line)
    complete = sum(r.auto_total >= r.auto_max for r in reports)
    lines.append(f"  every automatic point on {complete}/{n} seeds")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="homeworks whose solved notebook to grade (default: all)")
    parser.add_argument("-n", "--runs", type=int, default=20, help="random seeds per notebook")
    parser.add_argument("--seeds", type=int, nargs="+", help="these seeds instead of random ones")
    parser.add_argument("--notebooks", help="a glob of further notebooks to grade the same way")
    parser.add_argument("--profile", default="ci")
    args = parser.parse_args()

    assignments = {a.name: a for a in list_assignments()}
    names = args.assignments or ([] if args.notebooks else sorted(assignments))
    notebooks = [(assignments[name].solution_path, name) for name in names]
    if args.notebooks:
        notebooks += [(Path(p), _assignment_of(Path(p), set(assignments))) for p in sorted(glob(args.notebooks))]
    seeds = args.seeds or [secrets.randbits(31) for _ in range(args.runs)]
    print(f"seeds: {' '.join(map(str, seeds))}", flush=True)
    for path, name in notebooks:
        reports = []
        for seed in seeds:
            report = grade(path, assignments[name], profile=args.profile, sandbox="bwrap", seed=seed)
            shown = " ".join(
                f"{i.id} {i.points:g}/{i.max_points:g}"
                + (f" ({ratio:.3f}x)" if isinstance(ratio := i.details.get("ratio"), float) else "")
                for i in report.items
                if i.kind != "manual" and (i.points < i.max_points or i.kind == "metric")
            )
            print(f"{name} {path.name} seed {seed}: {report.auto_total:g}/{report.auto_max:g}  {shown}", flush=True)
            reports.append(report)
        print(f"{name} {path} ({args.profile}, {len(seeds)} seeds):", *_summary(reports), sep="\n", flush=True)


if __name__ == "__main__":
    main()
