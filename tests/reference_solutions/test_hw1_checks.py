"""Homework 1's probes and checks, in process: the reference models pass, typical bugs are caught.

The probes run through the real harness (`grader/runner/harness.py`) on a namespace built from the
reference modules (no kernel, no sandbox, small training budgets); their outputs are read back with
`grader.collect` and scored by `assignments/hw1/checks.py`. The full pipeline on the notebooks is the
golden test's job (fixtures in tests/fixtures/hw1/).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

import reference_solutions.image_gpt as gpt
import reference_solutions.pixelcnn as pcnn
from grader.checks import CheckContext, CheckResult, find_checks, run_check
from grader.collect import collect
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[2]
HW1 = ROOT / "assignments" / "hw1"
SEED = 1234
FAST = {
    "pixelcnn_train": {"steps": 20, "batch_size": 32, "lr": 0.003},
    "imagegpt_train": {"steps": 20, "batch_size": 32, "lr": 0.005},
    "pixelcnn_sample": {"n": 32},
    "imagegpt_sample": {"n": 32},
}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness() -> Iterator[ModuleType]:
    sys.path.insert(0, str(ROOT / "grader" / "runner"))  # probes.py does `from harness import ...`
    try:
        yield importlib.import_module("harness")
    finally:
        sys.path.remove(str(ROOT / "grader" / "runner"))


def _reference_ns() -> dict[str, Any]:
    names = ("MaskedConv2d", "PixelCNN", "PixelCNNAutoComplete", "get_receptive_field")
    ns = {n: getattr(pcnn, n) for n in names}
    ns |= {n: getattr(gpt, n) for n in ("get_attention_mask", "DecoderBlock", "ImageGPT")}
    return ns


def _grade(
    ns: dict[str, Any],
    harness: ModuleType,
    job: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, CheckResult]:
    rubric = load_rubric(HW1 / "rubric.yaml")
    checks = find_checks(_load("hw1_checks_under_test", HW1 / "checks.py"), rubric)
    budgets = {**rubric.profile("ci").budgets, **FAST}
    inputs = checks.make_inputs("ci", SEED)
    (job / "inputs").mkdir(parents=True)
    save_file(inputs, str(job / "inputs" / "data.safetensors"))
    config = {"seed": SEED, "profile": "ci", "budgets": budgets, "probe_timeout_s": 120}
    (job / "inputs" / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(job)
    torch.set_num_threads(1)
    harness.run_probes(str(HW1 / "probes.py"), ns)
    ctx = CheckContext(inputs=inputs, seed=SEED, profile="ci", artifacts=collect(job), budgets=budgets, baselines={})
    results = {}
    for item_id, fn in checks.checks.items():
        result, state = run_check(fn, ctx, item_id)
        assert state != "error", f"{item_id}: the check itself crashed: {result.message}"
        results[item_id] = result
    return results


def test_reference_models_pass_every_check(
    harness: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _grade(_reference_ns(), harness, tmp_path, monkeypatch)
    for item_id, result in results.items():
        if item_id.endswith("_nll"):
            assert result.value is not None and 0.05 < result.value < 0.7, (item_id, result)
        else:
            assert result.fraction == 1.0, (item_id, result.message)


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


def test_first_set_of_bugs_is_caught(harness: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _reference_ns() | {
        "PixelCNN": _BFirstLayer,
        "PixelCNNAutoComplete": _OverwritingAutoComplete,
        "ImageGPT": _NoShiftGPT,
    }
    results = _grade(ns, harness, tmp_path, monkeypatch)
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


def test_second_set_of_bugs_is_caught(harness: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _reference_ns() | {
        "PixelCNN": _HardcodedLoss,
        "ImageGPT": _SumLossFutureGPT,
        "get_attention_mask": _future_mask,
    }
    results = _grade(ns, harness, tmp_path, monkeypatch)
    assert results["pixelcnn_loss"].fraction == 0.0
    assert results["pixelcnn_causal"].fraction == 1.0
    assert results["pixelcnn_sample"].fraction == 0.0
    assert "do not follow" in results["pixelcnn_sample"].message
    assert results["pixelcnn_nll"].value is not None and results["pixelcnn_nll"].value > 0.6  # never trained
    assert results["imagegpt_loss"].fraction == 0.0
    assert results["imagegpt_attention_mask"].fraction == pytest.approx(1 / 5)  # only L = 1 is right
    assert results["imagegpt_causal"].fraction == 0.0
    assert "not causal" in results["imagegpt_sample"].message
