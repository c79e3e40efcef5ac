import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.metrics import (
    bernoulli_nll,
    bits_per_dim,
    categorical_nll,
    dequantized_nll,
    discretized_logistic_mixture_nll,
    gaussian_kl,
    iwae_nll,
    logit_dequantized_nll,
    logit_transform,
    negative_elbo,
    two_class_nll,
)


def test_bits_per_dim_converts_nats_with_ln2():
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    assert np.allclose(bits_per_dim(np.array([math.log(2) * 10]), 10), [1.0])
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)


def test_uniform_categorical_model_gives_exactly_8_bits_per_dim():
    x = torch.randint(0, 256, (4, 3, 5, 5))
    logits = torch.zeros(4, 256, 3, 5, 5)
    nll = categorical_nll(logits, x, reduction="mean")
    assert bits_per_dim(nll, 75).item() == pytest.approx(8.0, abs=1e-12)


def test_uniform_density_with_dequantization_gives_exactly_8_bits_per_dim():
    # U[0,1]^D density: ln p = 0 for every y = (x + u) / 256
    nll = dequantized_nll(torch.zeros(6), 3072, reduction="mean")
    assert bits_per_dim(nll, 3072).item() == pytest.approx(8.0, abs=1e-12)


def test_dequantization_scale_covers_the_usual_rescalings():
    # U[-1, 1]^D has density 2^-D; data mapped as 2y - 1 (a = 2/256) must still be 8 bits/dim
    d = 10
    log_density = torch.full((3,), -d * math.log(2.0))
    nll = dequantized_nll(log_density, d, scale=2 / 256, reduction="per_dim")
    assert (nll / math.log(2)).item() == pytest.approx(8.0)
    # raw [0, 256) (a = 1): uniform density 256^-D, no offset
    nll = dequantized_nll(torch.full((3,), -d * math.log(256.0)), d, scale=1.0, reduction="per_dim")
    assert (nll / math.log(2)).item() == pytest.approx(8.0)


def test_bernoulli_half_on_784_pixels_is_784_ln2_nats_per_image():
    x = (torch.rand(5, 1, 28, 28) > 0.5).double()
    nll = bernoulli_nll(torch.zeros(5, 1, 28, 28), x)
    assert nll.shape == (5,)
    assert torch.allclose(nll, torch.full((5,), 784 * math.log(2), dtype=torch.float64), atol=1e-9)
    assert bernoulli_nll(torch.zeros(5, 784), x.reshape(5, 784), reduction="mean").item() == pytest.approx(
        543.4273, abs=1e-4
    )
    assert bernoulli_nll(torch.zeros(5, 784), x.reshape(5, 784), reduction="per_dim").item() == pytest.approx(
        math.log(2)
    )


def test_bernoulli_matches_bce_with_logits_and_accepts_numpy():
    logits = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    x = (torch.rand(3, 1, 4, 4) > 0.5).double()
    expected = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    assert torch.allclose(bernoulli_nll(logits.numpy(), x.numpy()), expected)
    assert bernoulli_nll(logits, x, reduction="sum").item() == pytest.approx(expected.sum().item())


def test_bernoulli_rejects_non_binary_data_and_shape_mismatch():
    with pytest.raises(ValueError, match="integer levels"):
        bernoulli_nll(torch.zeros(2, 3), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="shape"):
        bernoulli_nll(torch.zeros(2, 3), torch.zeros(2, 4))


def test_two_class_logits_match_course_cross_entropy_and_single_logit_form():
    logits = torch.randn(4, 2, 1, 6, 6, dtype=torch.float64)  # PixelCNN output (B, 2, 1, H, W)
    x = (torch.rand(4, 1, 6, 6) > 0.5).double()
    course_loss = F.cross_entropy(logits, x.long())  # mean over all pixels = nats per pixel
    assert two_class_nll(logits, x, reduction="per_dim").item() == pytest.approx(course_loss.item())
    single = bernoulli_nll(logits[:, 1] - logits[:, 0], x)
    assert torch.allclose(two_class_nll(logits, x), single)
    with pytest.raises(ValueError, match="two-class"):
        two_class_nll(torch.zeros(4, 3, 6, 6), x)


