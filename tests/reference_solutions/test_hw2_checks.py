"""Homework 2's probes and checks, in process: the reference models pass; a model that behaves one way
when checked and another when measured loses its gate and cannot move its metric; a residual block that
never adds its shortcut, or a ResNet VAE built without the blocks, loses `resnet_blocks`.

The queries the sandbox would send are answered in this process by the real kernel-side kit
(`tests/probe_driver.answer_locally`) on a namespace built from the reference modules (no kernel, no
sandbox, small training budgets), and scored by `assignments/hw2/checks.py`. The full pipeline on the
notebooks is the golden test's job (fixtures in tests/fixtures/hw2/).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

import reference_solutions.resnet_vae as rvae
import reference_solutions.vae as vae
from grader.assignment import load_assignment
from grader.checks import CheckContext, CheckResult, find_checks, run_check
from tests.probe_driver import answer_locally

HW2 = load_assignment("hw2")
SEED = 1234
FAST = {
    "vae_train": {"steps": 20, "batch_size": 32, "lr": 0.002},
    "resnet_train": {"steps": 20, "batch_size": 32, "lr": 0.002},
}
CHECKED_BATCH = 64  # the fresh model's batch in `*_elbo` (checks.ELBO_BATCH); training batches are smaller


def _reference_ns() -> dict[str, Any]:
    ns = {n: getattr(vae, n) for n in ("get_normal_KL", "get_normal_nll", "ConvVAE")}
    return ns | {n: getattr(rvae, n) for n in ("ResNetBlock", "ResNetTransposeBlock", "ConvResNetVAE")}


def _grade(ns: dict[str, Any]) -> dict[str, CheckResult]:
    checks = find_checks(HW2.load_checks(), HW2.rubric)
    budgets = {**HW2.rubric.profile("ci").budgets, **FAST}
    inputs = checks.make_inputs("ci", SEED)
    torch.set_num_threads(1)
    artifacts = answer_locally(HW2, ns, profile="ci", seed=SEED, inputs=inputs, budgets=budgets)
    ctx = CheckContext(inputs=inputs, seed=SEED, profile="ci", artifacts=artifacts, budgets=budgets, baselines={})
    results = {}
    for item_id, fn in checks.checks.items():
        result, state = run_check(fn, ctx, item_id)
        assert state != "error", f"{item_id}: the check itself crashed: {result.message}"
        results[item_id] = result
    return results


@pytest.fixture(scope="module")
def reference() -> dict[str, CheckResult]:
    return _grade(_reference_ns())


def test_reference_models_pass_every_check(reference: dict[str, CheckResult]) -> None:
    for item_id, result in reference.items():
        if item_id.endswith(("_nll", "_fd")):
            assert result.value is not None and math.isfinite(result.value) and result.value > 0, (item_id, result)
        else:
            assert result.fraction == 1.0, (item_id, result.message)


class _ImageLatents(vae.ConvVAE):
    """Within the contract, in other shapes: the encoder returns mu and log_std as one (B, 2 n_latent)
    tensor, the decoder takes z as (B, n_latent, 1, 1)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu_z, log_std_z = self.encoder(2.0 * x - 1.0).chunk(2, dim=1)
        z = mu_z + torch.exp(log_std_z) * torch.randn_like(mu_z)
        return mu_z, log_std_z, self.decoder(z[:, :, None, None])  # (B, L) -> (B, L, 1, 1)

    def init_submodels(self) -> None:
        super().init_submodels()
        joined, flat = self.encoder.forward, self.decoder.forward
        self.encoder.forward = lambda x: torch.cat(joined(x), dim=1)  # (B, 2L)
        self.decoder.forward = lambda z: flat(z.flatten(1))  # (B, L, 1, 1) -> (B, L)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return (self.decoder(self.prior(n)[:, :, None, None]).clamp(-1.0, 1.0) + 1.0) / 2.0


def test_other_shapes_within_the_contract_pass(reference: dict[str, CheckResult]) -> None:
    results = _grade(_reference_ns() | {"ConvVAE": _ImageLatents})
    for item_id in ("vae_elbo", "vae_reparam"):
        assert results[item_id].fraction == 1.0, results[item_id].message
    assert results["vae_nll"].value == pytest.approx(reference["vae_nll"].value, rel=0.2)


class _QuietOnBigBatches(vae.ConvVAE):
    """Adds no noise to z on batches larger than the ones it is trained and checked on: its own forward
    would flatter a metric computed from it, and a gate checked on other calls would pass it."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu_z, log_std_z = self.encoder(2.0 * x - 1.0)
        noise = torch.randn_like(mu_z) * float(len(x) <= CHECKED_BATCH)
        return mu_z, log_std_z, self.decoder(mu_z + torch.exp(log_std_z) * noise)


class _ReportsLessOnBigBatches(rvae.ConvResNetVAE):
    """Halves its loss terms on batches larger than the ones it is trained and checked on, and samples
    in the [-1, 1] model space instead of mapping to [0, 1]."""

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        out = super().loss(x)
        return out if len(x) <= CHECKED_BATCH else {k: 0.5 * v for k, v in out.items()}

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.decoder(self.prior(n))


def test_a_model_that_behaves_differently_when_measured_loses_the_gate_not_the_metric(
    reference: dict[str, CheckResult],
) -> None:
    results = _grade(_reference_ns() | {"ConvVAE": _QuietOnBigBatches, "ConvResNetVAE": _ReportsLessOnBigBatches})
    # the same weights as the reference (training batches are small), measured on the same calls
    assert results["vae_nll"].value == pytest.approx(reference["vae_nll"].value, rel=1e-9)
    assert results["resnet_nll"].value == pytest.approx(reference["resnet_nll"].value, rel=1e-9)
    assert results["vae_elbo"].fraction == 1.0, results["vae_elbo"].message
    assert results["vae_reparam"].fraction == 0.0
    assert "trained model's test images" in results["vae_reparam"].message
    assert results["resnet_elbo"].fraction == 0.0
    assert "trained model's test images, recon_loss" in results["resnet_elbo"].message
    assert results["resnet_fd"].fraction == 0.0 and "mapped to [0, 1]" in results["resnet_fd"].message


class _NoShortcutBlock(rvae.ResNetBlock):
    """Builds its projection shortcut but never adds it."""

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x)
        return y.relu() if self.final_relu else y


def test_a_block_that_never_adds_its_shortcut_loses_resnet_blocks() -> None:
    results = _grade({"ResNetBlock": _NoShortcutBlock, "ResNetTransposeBlock": rvae.ResNetTransposeBlock})
    result = results["resnet_blocks"]
    assert 0.0 < result.fraction < 1.0
    assert result.message.count("is the shortcut added") == len(HW2.load_checks().BLOCK_RESIDUAL_CASES)
    assert "ResNetTransposeBlock(" not in result.message  # no case of the transpose block failed


def test_a_resnet_vae_built_without_the_blocks_loses_resnet_blocks_only() -> None:
    """Using the blocks is structure: it costs `resnet_blocks`, not the gate of the metrics, which do not need it."""
    results = _grade(_reference_ns() | {"ConvResNetVAE": vae.ConvVAE})
    assert 0.0 < results["resnet_blocks"].fraction < 1.0
    assert "contains no ResNetBlock" in results["resnet_blocks"].message
    assert "contains no ResNetTransposeBlock" in results["resnet_blocks"].message
    assert results["resnet_elbo"].fraction == 1.0, results["resnet_elbo"].message
