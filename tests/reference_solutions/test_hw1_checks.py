"""Homework 1's probes and checks, in process: the reference models pass, typical bugs are caught.

The queries the sandbox would send are answered in this process by the real kernel-side kit
(`tests/probe_driver.answer_locally`) on a namespace built from the reference modules (no kernel, no
sandbox, small training budgets), and scored by `assignments/hw1/checks.py`. The full pipeline on the
notebooks is the golden test's job (fixtures in tests/fixtures/hw1/).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference_solutions.image_gpt as gpt
import reference_solutions.pixelcnn as pcnn
from grader.assignment import load_assignment
from grader.checks import CheckContext, CheckResult, find_checks, run_check
from grader.collect import Artifacts
from grader.metrics.nll import bernoulli_nll, two_class_nll
from tests.probe_driver import answer_locally

HW1 = load_assignment("hw1")
SEED = 1234
FAST: dict[str, dict[str, Any]] = {
    "pixelcnn_train": {"steps": 20, "batch_size": 32, "lr": 0.003},
    "imagegpt_train": {"steps": 20, "batch_size": 32, "lr": 0.005},
    "pixelcnn_sample": {"n": 32},
    "imagegpt_sample": {"n": 32},
}
BUDGETS: dict[str, dict[str, Any]] = {**HW1.rubric.profile("ci").budgets, **FAST}


def _reference_ns() -> dict[str, Any]:
    names = ("MaskedConv2d", "PixelCNN", "PixelCNNAutoComplete", "get_receptive_field")
    ns = {n: getattr(pcnn, n) for n in names}
    ns |= {n: getattr(gpt, n) for n in ("get_attention_mask", "DecoderBlock", "ImageGPT")}
    return ns


def _grade(ns: dict[str, Any]) -> tuple[dict[str, CheckResult], CheckContext]:
    checks = find_checks(HW1.load_checks(), HW1.rubric)
    assert checks.make_inputs is not None
    inputs = checks.make_inputs("ci", SEED)
    artifacts = answer_locally(HW1, ns, profile="ci", seed=SEED, inputs=inputs, budgets=BUDGETS)
    ctx = CheckContext(inputs=inputs, seed=SEED, profile="ci", artifacts=artifacts, budgets=BUDGETS, baselines={})
    results = {}
    for item_id, fn in checks.checks.items():
        result, state = run_check(fn, ctx, item_id)
        assert state != "error", f"{item_id}: the check itself crashed: {result.message}"
        results[item_id] = result
    return results, ctx


def _one_shot_nll(ctx: CheckContext, model: str) -> float:
    """The NLL from the last step alone, where the whole test images are revealed (the old metric)."""
    test = ctx.inputs["test_images"].astype(np.float64)  # (N, 1, H, W)
    last = len(ctx.inputs["eval_test_rows"]) - 1
    logits = ctx.artifacts.tensors[f"eval/{last}/{model}"][ctx.inputs["eval_test_rows"][last]]
    if model == "pixelcnn":  # (N, 2, 1, H, W)
        return float(two_class_nll(logits, test, "per_dim"))
    return float(bernoulli_nll(logits[..., 0], test.reshape(len(test), -1), "per_dim"))  # (N, L, 1)


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, CheckResult], CheckContext]:
    return _grade(_reference_ns())


def test_reference_models_pass_every_check(reference: tuple[dict[str, CheckResult], CheckContext]) -> None:
    results, ctx = reference
    for item_id, result in results.items():
        if item_id.endswith("_nll"):
            assert result.value is not None and 0.05 < result.value < 0.7, (item_id, result)
        else:
            assert result.fraction == 1.0, (item_id, result.message)
    # a causal model's stepped NLL is its NLL on the whole images: the calibrated baselines stay valid
    for model in ("pixelcnn", "imagegpt"):
        assert results[f"{model}_nll"].value == pytest.approx(_one_shot_nll(ctx, model), rel=1e-6)


def test_test_rows_that_see_their_own_pixel_are_caught(reference: tuple[dict[str, CheckResult], CheckContext]) -> None:
    """A kernel that tells the test rows from the dependence rows and peeks only on the former."""
    _, ctx = reference
    tensors = dict(ctx.artifacts.tensors)
    for k, rows in enumerate(ctx.inputs["eval_test_rows"]):
        peek = 10.0 * (2.0 * ctx.inputs["eval_batches"][k][rows].astype(np.float32) - 1.0)  # (N, 1, H, W)
        logits = tensors[f"eval/{k}/pixelcnn"].copy()  # (B, 2, 1, H, W)
        logits[rows] += np.stack([-peek, peek], axis=1)
        tensors[f"eval/{k}/pixelcnn"] = logits
    artifacts = Artifacts(probes=ctx.artifacts.probes, tensors=tensors)
    tampered = CheckContext(
        inputs=ctx.inputs, seed=SEED, profile="ci", artifacts=artifacts, budgets=BUDGETS, baselines={}
    )
    checks = HW1.load_checks()
    causal = checks.pixelcnn_causal(tampered)
    assert causal.fraction == 0.0 and "of the test images at pixel (0, 0)" in causal.message
    assert checks.pixelcnn_nll(tampered).value > 2.0  # the peeked pixel was a random bit when it counted


class _BFirstLayer(pcnn.PixelCNN):
    def __init__(self, input_shape, n_filters=32, kernel_size=5, n_layers=5):
        super().__init__(input_shape, n_filters, kernel_size, n_layers)
        self.net[0] = pcnn.MaskedConv2d("B", 1, n_filters, kernel_size, padding=kernel_size // 2)


class _OverwritingAutoComplete(pcnn.PixelCNNAutoComplete):
    def sample(self, n, init):
        return super().sample(n, torch.full_like(init, -1.0))


class _NoShiftGPT(gpt.ImageGPT):
    def add_sos_token(self, x_emb):
        return torch.cat([self.sos.view(1, 1, -1).expand(len(x_emb), 1, -1), x_emb[:, 1:]], dim=1)


def test_first_set_of_bugs_is_caught() -> None:
    ns = _reference_ns() | {
        "PixelCNN": _BFirstLayer,
        "PixelCNNAutoComplete": _OverwritingAutoComplete,
        "ImageGPT": _NoShiftGPT,
    }
    results, _ = _grade(ns)
    assert results["pixelcnn_mask"].fraction == 1.0
    assert results["pixelcnn_causal"].fraction == 0.0
    assert "on the pixel itself" in results["pixelcnn_causal"].message
    assert results["pixelcnn_receptive_field"].fraction == 0.5  # the function is right, the architecture not
    assert results["pixelcnn_autocomplete"].fraction == 0.0
    assert "known pixels" in results["pixelcnn_autocomplete"].message
    assert results["imagegpt_sos"].fraction == 0.0
    assert results["imagegpt_causal"].fraction == 0.0
    assert results["imagegpt_attention_mask"].fraction == 1.0
    assert results["pixelcnn_loss"].fraction == 1.0 and results["imagegpt_loss"].fraction == 1.0
    # ImageGPT learns to copy the pixel it sees (train loss ~0.02), which is worth nothing where it is not revealed
    assert results["imagegpt_nll"].value is not None and results["imagegpt_nll"].value > 1.0


class _HardcodedLoss(pcnn.PixelCNN):
    def loss(self, x):
        return {"total_loss": 0.0 * self(x).sum() + 0.08}

    @torch.no_grad()
    def sample(self, n):  # argmax instead of a draw
        x = torch.zeros(n, 1, *self.input_shape)
        for i in range(self.input_shape[0]):
            for j in range(self.input_shape[1]):
                x[:, 0, i, j] = self(x)[:, :, 0, i, j].argmax(dim=1).float()
        return x


def _future_mask(seq_len: int) -> torch.Tensor:
    return torch.full((seq_len, seq_len), float("-inf")).triu(diagonal=2)


class _FutureBlock(gpt.DecoderBlock):
    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=_future_mask(x.shape[1]), need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class _SumLossFutureGPT(gpt.ImageGPT):
    def __init__(self, input_shape, embed_dim, num_heads, num_layers):
        super().__init__(input_shape, embed_dim, num_heads, num_layers)
        self.blocks = torch.nn.ModuleList(_FutureBlock(embed_dim, num_heads) for _ in range(num_layers))

    def loss(self, x):
        logits = self(x.flatten(1).long())[..., 0]
        return {"total_loss": F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="sum")}


def test_second_set_of_bugs_is_caught() -> None:
    ns = _reference_ns() | {
        "PixelCNN": _HardcodedLoss,
        "ImageGPT": _SumLossFutureGPT,
        "get_attention_mask": _future_mask,
    }
    results, _ = _grade(ns)
    assert results["pixelcnn_loss"].fraction == 0.0
    assert results["pixelcnn_causal"].fraction == 1.0
    assert results["pixelcnn_sample"].fraction == 0.0
    assert "do not follow" in results["pixelcnn_sample"].message
    assert results["pixelcnn_nll"].value is not None and results["pixelcnn_nll"].value > 0.6  # never trained
    assert results["imagegpt_loss"].fraction == 0.0
    assert results["imagegpt_attention_mask"].fraction == pytest.approx(1 / 5)  # only L = 1 is right
    assert results["imagegpt_causal"].fraction == 0.0
    assert "not causal" in results["imagegpt_sample"].message


class _PeekingPixelCNN(pcnn.PixelCNN):
    """The reference model, plus a strong vote for the value of the pixel itself: a near-zero NLL on
    whole images, but nothing to gain where the pixel is not yet revealed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peek = 10.0 * (2.0 * x - 1.0)  # (B, 1, H, W)
        return super().forward(x) + torch.cat([-peek, peek], dim=1).unsqueeze(2)


def test_a_model_that_sees_its_own_pixel_cannot_lower_its_nll() -> None:
    results, ctx = _grade(_reference_ns() | {"PixelCNN": _PeekingPixelCNN})
    assert results["pixelcnn_causal"].fraction == 0.0
    assert "on the pixel itself" in results["pixelcnn_causal"].message
    assert _one_shot_nll(ctx, "pixelcnn") < 0.01  # what the old one-shot metric would have reported
    assert results["pixelcnn_nll"].value is not None and results["pixelcnn_nll"].value > 2.0


class _Mask(torch.nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


class _ParametrizedMaskedConv2d(torch.nn.Conv2d):
    """The mask applied with torch.nn.utils.parametrize: `self.weight` is already masked."""

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        mask = pcnn.MaskedConv2d(mask_type, in_channels, out_channels, kernel_size).create_mask()
        torch.nn.utils.parametrize.register_parametrization(self, "weight", _Mask(mask))


def test_a_mask_applied_by_parametrize_is_a_correct_mask() -> None:
    results, _ = _grade(_reference_ns() | {"MaskedConv2d": _ParametrizedMaskedConv2d})
    assert results["pixelcnn_mask"].fraction == 1.0, results["pixelcnn_mask"].message
