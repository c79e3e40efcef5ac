"""Stage 3, collect: read and validate what the sandbox left in the job directory.

Every file there was writable by student code: it may be missing, huge, malformed, a symlink to a host
secret, or a FIFO. Files are opened with O_NOFOLLOW, must be regular, are read up to a size cap, parsed
as JSON (pydantic-validated) or safetensors (never pickle), and problems become messages, not crashes.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nbformat
import numpy as np
from nbformat import NotebookNode
from pydantic import BaseModel, Field, ValidationError
from safetensors.numpy import load as load_safetensors

MAX_JSON_BYTES = 4 * 2**20
MAX_TENSOR_FILE_BYTES = 512 * 2**20
MAX_TENSOR_TOTAL_BYTES = 2 * 2**30  # all reply files together (the orchestrator refuses replies beyond this too)
MAX_EXECUTED_BYTES = 64 * 2**20
ALLOWED_DTYPES = {np.dtype(t) for t in ("float32", "float64", "int64", "int32", "bool", "uint8")}


class CellStatus(BaseModel):
    index: int
    id: str = Field(default="", max_length=200)
    status: Literal["ok", "error", "timeout", "kernel_died", "not_run"]
    detail: str = Field(default="", max_length=4000)
    truncated: bool = False


class ProbeRecord(BaseModel):
    status: Literal["ok", "error", "timeout", "skipped"]
    message: str = Field(default="", max_length=4000)
    duration_s: float = 0.0
    values: dict[str, float | int | str | bool] = Field(default_factory=dict)


class QueryRecord(ProbeRecord):
    probe: str = Field(max_length=200)
    step: int = Field(default=0, ge=0)
    stepped: bool = False
    tensors: str | None = Field(default=None, pattern=r"^[0-9]+\.safetensors$")


class RunStatus(BaseModel):
    cells: list[CellStatus]
    queries: list[QueryRecord] = Field(default_factory=list)
    kernel_died: bool = False
    complete: bool = False
    duration_s: float = 0.0


@dataclass
class Artifacts:
    status: RunStatus | None = None
    probes: dict[str, ProbeRecord] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    executed: NotebookNode | None = None
    problems: list[str] = field(default_factory=list)


def read_untrusted(path: Path, max_bytes: int) -> bytes | None:
    """Read a regular file without following symlinks; None if absent. Raises ValueError if unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path.name}: cannot be opened ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name}: not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path.name}: {info.st_size} bytes exceeds the limit of {max_bytes}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path.name}: exceeds the limit of {max_bytes} bytes")
    return data


def collect(job_dir: Path) -> Artifacts:
    """Validate what the orchestrator wrote in `out/`; never raises, whatever is there."""
    art = Artifacts()
    try:
        _collect(job_dir / "out", art)
    except Exception as exc:  # a bug here must not cost the student a report
        art.problems.append(f"results unreadable: {type(exc).__name__}: {str(exc)[:300]}")
    return art


def _collect(out: Path, art: Artifacts) -> None:
    if out.is_symlink() or not out.is_dir():
        art.problems.append("the output directory was replaced; no results could be read")
        return
    try:
        raw = read_untrusted(out / "status.json", MAX_JSON_BYTES)
        if raw is not None:
            art.status = RunStatus.model_validate_json(raw)
    except (ValueError, ValidationError) as exc:
        art.problems.append(f"run status unreadable: {str(exc).splitlines()[0]}")
    budget = [MAX_TENSOR_TOTAL_BYTES]
    for query in art.status.queries if art.status else []:
        merge_query(art, query, _reply_tensors(out, query, art, budget))
    try:
        raw = read_untrusted(out / "executed.ipynb", MAX_EXECUTED_BYTES)
        if raw is not None:
            art.executed = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        art.problems.append(f"executed notebook unreadable: {str(exc).splitlines()[0][:300]}")


def _reply_tensors(out: Path, query: QueryRecord, art: Artifacts, budget: list[int]) -> dict[str, np.ndarray]:
    """One reply's tensors; `budget` holds the bytes all replies may still use, and shrinks."""
    if query.status != "ok" or query.tensors is None:
        return {}
    try:
        raw = read_untrusted(out / "replies" / query.tensors, min(MAX_TENSOR_FILE_BYTES, budget[0]))
        budget[0] -= len(raw or b"")
        tensors = load_safetensors(raw) if raw is not None else {}
        bad = sorted(k for k, v in tensors.items() if v.dtype not in ALLOWED_DTYPES)
        if bad:
            raise ValueError(f"unexpected dtypes for {bad}")
        return tensors
    except Exception as exc:  # safetensors raises its own error types on malformed headers
        query.status, query.message = "error", f"the probe's tensors are unreadable: {str(exc).splitlines()[0][:300]}"
        art.problems.append(f"{query.probe}: {query.message}")
        return {}


def merge_query(art: Artifacts, query: QueryRecord, tensors: dict[str, np.ndarray]) -> None:
    """Fold one query into its probe's record: a stepped probe is ok only if every step is."""
    prefix = f"{query.probe}/{query.step}/" if query.stepped else f"{query.probe}/"
    art.tensors.update({prefix + key: value for key, value in tensors.items()})
    record = art.probes.get(query.probe)
    if record is None:
        art.probes[query.probe] = ProbeRecord.model_validate(query.model_dump(include=set(ProbeRecord.model_fields)))
    else:
        record.values.update(query.values)
        record.duration_s += query.duration_s
        if record.status == "ok" and query.status != "ok":
            record.status, record.message = query.status, f"step {query.step}: {query.message}"
