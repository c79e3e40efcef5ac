"""Stage 4, check: the host side of every rubric item, and the API an assignment's `checks.py` uses.

An assignment's checks compute the oracle side on the host (reference solutions on the same inputs,
metrics from returned tensors, property checks) and return a `CheckResult`. Theory items are checked
here too, from the student's markdown, by `grader.theory`; manual items are left pending.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.collect import Artifacts, ProbeRecord
from grader.errors import ArtifactError, AssignmentError
from grader.results import Figure
from grader.rubric import Rubric

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

InputsFn = Callable[[str, int], dict[str, np.ndarray]]


def stub_calls(text: object) -> list[tuple[int, int]]:
    """The (real rows, other rows) of every call a probe's stub discriminator logged (`harness.StubDiscriminator`,
    recorded as the text of a list of pairs); [] if the record is missing or malformed."""
    try:
        return [(int(r), int(f)) for r, f in ast.literal_eval(str(text))]
    except (ValueError, SyntaxError, TypeError):
        return []


def generator_reach(record: dict[str, Any]) -> tuple[int, int, str]:
    """(trainable generator parameters, those the loss's gradient reached, '' or what is wrong) from the first stub
    case of `harness.stub_generator_loss`."""
    params, reached = int(record.get("g_params_0", 0)), int(record.get("g_params_reached_0", 0))
    if record.get("g_requires_grad_0") and reached > 0:
        return params, reached, ""
    return (
        params,
        reached,
        (
            "the generator loss does not reach the generator's parameters: generate with gradients inside "
            "loss_generator (not through sample(n), which runs under no_grad)"
        ),
    )


@dataclass
class CheckResult:
    """`fraction` of the item's points for checks, or the metric `value` for metric items.

    `review`, when set, sends the item to a TA with that reason instead of scoring it automatically
    (e.g. a model whose loss was already low before the grader trained it).
    """

    fraction: float = 0.0
    message: str = ""
    value: float | None = None
    details: dict[str, float | str | bool | None] = field(default_factory=dict)
    review: str = ""

    @classmethod
    def of_cases(cls, failures: list[str], cases: int, ok: str) -> CheckResult:
        """The fraction of `cases` sub-checks that did not fail; the failures (each said once) or `ok`."""
        if not failures:
            return cls(1.0, ok)
        return cls(max(0.0, (cases - len(failures)) / cases), "; ".join(dict.fromkeys(failures)))


CheckFn = Callable[["CheckContext"], CheckResult]


def check(item_id: str) -> Callable[[CheckFn], CheckFn]:
    """Mark a function of an assignment's `checks.py` as the scorer of rubric item `item_id`."""

    def mark(fn: CheckFn) -> CheckFn:
        fn.__dgm_check__ = item_id  # type: ignore[attr-defined]
        return fn

    return mark


def inputs(fn: InputsFn) -> InputsFn:
    """Mark the function that makes the probe inputs: `(profile, seed) -> {name: array}`."""
    fn.__dgm_inputs__ = True  # type: ignore[attr-defined]
    return fn


@dataclass
class CheckSuite:
    make_inputs: InputsFn | None
    checks: dict[str, CheckFn]


def find_checks(module: ModuleType, rubric: Rubric) -> CheckSuite:
    """Collect the marked functions of a checks module and match them against the rubric."""
    checks: dict[str, CheckFn] = {}
    make_inputs: InputsFn | None = None
    for value in vars(module).values():
        if callable(value) and hasattr(value, "__dgm_check__"):
            checks[value.__dgm_check__] = value
        if callable(value) and getattr(value, "__dgm_inputs__", False):
            make_inputs = value
    needed = {i.id for i in rubric.items if i.kind in ("check", "metric")}
    if missing := sorted(needed - checks.keys()):
        raise AssignmentError(f"{rubric.assignment}: no check function for items {missing}")
    if unknown := sorted(checks.keys() - needed):
        raise AssignmentError(f"{rubric.assignment}: check functions for unknown items {unknown}")
    return CheckSuite(make_inputs=make_inputs, checks=checks)


class CheckContext:
    """What a check sees: the inputs it made, the validated artifacts, budgets and baselines."""

    def __init__(
        self,
        *,
        inputs: dict[str, np.ndarray],
        seed: int,
        profile: str,
        artifacts: Artifacts,
        budgets: dict[str, dict[str, Any]],
        baselines: dict[str, float],
    ) -> None:
        self.inputs = inputs
        self.seed = seed
        self.profile = profile
        self.artifacts = artifacts
        self.figures: list[Figure] = []
        self._budgets = budgets
        self._baselines = baselines

    def budget(self, name: str) -> dict[str, Any]:
        return dict(self._budgets.get(name, {}))

    def baseline(self, item_id: str) -> float | None:
        return self._baselines.get(item_id)

    def probe(self, name: str) -> ProbeRecord:
        """The probe's record; `ArtifactError` with the probe's own message unless it ran ok."""
        record = self.artifacts.probes.get(name)
        if record is None:
            raise ArtifactError(f"probe {name} did not run (the notebook or an earlier probe stopped it)")
        if record.status != "ok":
            raise ArtifactError(
                f"probe {name} {'timed out' if record.status == 'timeout' else 'failed'}: {record.message}"
            )
        return record

    def ran(self, name: str) -> bool:
        """Whether the probe `name` ran and answered ok."""
        record = self.artifacts.probes.get(name)
        return record is not None and record.status == "ok"

    def images(self, key: str) -> torch.Tensor:
        """The input images `key` as float64 in [0, 1], as the probes saw them (8-bit inputs divided by 255)."""
        import torch  # grading imports it anyway; the command line's help does not

        x = self.inputs[key]
        return torch.from_numpy(x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64))

    def tensor(
        self, key: str, *, shape: tuple[int | None, ...] | None = None, dtype: str | None = None, finite: bool = True
    ) -> np.ndarray:
        """A probe output, checked: shape (None = any size), dtype kind, finiteness."""
        if key not in self.artifacts.tensors:
            self.probe(key.split("/", 1)[0])  # a probe that failed explains why better than "missing"
            raise ArtifactError(f"{key}: missing from the probe outputs")
        arr = self.artifacts.tensors[key]
        if shape is not None and (
            arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True))
        ):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ArtifactError(f"{key}: expected shape {want}, got {tuple(arr.shape)} {arr.dtype}")
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise ArtifactError(f"{key}: expected {dtype}, got {arr.dtype} with shape {tuple(arr.shape)}")
        if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ArtifactError(f"{key}: contains NaN or infinite values")
        return arr

    def figure(self, title: str, images: np.ndarray, nrow: int = 8) -> None:
        """Add a sample grid to the student's report (images (N, C, H, W) in [0, 1]); unusable images are skipped."""
        from grader.report import grid_png

        try:
            self.figures.append(Figure(title=title, png_base64=grid_png(images, nrow=nrow)))
        except ValueError as exc:
            log.info("figure %r skipped: %s", title, exc)

    def scatter(self, title: str, points: np.ndarray, reference: np.ndarray) -> None:
        """Add a scatter plot of 2-D samples (blue) over reference points (grey) to the student's report."""
        from grader.report import scatter_png

        try:
            self.figures.append(Figure(title=title, png_base64=scatter_png(points, reference, title)))
        except ValueError as exc:
            log.info("figure %r skipped: %s", title, exc)

    def curve(self, title: str, values: list[float]) -> None:
        """Add a curve (e.g. the training loss under the grader's loop) to the student's report."""
        from grader.report import curve_png

        self.figures.append(Figure(title=title, png_base64=curve_png(values, title)))


def run_check(fn: CheckFn, ctx: CheckContext, item_id: str) -> tuple[CheckResult, str]:
    """Run one check; returns the result and a status (`ok`, `artifact`, `error`)."""
    try:
        result = fn(ctx)
    except ArtifactError as exc:
        return CheckResult(fraction=0.0, message=str(exc)), "artifact"
    except Exception as exc:
        log.exception("check %s crashed", item_id)
        return CheckResult(fraction=0.0, message=f"the grader's check failed: {type(exc).__name__}: {exc}"), "error"
    if not 0.0 <= result.fraction <= 1.0:
        raise AssignmentError(f"check {item_id} returned fraction {result.fraction} outside [0, 1]")
    return result, "ok"
