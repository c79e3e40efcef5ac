"""Startup overhead of the bwrap sandbox against the unsandboxed `none` backend.

    .venv/bin/python bench/bench_sandbox.py [-n 20]

Runs a trivial `python -c "print(1)"` N times through each backend (after one warm-up run) and
prints the median wall time per run, as measured around `grader.sandbox.run` (cgroup setup and
teardown, uid slot, seccomp filter and bwrap included), and the ratio bwrap / none. A bare
`subprocess.run` of the same command is shown for reference.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from grader.sandbox import Limits, run

COMMAND = ["python", "-c", "print(1)"]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm-up: page cache, seccomp filter, cgroup discovery
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="runs per variant (default 20)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the none backend warns on every run

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp)

        def sandboxed(backend: str) -> Callable[[], object]:
            def once() -> None:
                result = run(COMMAND, job, Limits(wall_s=60), backend=backend)
                if result.reason != "ok":
                    raise SystemExit(f"{backend}: {result.message}\n{result.stderr}")

            return once

        variants = {
            "bare subprocess": lambda: subprocess.run([sys.executable, *COMMAND[1:]], check=True, capture_output=True),
            "none": sandboxed("none"),
            "bwrap": sandboxed("bwrap"),
        }
        medians = {}
        for name, fn in variants.items():
            times = timed(fn, args.n)
            medians[name] = statistics.median(times)
            ms = [t * 1000 for t in times]
            print(f"{name:16s} median {medians[name] * 1000:7.1f} ms  (min {min(ms):.1f}, max {max(ms):.1f})")
    ratio = medians["bwrap"] / medians["none"]
    extra_ms = (medians["bwrap"] - medians["none"]) * 1000
    print(f"bwrap / none = {ratio:.2f}x  (+{extra_ms:.1f} ms per run)")


if __name__ == "__main__":
    main()
