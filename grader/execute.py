"""Stage 2, execute: lay out the job directory and run the notebook, then the probes' queries, in the sandbox.

What enters the sandbox: the grading notebook; `inputs/` with the orchestrator's config and one file
pair per query (the probe's name, budget and derived seed; the arrays the host chose for it); and
read-only in `/opt/dgm` the orchestrator, the kernel-side kit and the assignment's `probes.py`.
`inputs/` is readable by the orchestrator's uid only: the student's kernel sees a query's arrays when it
is asked that query, after the notebook ran, and never sees the run's seed. The rubric, the checks, the
baselines and the reference solutions stay on the host.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
from nbformat import NotebookNode
from safetensors.numpy import save_file

from grader import sandbox
from grader.assignment import Assignment
from grader.errors import AssignmentError
from grader.rubric import Limits

RUNNER_DIR = Path(__file__).parent / "runner"
OUTPUT_CAP_BYTES = 256 * 1024
# The job directory. The orchestrator's uid owns it; the kernel may write only to `work` (a size-limited
# tmpfs in isolating backends) and read a query's files in `queries` while it answers that query.
PRIVATE_DIRS = {"inputs": 0o700, "out": 0o700, "queries": 0o711, "runtime": 0o711}


def probe_seed(seed: int, probe: str) -> int:
    """The seed a probe's queries carry: derived from the run's secret seed, which never leaves the host."""
    digest = hashlib.sha256(f"{seed}:{probe}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def write_queries(
    assignment: Assignment, profile: str, seed: int, inputs: dict[str, np.ndarray], directory: Path
) -> list[dict[str, Any]]:
    """One `qN.json` (+ `qN.safetensors`) per query in `directory`; returns the orchestrator's query list."""
    spec = assignment.rubric.profile(profile)
    threads = max(1, math.ceil(spec.limits.cpus))
    queries: list[dict[str, Any]] = []
    for decl in assignment.probes():
        missing = sorted({*decl.needs, *([decl.steps] if decl.steps else [])} - inputs.keys())
        if missing:
            raise AssignmentError(
                f"{assignment.name}: probe {decl.name} needs inputs {missing} that checks.py did not make"
            )
        arrays = {k: inputs[k] for k in decl.needs}
        steps = [{decl.steps: inputs[decl.steps][s]} for s in range(len(inputs[decl.steps]))] if decl.steps else [{}]
        for step, extra in enumerate(steps):
            name = f"q{len(queries)}"
            meta = {
                "probe": decl.name,
                "step": step,
                "seed": probe_seed(seed, decl.name),
                "budget": spec.budgets.get(decl.name, {}),
                "threads": threads,
            }
            (directory / f"{name}.json").write_text(json.dumps(meta))
            if arrays or extra:
                tensors = {k: np.ascontiguousarray(v) for k, v in (arrays | extra).items()}
                save_file(tensors, str(directory / f"{name}.safetensors"))
            queries.append(
                {
                    "probe": decl.name,
                    "step": step,
                    "stepped": decl.steps is not None,
                    "file": name,
                    "timeout_s": spec.limits.probe_timeout_s,
                }
            )
    return queries


def execute(
    notebook: NotebookNode,
    assignment: Assignment,
    *,
    profile: str,
    seed: int,
    inputs: dict[str, np.ndarray],
    workdir: Path,
    backend: str,
) -> sandbox.SandboxResult:
    """Run `notebook`, then every probe query; the job's files land in `workdir / 'job'`."""
    limits: Limits = assignment.rubric.profile(profile).limits
    job = workdir / "job"
    for name, mode in {".": 0o711, **PRIVATE_DIRS, "work": 0o1777}.items():
        (job / name).mkdir(exist_ok=True)
        (job / name).chmod(mode)
    nbformat.write(notebook, str(job / "grading.ipynb"))
    config = {
        "cell_timeout_s": limits.cell_timeout_s,
        "wall_s": limits.wall_s,
        "output_cap_bytes": OUTPUT_CAP_BYTES,
        "queries": write_queries(assignment, profile, seed, inputs, job / "inputs"),
    }
    (job / "inputs" / "config.json").write_text(json.dumps(config))

    opt = workdir / "opt"
    opt.mkdir()
    for name in ("run_notebook.py", "harness.py"):
        shutil.copy(RUNNER_DIR / name, opt / name)
    if assignment.probes_path.exists():
        shutil.copy(assignment.probes_path, opt / "probes.py")

    return sandbox.run(
        ["python", "/opt/dgm/run_notebook.py"],
        job,
        sandbox.Limits(wall_s=limits.wall_s, memory_bytes=limits.memory_mb * 2**20, pids=limits.pids, cpus=limits.cpus),
        backend=backend,
        ro_binds={"/opt/dgm": opt},
        kernel_identity=True,
    )
