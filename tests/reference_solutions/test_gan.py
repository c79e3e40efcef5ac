"""The reference GAN: its losses are -log D(x) - log(1 - D(G(z))) and the non-saturating -log D(G(z))
(arXiv:1406.2661), its generator's gradient comes from the generator loss, and samples lie in [0, 1]."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn

from reference_solutions.gan import GAN

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "grader" / "runner"))
import harness


class _Constant(nn.Module):
    """D = p on the given real rows, q elsewhere; gradient 1 w.r.t. every input."""

    def __init__(self, real: torch.Tensor, p: float, q: float) -> None:
        super().__init__()
        self.real, self.p, self.q = real.flatten(1), p, q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        is_real = (torch.cdist(flat.detach(), self.real) < 1e-6).any(1)
        return (torch.where(is_real, self.p, self.q) + (flat - flat.detach()).sum(1)).unsqueeze(1)


def test_losses_on_a_discriminator_with_known_outputs() -> None:
    torch.manual_seed(0)
    model = GAN((1, 8, 8), z_dim=4, hidden=16)
    real = torch.rand(5, 1, 8, 8)
    model.discriminator = _Constant(real, 0.8, 0.3)
    d = model.loss_discriminator(real)
    assert math.isclose(d["discriminator_loss_real"].item(), -math.log(0.8), rel_tol=1e-5)
    assert math.isclose(d["discriminator_loss_fake"].item(), -math.log(0.7), rel_tol=1e-5)
    assert math.isclose(d["discriminator_loss"].item(), -math.log(0.8) - math.log(0.7), rel_tol=1e-5)
    g = model.loss_generator(5)["generator_loss"]
    assert math.isclose(g.item(), -math.log(0.3), rel_tol=1e-5)
    g.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())


def test_samples_are_images_in_unit_range() -> None:
    samples = GAN((1, 8, 8), z_dim=4, hidden=16).sample(7)
    assert samples.shape == (7, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1


def test_grader_loop_trains_both_networks_and_loads_the_ema() -> None:
    torch.manual_seed(0)
    model = GAN((1, 4, 4), z_dim=4, hidden=16)
    before = [p.detach().clone() for p in model.parameters()]
    curves = harness.train_adversarial(
        model, torch.rand(64, 1, 4, 4), steps=6, batch_size=16, lr=1e-3, seed=0, d_steps=2, ema_decay=0.9
    )
    assert len(curves["d_losses"]) == 6 and len(curves["g_losses"]) == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not model.training
