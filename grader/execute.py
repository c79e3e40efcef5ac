"""Stage 2, execute: lay out the job directory and run the notebook and probes in the sandbox.

What enters the sandbox: the grading notebook, `inputs/` (config with the secret seed, tensors the
probes need), and read-only in `/opt/dgm` the runner, the harness and the assignment's `probes.py`.
The rubric, the checks, the baselines and the reference solutions stay on the host.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import nbformat
import numpy as np
from nbformat import NotebookNode
from safetensors.numpy import save_file

from grader import sandbox
from grader.assignment import Assignment
from grader.rubric import Limits

RUNNER_DIR = Path(__file__).parent / "runner"
OUTPUT_CAP_BYTES = 256 * 1024


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
    """Run `notebook` then the assignment's probes; the job's files land in `workdir / 'job'`."""
    spec = assignment.rubric.profile(profile)
    limits: Limits = spec.limits
    job = workdir / "job"
    (job / "inputs").mkdir(parents=True)
    (job / "out").mkdir()
    nbformat.write(notebook, str(job / "grading.ipynb"))
    config = {
        "seed": seed,
        "profile": profile,
        "budgets": spec.budgets,
        "cell_timeout_s": limits.cell_timeout_s,
        "probe_timeout_s": limits.probe_timeout_s,
        "probes_timeout_s": limits.wall_s,
        "output_cap_bytes": OUTPUT_CAP_BYTES,
        "threads": max(1, math.ceil(limits.cpus)),
    }
    (job / "inputs" / "config.json").write_text(json.dumps(config))
    if inputs:
        save_file({k: np.ascontiguousarray(v) for k, v in inputs.items()}, str(job / "inputs" / "data.safetensors"))

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
    )
