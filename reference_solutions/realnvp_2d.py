"""RealNVP for 2-D data (e.g. two moons): a stack of affine coupling layers with MLP conditioners.

Paper: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

Coupling layer with a binary mask b over the two coordinates (eq. 9):

    y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x)),    log|det dy/dx| = sum_j (1 - b_j) s_j  (eq. 6)

with the bounded log-scale s = scale * tanh(raw_s) + scale_shift (scalars ``scale`` and ``scale_shift``
zero-initialised, so every layer starts volume-preserving). Alternating masks let every coordinate be
transformed. Density by change of variables (eq. 3) with a standard normal prior on z = f(x):

    log p(x) = log N(f(x); 0, I) + log|det df/dx|       (nats per point)
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


def mlp(n_in: int, n_hiddens: Sequence[int], n_out: int) -> nn.Sequential:
    """Linear-ReLU stack: n_in -> n_hiddens... -> n_out (no activation after the last layer)."""
    sizes = [n_in, *n_hiddens]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_out))
    return nn.Sequential(*layers)


class AffineCouplingLayer(nn.Module):
    """Affine coupling on (B, 2) inputs. ``parity_type`` True keeps coordinate 0 fixed and transforms
    coordinate 1; False the other way round."""

    def __init__(self, parity_type: bool, n_hiddens: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.parity_type = bool(parity_type)
        mask = torch.tensor([1.0, 0.0]) if self.parity_type else torch.tensor([0.0, 1.0])
        self.register_buffer("mask", mask)
        self.mlp = mlp(2, n_hiddens, 4)  # b*x -> (raw_s, t), two values each
        self.scale = nn.Parameter(torch.zeros(1))
        self.scale_shift = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        """(B, 2) -> (y, log_det): log_det (B,) is log|det| of the map applied (negative when inverting)."""
        mask = self.mask
        raw_s, t = self.mlp(x * mask).chunk(2, dim=1)
        log_s = (self.scale * torch.tanh(raw_s) + self.scale_shift) * (1.0 - mask)
        t = t * (1.0 - mask)
        if invert:
            # x = (y - t) * exp(-s) on the transformed coordinate (inverse of eq. 9)
            return (x - t) * torch.exp(-log_s), -log_s.sum(dim=1)
        # y = x * exp(s) + t on the transformed coordinate (eq. 9); log-det = sum s (eq. 6)
        return x * torch.exp(log_s) + t, log_s.sum(dim=1)


@dataclass(frozen=True)
class RealNVP2DConfig:
    n_layers: int = 8
    n_hiddens: tuple[int, ...] = (64, 64)


class RealNVP2D(nn.Module):
    """The course calls this ``RealNVP``. Contract: ``loss``, ``log_prob``, ``sample``; ``transforms``
    holds the coupling layers (alternating parity, first one True)."""

    def __init__(self, n_layers: int = 8, n_hiddens: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.config = RealNVP2DConfig(n_layers, tuple(n_hiddens))
        self.transforms = nn.ModuleList(AffineCouplingLayer(i % 2 == 0, n_hiddens) for i in range(n_layers))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        """x -> (z, log|det dz/dx|) or, with ``invert``, z -> (x, log|det dx/dz|); log-dets (B,)."""
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        layers = reversed(self.transforms) if invert else self.transforms
        for layer in layers:
            x, ld = layer(x, invert=invert)
            log_det = log_det + ld
        return x, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats, (B,): standard normal prior plus the summed log-dets (eq. 3)."""
        z, log_det = self(x)
        log_p_z = -0.5 * (z**2 + LOG_2PI).sum(dim=1)
        return log_p_z + log_det

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Mean negative log-likelihood, nats per point."""
        nll = -self.log_prob(x).mean()
        return {"total_loss": nll, "nll_loss": nll}

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n points (n, 2): z ~ N(0, I) pushed through the inverse flow."""
        p = next(self.parameters())
        z = torch.randn(n, 2, device=p.device, dtype=p.dtype)
        return self(z, invert=True)[0]
