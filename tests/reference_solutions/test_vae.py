"""Reference ConvVAE (hw2): the course's KL/NLL helper values, loss bookkeeping, reparameterisation,
the IWAE bound ordering and a short training run."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_images
from torch.distributions import Normal, kl_divergence

from reference_solutions.vae import ConvVAE, get_normal_KL, get_normal_nll


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared CPU: intra-op threads only add contention."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def rgb_patches(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n random (3, size, size) patches in [0, 1] cut from scikit-learn's bundled sample photographs."""
    rng = np.random.default_rng(seed)
    images = load_sample_images().images
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        img = images[rng.integers(len(images))]
        r, c = rng.integers(img.shape[0] - size), rng.integers(img.shape[1] - size)
        out[i] = img[r : r + size, c : c + size] / 255.0
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)


def t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_normal_kl_course_values() -> None:
    assert get_normal_KL(t(2), t(3), t(0), t(0)).item() == pytest.approx(200.2144, rel=1e-4)
    assert get_normal_KL(t(2), t(3), t(4), t(5)).item() == pytest.approx(1.50925, rel=1e-4)
    got = get_normal_KL(t(10, 10), t(2, 4), t(3, 5))
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), [49.2990, 1498.479], rtol=1e-3)


def test_normal_nll_course_values() -> None:
    assert get_normal_nll(t(2), t(2), t(3)).item() == pytest.approx(3.9189, rel=1e-4)
    assert get_normal_nll(t(5), t(-3), t(6)).item() == pytest.approx(6.9191, rel=1e-4)
    got = get_normal_nll(t(10, 10), t(2, 4), t(3, 5))
    np.testing.assert_allclose(got.numpy(), [3.9982, 5.9197], rtol=1e-3)


def test_helpers_agree_with_torch_distributions_elementwise() -> None:
    g = torch.Generator().manual_seed(0)
    m1, s1, m2, s2, x = (torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(5))
    expected_kl = kl_divergence(Normal(m1, s1.exp()), Normal(m2, s2.exp()))
    torch.testing.assert_close(get_normal_KL(m1, s1, m2, s2), expected_kl)
    torch.testing.assert_close(get_normal_KL(m1, s1), kl_divergence(Normal(m1, s1.exp()), Normal(0.0, 1.0)))
    torch.testing.assert_close(get_normal_nll(x, m1, s1), -Normal(m1, s1.exp()).log_prob(x))


@pytest.mark.parametrize("size", [8, 16, 32])
def test_shapes_and_sample_range(size: int) -> None:
    torch.manual_seed(0)
    model = ConvVAE((3, size, size), n_latent=8, beta=1.0, n_filters=8)
    x = torch.rand(5, 3, size, size)
    mu_z, log_std_z, x_recon = model(x)
    assert mu_z.shape == log_std_z.shape == (5, 8)
    assert x_recon.shape == x.shape
    assert model.prior(7).shape == (7, 8)
    samples = model.sample(6)
    assert samples.shape == (6, 3, size, size)
    assert samples.min() >= 0.0 and samples.max() <= 1.0


def test_rejects_shape_not_divisible_by_4() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvVAE((3, 10, 10), n_latent=4)


def test_loss_terms_are_consistent() -> None:
    model = ConvVAE((3, 8, 8), n_latent=6, beta=0.3, n_filters=8).double()
    x = torch.rand(10, 3, 8, 8, dtype=torch.float64)
    torch.manual_seed(1)
    terms = model.elbo_terms(x)
    torch.manual_seed(1)
    loss = model.loss(x)
    assert set(loss) == {"total_loss", "elbo_loss", "recon_loss", "kl_loss"}
    assert terms["recon_loss"].shape == terms["kl_loss"].shape == (10,)
    torch.testing.assert_close(loss["recon_loss"], terms["recon_loss"].mean())
    torch.testing.assert_close(loss["kl_loss"], terms["kl_loss"].mean())
    torch.testing.assert_close(loss["total_loss"], loss["recon_loss"] + 0.3 * loss["kl_loss"])
    torch.testing.assert_close(loss["elbo_loss"], loss["recon_loss"] + loss["kl_loss"])
    assert (terms["kl_loss"] >= 0).all()
    # recon is a Gaussian NLL with unit variance in [-1, 1] space, summed over D = 192 pixels
    torch.manual_seed(1)
    _, _, x_recon = model(x)
    expected = (0.5 * math.log(2 * math.pi) + 0.5 * (2 * x - 1 - x_recon) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(terms["recon_loss"], expected)


def test_reparameterisation_carries_gradients_to_the_encoder() -> None:
    torch.manual_seed(0)
    model = ConvVAE((3, 8, 8), n_latent=4, n_filters=8)
    model.loss(torch.rand(4, 3, 8, 8))["recon_loss"].backward()
    # only the sampled z links the reconstruction term to the encoder
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_iwae_bound_increases_with_k() -> None:
    """ELBO = L_1 <= L_4 <= L_32 in expectation (IWAE theorem 1); 100 independent estimates per image."""
    torch.manual_seed(0)
    model = ConvVAE((1, 8, 8), n_latent=2, n_filters=8)
    with torch.no_grad():  # a decoder far more sensitive to z than q(z|x) knows: a wide bound gap
        model.decoder.fc.weight.mul_(5.0)
        model.decoder.net[-1].weight.mul_(10.0)
    x = torch.rand(4, 1, 8, 8)
    reps = 100
    x_rep = x.repeat(reps, 1, 1, 1)  # (4, ...) -> (400, ...): image i at rows i, i + 4, ...

    def estimate(k: int) -> tuple[float, float]:
        values = model.log_prob_iwae(x_rep, k).view(reps, 4).mean(1)
        return values.mean().item(), values.std().item() / math.sqrt(reps)

    (l1, se1), (l4, se4), (l32, se32) = estimate(1), estimate(4), estimate(32)
    assert l1 + 3 * math.hypot(se1, se4) < l4
    assert l4 + 3 * math.hypot(se4, se32) < l32
    # the analytic-KL ELBO has the same expectation as L_1
    with torch.no_grad():
        terms = model.elbo_terms(x_rep)
    elbo = -(terms["recon_loss"] + terms["kl_loss"]).view(reps, 4).mean(1)
    se = math.hypot(se1, elbo.std().item() / math.sqrt(reps))
    assert abs(elbo.mean().item() - l1) < 4 * se


def test_short_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    data = rgb_patches(512, 8)
    model = ConvVAE((3, 8, 8), n_latent=16, beta=1.0, n_filters=8)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def eval_loss() -> float:
        with torch.no_grad():
            return model.loss(data[:256])["elbo_loss"].item()

    before = eval_loss()
    for step in range(100):
        batch = data[(step * 32) % 512 :][:32]
        loss = model.loss(batch)["total_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    # -ELBO of D = 192 pixels; the floor (perfect reconstruction, zero KL) is 192 * 0.919 = 176.4
    assert after < before - 0.4 * (before - 176.4), (before, after)
