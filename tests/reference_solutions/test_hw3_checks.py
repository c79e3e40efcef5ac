"""Homework 3's probes and checks, in process: the reference models pass (also when their code only runs
in float32); a flow whose kernel reports inflated log-dets loses the log-det gate and with it the NLL; a
flow whose trained map folds the plane onto itself, with exact local log-dets, passes the log-det gate
but its density does not integrate to one, so the NLL is not scored.

The queries the sandbox would send are answered in this process by the real kernel-side kit
(`tests/probe_driver.answer_locally`) on a namespace built from the reference modules (no kernel, no
sandbox), scored by `assignments/hw3/checks.py` and the rubric's gates. The full pipeline on the
notebooks, with the classic mistakes, is the golden test's job (fixtures in tests/fixtures/hw3/).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import reference_solutions.realnvp as realnvp
import reference_solutions.realnvp_2d as realnvp_2d
from grader.assignment import load_assignment
from grader.checks import CheckContext, CheckResult, find_checks, run_check
from grader.score import Outcome, score
from tests.probe_driver import answer_locally

HW3 = load_assignment("hw3")
SEED = 1234
IMAGES_FAST = {"img_train": {**HW3.rubric.profile("ci").budgets["img_train"], "steps": 10}}  # 2-D cases


def _reference_ns() -> dict[str, Any]:
    ns = {n: getattr(realnvp_2d, n) for n in ("AffineCouplingLayer", "RealNVP2D")}
    names = ("LogitTransform", "AffineCheckerboardCouplingLayer", "AffineChannelCouplingLayer", "RealNVP")
    return ns | {n: getattr(realnvp, n) for n in names}


def _grade(ns: dict[str, Any], fast: dict[str, dict[str, Any]] | None = None) -> dict[str, CheckResult]:
    checks = find_checks(HW3.load_checks(), HW3.rubric)
    budgets = {**HW3.rubric.profile("ci").budgets, **(fast or {})}
    inputs = checks.make_inputs("ci", SEED)
    torch.set_num_threads(1)
    artifacts = answer_locally(HW3, ns, profile="ci", seed=SEED, inputs=inputs, budgets=budgets)
    ctx = CheckContext(inputs=inputs, seed=SEED, profile="ci", artifacts=artifacts, budgets=budgets, baselines={})
    results = {}
    for item_id, fn in checks.checks.items():
        result, state = run_check(fn, ctx, item_id)
        assert state != "error", f"{item_id}: the check itself crashed: {result.message}"
        results[item_id] = result
    return results


def _lost_2d(results: dict[str, CheckResult]) -> set[str]:
    """The RealNVP-on-2-D items scored below full points, gates applied (metrics at the baseline's value)."""
    baselines = HW3.baselines("ci")
    outcomes = {
        item.id: Outcome(results.get(item.id, CheckResult(fraction=1.0)))
        for item in HW3.rubric.items
        if item.kind != "manual"
    }
    for item_id, outcome in outcomes.items():
        if outcome.result.value is not None:  # these tests are about gates, not about the training budget
            outcome.result.value = baselines[item_id].value
    items = score(HW3.rubric, outcomes, baselines=baselines, profile="ci")
    return {i.id for i in items if i.task == "realnvp_2d" and i.points < i.max_points}


def test_fd_batches_hold_each_base_point_with_its_partners_and_stay_on_the_host() -> None:
    checks = HW3.load_checks()
    inputs = checks.make_inputs("ci", SEED)
    sent = {name for decl in HW3.probes() for name in decl.needs}
    for batch in ("c2d_points", "c2d_eval", "checker_x", "channel_x", "img_flow_y", "img_flow_z", "img_eval"):
        x, index = inputs[batch], inputs[f"{batch}_index"]
        d = (index.shape[1] - 1) // 2
        flat = x.reshape(len(x), d)  # (N, ...) -> (N, D)
        steps = flat[index[:, 1:]] - flat[index[:, :1]]  # (n, 2D, D): +h e_1 .. +h e_D, -h e_1 .. -h e_D
        eye = checks.FD_STEP * np.eye(d)
        np.testing.assert_array_equal(steps, np.concatenate([eye, -eye])[None].repeat(len(index), 0))
        assert batch in sent and f"{batch}_index" not in sent
    y = inputs["img_eval"][inputs["img_eval_test_rows"]]
    np.testing.assert_array_equal(y, (inputs["test_images"] + inputs["test_u"]) / inputs["nbins"][0])
    assert not sent & {"c2d_log_q", "img_eval_test_rows", "img_eval_fd"}


@pytest.fixture(scope="module")
def reference() -> dict[str, CheckResult]:
    return _grade(_reference_ns())


def test_reference_models_pass_every_check(reference: dict[str, CheckResult]) -> None:
    for item_id, result in reference.items():
        if item_id.endswith("_nll"):
            assert result.value is not None and 0 < result.value < 1.45 * HW3.baselines("ci")[item_id].value, result
        else:
            assert result.fraction == 1.0, (item_id, result.message)
    assert reference["c2d_nll"].details["mass"] == pytest.approx(1.0, abs=0.05)


class _Float32Flow(realnvp_2d.RealNVP2D):
    """Correct, but computes in float32 whatever its input: the host checks it with float32 tolerances."""

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        return super().forward(x.float(), invert)


def test_a_float32_only_flow_passes() -> None:
    assert not _lost_2d(_grade(_reference_ns() | {"RealNVP2D": _Float32Flow}, IMAGES_FAST))


class _InflatedLogDet(realnvp_2d.RealNVP2D):
    """Reports log|det| + 0.5 (a density e^0.5 times too high everywhere) and agrees with itself:
    log_prob, loss and the inverse's log-det all use the inflated value."""

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        z, log_det = super().forward(x, invert)
        return z, log_det + (-0.5 if invert else 0.5)


def test_an_inflated_log_det_loses_the_gate_and_the_metric() -> None:
    results = _grade(_reference_ns() | {"RealNVP2D": _InflatedLogDet}, IMAGES_FAST)
    assert "differs from log|det J|" in results["c2d_logdet"].message
    assert _lost_2d(results) == {"c2d_logdet", "c2d_inverse_logdet", "c2d_density", "c2d_nll"}


class _FoldedAfterTraining(realnvp_2d.RealNVP2D):
    """Once trained, pulls latents beyond |z_i| = 1 two units towards 0: log|det| is unchanged (exact
    almost everywhere, so finite differences agree), test points get a higher density, but part of the
    plane is now covered twice and the density integrates to more than one. The perturbed, untrained
    flow of the invertibility and log-det probes is left honest."""

    trained = False

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        self.trained = True
        return super().loss(x)

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        z, log_det = super().forward(x, invert)
        if self.trained and not invert:
            z = z - 2.0 * torch.sign(z) * (z.abs() > 1.0)
        return z, log_det


def test_a_non_injective_map_with_exact_log_dets_fails_normalisation() -> None:
    results = _grade(_reference_ns() | {"RealNVP2D": _FoldedAfterTraining}, IMAGES_FAST)
    assert results["c2d_nll"].value is None and "integrates to" in results["c2d_nll"].message
    assert _lost_2d(results) == {"c2d_density", "c2d_nll"}
