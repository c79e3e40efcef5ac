"""Answer an assignment's probe queries in this process, on a namespace of reference objects.

The sandbox's orchestrator sends the same queries (`grader.execute.write_queries`) to a student's kernel;
here `harness.run_query` answers them directly, so checks can be tested against known-good and known-bad
models in seconds. Only for trusted code: the host never runs a student's code this way.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

from grader.assignment import Assignment
from grader.collect import Artifacts, QueryRecord, merge_query
from grader.execute import write_queries

HARNESS = Path(__file__).resolve().parents[1] / "grader" / "runner" / "harness.py"


def fresh_harness(probes_path: Path) -> Any:
    """A new instance of the kernel-side kit with `probes_path` registered (probes import it as `harness`)."""
    spec = importlib.util.spec_from_file_location("harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get("harness")
    sys.modules["harness"] = module
    try:
        spec.loader.exec_module(module)
        module.load_probes(probes_path)
    finally:
        if previous is not None:
            sys.modules["harness"] = previous
        else:
            del sys.modules["harness"]
    return module


def answer_locally(
    assignment: Assignment,
    ns: dict[str, Any],
    *,
    profile: str,
    seed: int,
    inputs: dict[str, np.ndarray],
    budgets: dict[str, dict[str, Any]] | None = None,
) -> Artifacts:
    """Every query of `assignment` answered from `ns`, folded into Artifacts as `collect` would."""
    harness = fresh_harness(assignment.probes_path)
    art = Artifacts()
    with tempfile.TemporaryDirectory() as tmp:
        queries = write_queries(assignment, profile, seed, inputs, Path(tmp))
        for query in queries:
            meta = json.loads((Path(tmp) / f"{query['file']}.json").read_text())
            if budgets is not None:
                meta["budget"] = budgets.get(query["probe"], {})
            tensors_path = Path(tmp) / f"{query['file']}.safetensors"
            data = load_file(str(tensors_path)) if tensors_path.exists() else {}
            reply = harness.run_query(meta, data, ns)
            tensors = {k: v.numpy() for k, v in reply.pop("tensors").items()}
            record = QueryRecord(probe=query["probe"], step=query["step"], stepped=query["stepped"], **reply)
            merge_query(art, record, tensors)
    return art
