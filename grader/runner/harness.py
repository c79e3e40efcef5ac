"""The probe harness: runs an assignment's probes in the student's kernel, inside the sandbox.

Standalone on purpose (stdlib, numpy, torch, safetensors): it is copied into the sandbox read-only
and must never import `grader`. Probes only *produce data* (tensors and JSON scalars); every score is
computed on the host from what they write. Everything written here is untrusted once the student's
code has run in the same process, and the host validates it again.
"""

from __future__ import annotations

import json
import math
import os
import runpy
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file

INPUTS = Path("inputs")
OUT = Path("out")
_MAX_MESSAGE = 2000
_MAX_TENSOR_BYTES = 64 * 2**20

ProbeFn = Callable[["ProbeContext"], None]
_PROBES: list[tuple[str, ProbeFn, float | None]] = []


class ProbeError(Exception):
    """A probe found the student's code unusable; the message is shown to the student."""


class ProbeTimeout(BaseException):
    """Raised by the alarm handler; a BaseException so that `except Exception` cannot swallow it."""


def probe(name: str, *, timeout_s: float | None = None) -> Callable[[ProbeFn], ProbeFn]:
    """Register `fn` as the probe `name`; probes run in registration order."""

    def register(fn: ProbeFn) -> ProbeFn:
        _PROBES.append((name, fn, timeout_s))
        return fn

    return register


class ProbeContext:
    """What one probe sees: the kernel namespace, the seed, its budget, the inputs, and its outputs."""

    def __init__(
        self,
        name: str,
        ns: dict[str, Any],
        config: dict[str, Any],
        data: dict[str, torch.Tensor],
        shared: dict[str, Any],
        tensors: dict[str, torch.Tensor],
    ) -> None:
        self.name = name
        self.ns = ns
        self.seed = int(config["seed"])
        self.profile = str(config["profile"])
        self.budget: dict[str, Any] = dict(config.get("budgets", {}).get(name, {}))
        self.data = data
        self.shared = shared
        self.values: dict[str, float | int | str | bool] = {}
        self._tensors = tensors

    def get(self, name: str) -> Any:
        """The student's object called `name`, or a ProbeError saying it is missing."""
        if name not in self.ns:
            raise ProbeError(f"{name} is not defined (did its cell run without errors?)")
        return self.ns[name]

    def save(self, key: str, tensor: Any) -> None:
        """Store a tensor for the host under `<probe>/<key>`."""
        t = torch.as_tensor(tensor).detach().cpu().contiguous()
        if t.dtype not in (torch.float32, torch.float64, torch.int64, torch.int32, torch.bool, torch.uint8):
            t = t.to(torch.float32)
        if t.numel() * t.element_size() > _MAX_TENSOR_BYTES:
            raise ProbeError(f"{key}: tensor of {t.numel() * t.element_size()} bytes is too large")
        self._tensors[f"{self.name}/{key}"] = t.clone()

    def record(self, key: str, value: float | int | str | bool) -> None:
        """Store a JSON scalar for the host."""
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        self.values[key] = value if isinstance(value, bool | int | float | str) else str(value)

    def train(self, model: torch.nn.Module, images: torch.Tensor, *, loss_key: str = "total_loss") -> list[float]:
        """`train` under this probe's budget (`steps`, `batch_size`, `lr`); saves the loss curve as `losses`."""
        losses = train(
            model,
            images,
            steps=int(self.budget["steps"]),
            batch_size=int(self.budget["batch_size"]),
            lr=float(self.budget["lr"]),
            seed=self.seed,
            loss_key=loss_key,
        )
        self.save("losses", torch.tensor(losses))
        self.record("first_loss", losses[0])
        self.record("last_loss", sum(losses[-10:]) / len(losses[-10:]))
        return losses

    def generator(self, offset: int = 0) -> torch.Generator:
        """A torch.Generator seeded from the run's secret seed (and this probe's name)."""
        g = torch.Generator()
        g.manual_seed((self.seed + offset + sum(map(ord, self.name))) % 2**63)
        return g


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start : start + batch_size]


def train(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    loss_key: str = "total_loss",
    clip_grad: float | None = 1.0,
) -> list[float]:
    """The grader's own training loop: Adam, seeded batch order, `model.loss(x)[loss_key]`."""
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ProbeError("the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    losses: list[float] = []
    batches = _batches(len(images), min(batch_size, len(images)), generator)
    for _ in range(int(steps)):
        out = cast(Any, model).loss(images[next(batches)])
        if not isinstance(out, dict) or loss_key not in out:
            raise ProbeError(f"loss() must return a dict with key {loss_key!r}, got {type(out).__name__}")
        loss = out[loss_key]
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ProbeError(f"loss()[{loss_key!r}] must be a scalar tensor")
        if not torch.isfinite(loss):
            raise ProbeError(f"loss()[{loss_key!r}] became {loss.item()} after {len(losses)} steps")
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            if clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _on_alarm(signum: int, frame: Any) -> None:
    raise ProbeTimeout


def _write(results: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    OUT.mkdir(exist_ok=True)
    tmp = OUT / "outputs.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, OUT / "outputs.safetensors")
    tmp = OUT / "probes.json.tmp"
    tmp.write_text(json.dumps({"probes": results}))
    os.replace(tmp, OUT / "probes.json")


def run_probes(probes_path: str, ns: dict[str, Any]) -> None:
    """Run every probe of `probes_path` against the kernel namespace `ns`; write `out/`."""
    config = json.loads((INPUTS / "config.json").read_text())
    data_file = INPUTS / "data.safetensors"
    data = load_file(str(data_file)) if data_file.exists() else {}
    torch.set_num_threads(int(config.get("threads", 1)))
    _PROBES.clear()
    runpy.run_path(probes_path, run_name="dgm_probes")
    default_timeout = float(config.get("probe_timeout_s", 120))
    shared: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    results: dict[str, Any] = {}
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for index, (name, fn, timeout_s) in enumerate(_PROBES):
            ctx = ProbeContext(name, ns, config, data, shared, tensors)
            torch.manual_seed(ctx.seed + index)
            status, message = "ok", ""
            start = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, timeout_s or default_timeout)
            try:
                fn(ctx)
            except ProbeTimeout:
                status, message = "timeout", f"probe exceeded {timeout_s or default_timeout:g} s"
            except ProbeError as exc:
                status, message = "error", str(exc)
            except Exception as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                where = next(
                    (f"line {f.lineno} of {f.name}" for f in reversed(frames) if not f.filename.startswith("/opt/dgm")),
                    "",
                )
                status, message = "error", f"{type(exc).__name__}: {exc}" + (f" (in {where})" if where else "")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            results[name] = {
                "status": status,
                "message": message[:_MAX_MESSAGE],
                "duration_s": round(time.monotonic() - start, 3),
                "values": ctx.values,
            }
            _write(results, tensors)
    finally:
        signal.signal(signal.SIGALRM, previous)
