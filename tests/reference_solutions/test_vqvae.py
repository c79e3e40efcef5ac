"""The reference VQ-VAE and its PixelCNN prior: nearest codes, the straight-through estimator, the VQ loss and its
gradients in closed form (arXiv:1711.00937, eq. 1-3), and a causal prior over the code grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference_solutions.vqvae import PixelCNNPrior, VectorQuantizer, VQVAEModel


def _quantizer(beta: float = 0.4) -> tuple[VectorQuantizer, torch.Tensor]:
    torch.manual_seed(0)
    vq = VectorQuantizer(7, 3, beta)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.randn(7, 3))
    return vq, torch.randn(4, 3, 2, 5)


def test_indices_are_the_nearest_codes_and_quantized_is_bchw() -> None:
    vq, z = _quantizer()
    want = torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 3), vq.embedding.weight).argmin(1).reshape(4, 2, 5)
    assert torch.equal(vq.get_code_indices(z), want)
    assert torch.equal(vq.get_quantized(want), vq.embedding.weight[want].permute(0, 3, 1, 2))


def test_straight_through_value_and_gradient() -> None:
    vq, z = _quantizer()
    z.requires_grad_(True)
    w = torch.randn_like(z)
    z_q, _ = vq(z)
    torch.testing.assert_close(z_q, vq.get_quantized(vq.get_code_indices(z)))
    (w * z_q).sum().backward()
    torch.testing.assert_close(z.grad, w)
    assert vq.embedding.weight.grad is None or not vq.embedding.weight.grad.any()


def test_vq_loss_value_and_gradients() -> None:
    beta = 0.4
    vq, z = _quantizer(beta)
    z.requires_grad_(True)
    idx = vq.get_code_indices(z)
    e = vq.get_quantized(idx).detach()
    _, loss = vq(z)
    loss.backward()
    n = z.numel()
    torch.testing.assert_close(loss, (1 + beta) * F.mse_loss(z, e))
    torch.testing.assert_close(z.grad, 2 * beta * (z.detach() - e) / n)
    want = torch.zeros_like(vq.embedding.weight).index_add_(
        0, idx.reshape(-1), (2 * (e - z.detach()) / n).permute(0, 2, 3, 1).reshape(-1, 3)
    )
    torch.testing.assert_close(vq.embedding.weight.grad, want)


def test_model_shapes_loss_terms_and_draws() -> None:
    torch.manual_seed(0)
    model = VQVAEModel((1, 8, 8), num_embeddings=4, embedding_dim=4, hidden=16, downsample=1)
    x = (torch.rand(6, 1, 8, 8) > 0.5).float()
    logits, vq_loss = model(x)
    assert logits.shape == (6, 2, 1, 8, 8)
    out = model.loss(x)
    torch.testing.assert_close(out["ce_loss"], F.cross_entropy(logits, x.long()))
    torch.testing.assert_close(out["total_loss"], out["ce_loss"] + vq_loss)
    assert model.get_indices(x).shape == (6, 4, 4)
    draws = model.sample_from_logits(torch.zeros(4000, 2, 1, 1, 1))
    assert set(draws.unique().tolist()) == {0.0, 1.0} and abs(draws.mean().item() - 0.5) < 0.05
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_prior_is_causal_over_the_code_grid() -> None:
    torch.manual_seed(0)
    prior = PixelCNNPrior(5, (4, 4), n_filters=8, kernel_size=3, n_layers=3)
    codes = torch.randint(0, 5, (1, 1, 4, 4))
    base = prior(codes)
    for j in range(16):
        changed = codes.clone().flatten()
        changed[j] = (changed[j] + 1) % 5
        moved = (prior(changed.reshape(1, 1, 4, 4)) - base).abs().flatten(2).amax(dim=(0, 1))  # (16,)
        assert not moved[: j + 1].any(), j
    assert prior.sample(2).shape == (2, 1, 4, 4)