def test_categorical_checks_levels():
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        categorical_nll(torch.zeros(1, 256, 2), torch.tensor([[0, 256]]))


def test_logit_transform_matches_course_values():
    y = torch.tensor([[0.0, 1.0, 2.0, 3.0]]) / 256
    z, log_det = logit_transform(y, alpha=0.05)
    assert torch.allclose(z, torch.tensor([[-2.944439, -2.8727808, -2.8054335, -2.7418802]], dtype=torch.float64))
    course_elementwise = torch.tensor([2.9416652, 2.8774219, 2.8175175, 2.7614343], dtype=torch.float64)
    assert log_det.item() == pytest.approx(course_elementwise.sum().item(), abs=1e-6)


def test_logit_jacobian_matches_autograd():
    y = torch.rand(3, 5, dtype=torch.float64)
    _, log_det = logit_transform(y, alpha=0.05)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v[None], 0.05)[0][0], y[b])
        assert log_det[b].item() == pytest.approx(torch.logdet(jac).item())


def test_logit_dequantized_nll_adds_jacobian_and_bin_width():
    y = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    log_pz = torch.randn(2, dtype=torch.float64)
    _, log_det = logit_transform(y, 0.05)
    expected = -(log_pz + log_det) + 48 * math.log(256)
    assert torch.allclose(logit_dequantized_nll(log_pz, y, alpha=0.05), expected)


def _dlogistic_reference(x, logit_probs, means, log_scales):
    """Brute force: per sub-pixel bin mass from the logistic CDF, mixed per channel (C = 1)."""
    x_t = 2 * x.double() / 255 - 1
    cdf = lambda v, m, s: torch.sigmoid((v - m) / s)  # noqa: E731
    s = torch.exp(log_scales[:, :, 0])
    m = means[:, :, 0]
    xk = x_t[:, 0:1]
    upper = torch.where(xk > 0.999, torch.ones_like(m), cdf(xk + 1 / 255, m, s))
    lower = torch.where(xk < -0.999, torch.zeros_like(m), cdf(xk - 1 / 255, m, s))
    mix = (torch.softmax(logit_probs, 1) * (upper - lower)).sum(1)
    return -torch.log(mix).sum((1, 2))


def test_discretized_logistic_mixture_matches_brute_force_and_normalises():
    torch.manual_seed(0)
    b, k, h, w = 2, 3, 2, 2
    logit_probs = torch.randn(b, k, h, w, dtype=torch.float64)
    means = 0.5 * torch.randn(b, k, 1, h, w, dtype=torch.float64)
    log_scales = torch.full((b, k, 1, h, w), -0.5, dtype=torch.float64)  # every bin mass > 1e-5
    x = torch.tensor([0, 255, 17, 128]).reshape(1, 1, 2, 2).repeat(b, 1, 1, 1)
    got = discretized_logistic_mixture_nll(x, logit_probs, means, log_scales)
    assert torch.allclose(got, _dlogistic_reference(x, logit_probs, means, log_scales), rtol=1e-9)
    # probabilities over the 256 levels of a pixel sum to 1
    levels = torch.arange(256).reshape(256, 1, 1, 1)
    one = lambda t: t[:1].expand(256, *t.shape[1:3], 1, 1) if t.dim() == 5 else t[:1, :, :1, :1].expand(256, -1, 1, 1)  # noqa: E731
    nll = discretized_logistic_mixture_nll(
        levels,
        one(logit_probs),
        means[:1, :, :, :1, :1].expand(256, -1, -1, 1, 1),
        log_scales[:1, :, :, :1, :1].expand(256, -1, -1, 1, 1),
    )
    assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-9)


