"""The reference conditional VAE (UPM assignment): its loss terms are the closed forms of its own outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference_solutions.cvae import ConditionalVAE, gaussian_kl


def test_loss_terms_are_the_bernoulli_cross_entropy_and_the_gaussian_kl() -> None:
    torch.manual_seed(0)
    model = ConditionalVAE((1, 8, 8), n_latent=4, num_classes=10, beta=0.5, hidden=32)
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 9])
    torch.manual_seed(1)
    mu, log_std, logits = model(x, y)
    torch.manual_seed(1)
    out = model.loss(x, y)
    p = torch.sigmoid(logits)
    recon = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1).mean()
    kl = (0.5 * (mu**2 + (2 * log_std).exp() - 1) - log_std).sum(1).mean()
    torch.testing.assert_close(out["recon_loss"], recon, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["kl_loss"], kl)
    torch.testing.assert_close(out["elbo_loss"], recon + 0.5 * kl, rtol=1e-5, atol=1e-5)


def test_gaussian_kl_matches_torch_distributions() -> None:
    mu, log_std = torch.randn(5, 3), torch.randn(5, 3)
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, log_std.exp()), torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(gaussian_kl(mu, log_std), want)


def test_labels_are_one_hot_and_samples_follow_them() -> None:
    model = ConditionalVAE((1, 8, 8), n_latent=4, num_classes=10, hidden=32)
    y = torch.tensor([3, 7])
    assert torch.equal(model.encode_label(y), F.one_hot(y, 10).float())
    samples = model.sample(2, y)
    assert samples.shape == (2, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
