"""Reference image RealNVP (hw2 2024 / hw3 2023): the course's logit-transform values, coupling init
properties, exact inverses, log-dets against autograd and the likelihood bookkeeping."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from reference_solutions.realnvp import (
    ActNorm,
    AffineChannelCouplingLayer,
    AffineCheckerboardCouplingLayer,
    LogitTransform,
    RealNVP,
    dequantize,
    squeeze,
    unsqueeze,
)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def perturb_scales(module: torch.nn.Module, value: float = 0.5) -> None:
    """Move the zero-initialised scale scalars so that the log-scales are not all zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("scale") or name.endswith("scale_shift"):
                p.fill_(value)


def assert_log_det_matches_autograd(fn, x: torch.Tensor, log_det: torch.Tensor) -> None:
    """``fn`` maps one (C, H, W) image; log_det[i] must equal log|det J| of fn at x[i]."""
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: fn(v.view(1, *x.shape[1:])).flatten(), x[i].flatten())
        sign, log_abs_det = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(log_det[i], log_abs_det, rtol=1e-9, atol=1e-9)


def test_logit_transform_course_values_and_inverse() -> None:
    x = torch.tensor([0.0, 1.0, 2.0, 3.0]) / 256
    z, log_det = LogitTransform(alpha=0.05)(x)
    np.testing.assert_allclose(z.numpy(), [-2.944439, -2.8727808, -2.8054335, -2.7418802], rtol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), [2.9416652, 2.8774219, 2.8175175, 2.7614343], rtol=1e-5)
    x_back, log_det_back = LogitTransform(alpha=0.05)(z, invert=True)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-6)
    torch.testing.assert_close(log_det_back, log_det, rtol=1e-5, atol=1e-5)  # forward map's log-det


@pytest.mark.parametrize("nbins", [2, 4, 256])
def test_dequantize_keeps_levels_in_disjoint_ordered_bins(nbins: int) -> None:
    levels = torch.arange(nbins, dtype=torch.float64) / (nbins - 1)
    x = levels.repeat(50)
    y = dequantize(x, nbins)
    assert y.min() >= 0 and y.max() < 1
    torch.testing.assert_close(torch.floor(y * nbins), x * (nbins - 1))
    torch.testing.assert_close(dequantize(x, nbins, torch.full_like(x, 0.5)), (x * (nbins - 1) + 0.5) / nbins)


def test_checkerboard_mask_parity() -> None:
    mask_t = AffineCheckerboardCouplingLayer.build_mask((4, 6), parity_type=True)
    mask_f = AffineCheckerboardCouplingLayer.build_mask((4, 6), parity_type=False)
    assert mask_t.shape == (1, 1, 4, 6)
    assert mask_t[0, 0, 0, 0] == 1 and mask_f[0, 0, 0, 0] == 0
    torch.testing.assert_close(mask_t + mask_f, torch.ones_like(mask_t))
    # neighbours differ: a real checkerboard
    assert (mask_t[..., 1:, :] != mask_t[..., :-1, :]).all() and (mask_t[..., 1:] != mask_t[..., :-1]).all()
    layer = AffineCheckerboardCouplingLayer(True, (4, 6), 3, 8, 1)
    torch.testing.assert_close(layer.mask, mask_t)


def coupling_layers() -> list[torch.nn.Module]:
    return [
        AffineCheckerboardCouplingLayer(True, (4, 4), 2, 8, 2),
        AffineCheckerboardCouplingLayer(False, (4, 4), 2, 8, 2),
        AffineChannelCouplingLayer(True, 4, 8, 2),
        AffineChannelCouplingLayer(False, 4, 8, 2),
    ]


@pytest.mark.parametrize("index", range(4))
def test_coupling_init_log_scale_zero_and_masked_half_passes_through(index: int) -> None:
    torch.manual_seed(index)
    layer = coupling_layers()[index]
    c = 2 if index < 2 else 4
    _, log_scale = layer(torch.randn(3, c, 4, 4))
    assert torch.equal(log_scale, torch.zeros_like(log_scale))
    y0, _ = layer(torch.zeros(3, c, 4, 4))
    if index < 2:
        kept = layer.mask.expand_as(y0).bool()
    else:
        kept = torch.zeros_like(y0, dtype=torch.bool)
        kept[:, : c // 2] = True
        if index == 3:
            kept = ~kept
    assert torch.equal(y0[kept], torch.zeros_like(y0[kept]))


@pytest.mark.parametrize("index", range(4))
def test_coupling_inverts_exactly_and_log_det_matches_autograd(index: int) -> None:
    torch.manual_seed(index)
    layer = coupling_layers()[index].double()
    perturb_scales(layer)
    c = 2 if index < 2 else 4
    x = torch.randn(2, c, 4, 4, dtype=torch.float64)
    y, log_scale = layer(x)
    assert log_scale.shape == x.shape and log_scale.abs().sum() > 0
    x_back, log_scale_back = layer(y, invert=True)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_scale_back, log_scale)  # s depends only on the untouched half
    assert_log_det_matches_autograd(lambda v: layer(v)[0], x, log_scale.flatten(1).sum(1))