def test_discretized_logistic_rgb_coupling_shifts_green_and_blue_means():
    torch.manual_seed(1)
    x = torch.randint(0, 256, (2, 3, 2, 2))
    args = (torch.randn(2, 1, 2, 2), torch.zeros(2, 1, 3, 2, 2), torch.full((2, 1, 3, 2, 2), -1.0))
    coeffs = torch.zeros(2, 1, 3, 2, 2)
    base = discretized_logistic_mixture_nll(x, *args, coeffs)
    assert torch.allclose(base, discretized_logistic_mixture_nll(x, *args))
    coeffs[:, :, 0] = 0.5  # G depends on R
    x_t = 2 * x.double() / 255 - 1
    shifted_means = args[1].clone().double()
    shifted_means[:, :, 1] += 0.5 * x_t[:, None, 0]
    assert torch.allclose(
        discretized_logistic_mixture_nll(x, args[0], shifted_means, args[2]),
        discretized_logistic_mixture_nll(x, *args, coeffs),
    )


def test_gaussian_kl_closed_form_and_negative_elbo():
    mu = torch.tensor([[0.0, 1.0]])
    log_std = torch.tensor([[0.0, math.log(2.0)]])
    expected = 0.5 * (1 + 4 - 1 - math.log(4))
    assert gaussian_kl(mu, log_std).item() == pytest.approx(expected)
    assert negative_elbo(torch.tensor([-3.0]), torch.tensor([expected])).item() == pytest.approx(3.0 + expected)


def test_elbo_le_iwae_k_le_iwae_kprime_le_log_px_on_a_toy_model():
    # z ~ N(0, 1), x | z ~ N(z, 1)  =>  p(x) = N(0, 2); a deliberately imperfect q(z|x) = N(0.4x, 0.6^2)
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([-1.5, 0.3, 2.0], dtype=torch.float64)
    log_px = -0.5 * math.log(2 * math.pi * 2) - x**2 / 4
    normal_logpdf = lambda v, m, s: -0.5 * math.log(2 * math.pi) - math.log(s) - (v - m) ** 2 / (2 * s * s)  # noqa: E731

    def bound(k: int, reps: int = 4000) -> torch.Tensor:
        z = 0.4 * x[:, None, None] + 0.6 * torch.randn(3, reps, k, generator=gen, dtype=torch.float64)
        log_w = (
            normal_logpdf(x[:, None, None], z, 1.0)
            + normal_logpdf(z, 0.0, 1.0)
            - normal_logpdf(z, 0.4 * x[:, None, None], 0.6)
        )
        return -iwae_nll(log_w.reshape(3 * reps, k)).reshape(3, reps).mean(1)

    elbo, iwae_5, iwae_50 = bound(1), bound(5), bound(50)
    assert torch.all(elbo < iwae_5) and torch.all(iwae_5 < iwae_50) and torch.all(iwae_50 <= log_px + 1e-3)
    # k = 1 is the ELBO, whose analytic form is E_q[ln p(x|z)] - KL
    q_mu, q_std = 0.4 * x, 0.6
    recon = -0.5 * math.log(2 * math.pi) - ((x - q_mu) ** 2 + q_std**2) / 2
    kl = gaussian_kl(q_mu[:, None], torch.full((3, 1), math.log(q_std)))
    assert torch.allclose(elbo, -negative_elbo(recon, kl), atol=0.02)


def test_reductions_and_errors():
    per = bernoulli_nll(torch.zeros(2, 4), torch.ones(2, 4))
    assert bernoulli_nll(torch.zeros(2, 4), torch.ones(2, 4), reduction="sum").item() == pytest.approx(per.sum().item())
    with pytest.raises(ValueError, match="reduction"):
        bernoulli_nll(torch.zeros(2, 4), torch.ones(2, 4), reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, k\)"):
        iwae_nll(torch.zeros(3))
