"""`dgm-grader grade` of the toy assignment against nbgrader's `autograde` of the same notebook.

    .venv/bin/python bench/bench_nbgrader.py [--runs 3] [--sandbox auto] [--cache ~/.cache/dgm-grader/bench]

nbgrader (pinned below) is installed from PyPI into a venv of its own under the cache folder, once. Its
kernel is this venv's interpreter (a kernelspec in nbgrader's venv), so both graders run the student's
code with the same torch. ``bench/nbgrader_toy.ipynb`` is tests/grader/toy written for nbgrader: the
same solution, and the toy's checks as autograder tests (the shell fraction with sympy, ``square()`` on 32
inputs, a line fitted for 50 Adam steps; the proof is graded by hand in both). Each run times both
command lines end to end, interleaved, so machine noise hits them alike; the ratio of the medians is what
to compare across machines (target: dgm-grader at most 0.8x nbgrader's time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NBGRADER_VERSION = "0.9.6"
TARGET_RATIO = 0.8
REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "grader" / "toy"
NOTEBOOK = Path(__file__).with_name("nbgrader_toy.ipynb")
KERNEL = "dgm-bench"  # the kernelspec name in nbgrader_toy.ipynb
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgm-grader" / "bench"


def nbgrader_venv(cache: Path) -> Path | None:
    """A venv with nbgrader and a kernelspec that runs this interpreter, built on the first run (None when
    pip cannot install nbgrader, e.g. offline)."""
    venv = cache / f"nbgrader-{NBGRADER_VERSION}"
    done = venv / ".installed"
    if not done.exists():
        print(f"installing nbgrader {NBGRADER_VERSION} into {venv} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if subprocess.run([*pip, f"nbgrader=={NBGRADER_VERSION}"]).returncode != 0:
            return None
        done.write_text(NBGRADER_VERSION)
    spec = venv / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "dgm-grader's venv", "language": "python"}))
    return venv


def nbgrader_course(root: Path, venv: Path) -> None:
    """A course folder with the toy released and alice's solved copy submitted."""
    (root / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(root)!r}\nc.CourseDirectory.course_id = 'toy'\n"
        "c.Execute.timeout = 60\n"
    )
    source = root / "source" / "toy"
    source.mkdir(parents=True)
    shutil.copy(NOTEBOOK, source / "toy.ipynb")
    nbgrader(venv, root, "generate_assignment", "toy", "--force")
    submitted = root / "submitted" / "alice" / "toy"
    submitted.mkdir(parents=True)
    shutil.copy(NOTEBOOK, submitted / "toy.ipynb")  # solved: the source with its solutions


def venv_env(venv: Path) -> dict[str, str]:
    """The environment of an activated venv: nbgrader runs its own tools (alembic) from PATH."""
    return {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}


def nbgrader(venv: Path, root: Path, *args: str) -> None:
    argv = [str(venv / "bin" / "nbgrader"), *args]
    out = subprocess.run(argv, cwd=root, env=venv_env(venv), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{out.stdout}{out.stderr}")


def nbgrader_score(venv: Path, root: Path) -> str:
    """alice's automatic score as nbgrader's gradebook has it."""
    code = (
        "from nbgrader.api import Gradebook\n"
        f"with Gradebook('sqlite:///{root / 'gradebook.db'}') as gb:\n"
        "    s = gb.find_submission('toy', 'alice')\n"
        "    print(f'{s.code_score:g}/{s.max_code_score:g} automatic points,'\n"
        "          f' needs manual grading: {s.needs_manual_grade}')"
    )
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sandbox", default="auto", help="dgm-grader's --sandbox (default: what `grade` picks)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    venv = nbgrader_venv(args.cache)
    if venv is None:
        print(f"nbgrader not measured: pip could not install nbgrader=={NBGRADER_VERSION}", file=sys.stderr)
        return
    dgm_grader = Path(sys.executable).with_name("dgm-grader")
    times: dict[str, list[float]] = {"dgm-grader": [], "nbgrader": []}
    with tempfile.TemporaryDirectory(prefix="dgm-bench-nbgrader-") as tmp:
        root = Path(tmp)
        nbgrader_course(root, venv)
        report = root / "report.json"
        grade = [str(dgm_grader), "grade", str(TOY / "solution.ipynb"), "--assignment", str(TOY)]
        commands = {
            "dgm-grader": ([*grade, "--sandbox", args.sandbox, "--json", str(report)], REPO),
            "nbgrader": ([str(venv / "bin" / "nbgrader"), "autograde", "toy", "--force"], root),
        }
        envs = {"dgm-grader": None, "nbgrader": venv_env(venv)}
        for run in range(args.runs):
            for name, (argv, cwd) in commands.items():
                start = time.perf_counter()
                out = subprocess.run(argv, cwd=cwd, env=envs[name], capture_output=True, text=True)
                times[name].append(time.perf_counter() - start)
                if out.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{out.stdout}{out.stderr}")
                print(f"run {run + 1}/{args.runs} {name:<10}: {times[name][-1]:5.2f} s", flush=True)
        ours = json.loads(report.read_text())
        auto, pending = f"{ours['auto_total']:g}/{ours['auto_max']:g}", f"{ours['pending_manual']:g}"
        print(f"dgm-grader: {auto} automatic points, {pending} points pending manual grading")
        print(f"nbgrader:   {nbgrader_score(venv, root).strip()}")
    ours_s, theirs_s = statistics.median(times["dgm-grader"]), statistics.median(times["nbgrader"])
    ratio = ours_s / theirs_s
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(
        f"toy notebook, median of {args.runs}: dgm-grader grade {ours_s:.2f} s, nbgrader {NBGRADER_VERSION} "
        f"autograde {theirs_s:.2f} s; ratio {ratio:.2f}x ({verdict} the target of {TARGET_RATIO:g}x)"
    )


if __name__ == "__main__":
    main()