def test_actnorm_data_dependent_init_and_inverse() -> None:
    norm = ActNorm(3).double()
    x = 2.0 + 3.0 * torch.randn(64, 3, 4, 4, dtype=torch.float64)
    y, log_det = norm(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(y.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), rtol=1e-4, atol=1e-4)
    x2 = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    y2, _ = norm(x2)  # initialised once: the second batch does not re-fit
    torch.testing.assert_close(norm(y2, invert=True)[0], x2)
    assert_log_det_matches_autograd(lambda v: norm(v)[0], x2[:2], log_det[:2].flatten(1).sum(1))


def test_squeeze_round_trip_and_block_layout() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    torch.testing.assert_close(unsqueeze(s), x)
    # channel c*4 + 2i + j at (h, w) holds pixel (2h + i, 2w + j) of channel c
    torch.testing.assert_close(s[:, 1 * 4 + 2 * 1 + 0], x[:, 1, 1::2, 0::2])


@pytest.mark.parametrize(("channels", "size"), [(1, 4), (3, 4)])
def test_flow_inverts_exactly_and_log_det_matches_autograd(channels: int, size: int) -> None:
    torch.manual_seed(0)
    flow = RealNVP((size, size), n_channels=channels, n_filters=8, n_blocks=1, nbins=256).double()
    perturb_scales(flow, 0.3)
    x = torch.randint(0, 256, (16, channels, size, size)).double() / 255
    y = dequantize(x, 256)
    flow(y)  # ActNorm's data-dependent initialisation
    z, log_det = flow(y[:2])
    y_back, inv_log_det = flow(z, invert=True)
    torch.testing.assert_close(y_back, y[:2], rtol=0, atol=1e-10)
    torch.testing.assert_close(inv_log_det, -log_det)
    assert_log_det_matches_autograd(lambda v: flow(v)[0], y[:2], log_det)
    # log p_Y(y) = log N(z; 0, I) + log|det dz/dy|, logit Jacobian included exactly once
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    torch.testing.assert_close(flow.log_density(y[:2]), normal.log_prob(z).flatten(1).sum(1) + log_det)
    u = torch.rand_like(x[:2])
    d = channels * size * size
    expected = flow.log_density(dequantize(x[:2], 256, u)) - d * math.log(256)
    torch.testing.assert_close(flow.log_prob(x[:2], u), expected)


def test_layer_order_and_parities() -> None:
    flow = RealNVP((8, 8), n_channels=1, n_filters=8, n_blocks=1, nbins=2)
    kinds = [type(layer).__name__ for layer in flow.transforms]
    checkerboard, channel = ["AffineCheckerboardCouplingLayer", "ActNorm"], ["AffineChannelCouplingLayer", "ActNorm"]
    assert kinds == checkerboard * 4 + ["Squeeze"] + channel * 3 + ["Squeeze"] + checkerboard * 3
    checker = [layer for layer in flow.transforms if isinstance(layer, AffineCheckerboardCouplingLayer)]
    assert [bool(layer.mask[0, 0, 0, 0]) for layer in checker] == [True, False, True, False, True, False, True]


def test_binarized_digits_training_and_sampling() -> None:
    digits = load_digits().images  # (1797, 8, 8), values 0..16
    x = torch.from_numpy(digits > 8).float().unsqueeze(1)  # (N, 8, 8) -> (N, 1, 8, 8) in {0, 1}
    train, test = x[:1500], x[1500:]
    torch.manual_seed(0)
    flow = RealNVP((8, 8), n_channels=1, n_filters=8, n_blocks=1, nbins=2)
    opt = torch.optim.Adam(flow.parameters(), lr=5e-3)
    d_ln2 = 64 * math.log(2)
    with torch.no_grad():
        flow(dequantize(train[:512], 2))  # data-dependent ActNorm init on a large batch
        before = flow.loss(test)["nll_loss"].item() / d_ln2
    for step in range(40):
        batch = train[(step * 32) % 1500 :][:32]
        loss = flow.loss(batch)
        assert set(loss) == {"total_loss", "nll_loss"}
        opt.zero_grad()
        loss["total_loss"].backward()
        opt.step()
    with torch.no_grad():
        after = flow.loss(test)["nll_loss"].item() / d_ln2
    # bits/dim of binary data: 1.0 is a fair coin per pixel
    assert after < min(0.8, before - 0.15), (before, after)
    samples = flow.sample(16)
    assert samples.shape == (16, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
