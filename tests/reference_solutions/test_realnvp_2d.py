"""Reference 2-D RealNVP (hw3): exact inverses, log-dets against autograd, a density that integrates to 1."""

import pytest
import torch
from sklearn.datasets import make_moons

from reference_solutions.realnvp_2d import AffineCouplingLayer, RealNVP2D


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def perturb_scales(module: torch.nn.Module, value: float = 0.7) -> None:
    """Move the zero-initialised scale scalars so that the log-scales are not all zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("scale") or name.endswith("scale_shift"):
                p.fill_(value)


def moons(n: int, seed: int) -> torch.Tensor:
    x, _ = make_moons(n_samples=n, noise=0.1, random_state=seed)
    return torch.from_numpy(x).float()


@pytest.mark.parametrize("parity", [True, False])
def test_coupling_layer_inverts_and_matches_autograd_log_det(parity: bool) -> None:
    torch.manual_seed(0)
    layer = AffineCouplingLayer(parity, [16, 16]).double()
    perturb_scales(layer)
    x = torch.randn(6, 2, dtype=torch.float64)
    y, log_det = layer(x)
    kept = 0 if parity else 1
    torch.testing.assert_close(y[:, kept], x[:, kept], rtol=0, atol=0)
    assert (y[:, 1 - kept] - x[:, 1 - kept]).abs().min() > 0
    x_back, inv_log_det = layer(y, invert=True)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(inv_log_det, -log_det)
    for i in range(6):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[i])
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(jac)[1])


def test_coupling_is_volume_preserving_at_init() -> None:
    _, log_det = AffineCouplingLayer(True, [8])(torch.randn(5, 2))
    assert torch.equal(log_det, torch.zeros(5))


def test_flow_inverts_and_matches_autograd_log_det() -> None:
    torch.manual_seed(0)
    flow = RealNVP2D(n_layers=6, n_hiddens=[16, 16]).double()
    perturb_scales(flow, 0.5)
    assert [t.parity_type for t in flow.transforms] == [True, False] * 3
    x = torch.randn(8, 2, dtype=torch.float64)
    z, log_det = flow(x)
    x_back, inv_log_det = flow(z, invert=True)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(inv_log_det, -log_det)
    for i in range(8):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(jac)[1])
    normal = torch.distributions.Normal(torch.zeros(2, dtype=torch.float64), 1.0)
    torch.testing.assert_close(flow.log_prob(x), normal.log_prob(z).sum(1) + log_det)


def grid_mass(flow: RealNVP2D, lo: float = -6.0, hi: float = 6.0, n: int = 321) -> float:
    """Riemann sum of p(x) over [lo, hi]^2."""
    ticks = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(ticks, ticks, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], dim=1)  # (n*n, 2)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
    return (density.sum() * (ticks[1] - ticks[0]) ** 2).item()


def test_density_integrates_to_one_before_and_after_training() -> None:
    torch.manual_seed(0)
    flow = RealNVP2D(n_layers=6, n_hiddens=[32, 32])
    train, test = moons(2000, seed=0), moons(500, seed=1)
    assert grid_mass(flow.double()) == pytest.approx(1.0, abs=0.02)
    flow.float()
    opt = torch.optim.Adam(flow.parameters(), lr=5e-3)
    with torch.no_grad():
        before = flow.loss(test)["nll_loss"].item()
    for step in range(150):
        batch = train[(step * 128) % 2000 :][:128]
        loss = flow.loss(batch)
        assert set(loss) == {"total_loss", "nll_loss"}
        opt.zero_grad()
        loss["total_loss"].backward()
        opt.step()
    with torch.no_grad():
        after = flow.loss(test)["nll_loss"].item()
    # a Gaussian fitted to the moons scores about 1.9 nats; the two arcs need far less
    assert after < 1.5 < before, (before, after)
    assert grid_mass(flow.double()) == pytest.approx(1.0, abs=0.02)
    samples = flow.sample(1000)
    assert samples.shape == (1000, 2)
    assert torch.isfinite(samples).all()
    assert samples.mean(0)[0] == pytest.approx(0.5, abs=0.25)  # the moons' centre is (0.5, 0.25)
