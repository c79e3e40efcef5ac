"""Wasserstein GANs: weight clipping, the gradient penalty and spectral normalisation.

Arjovsky et al., "Wasserstein GAN", ICML 2017, arXiv:1701.07875; Gulrajani et al., "Improved Training of
Wasserstein GANs", NeurIPS 2017, arXiv:1704.00028; Miyato et al., "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018, arXiv:1802.05957.

The critic f (no sigmoid) estimates the Wasserstein-1 distance by the Kantorovich-Rubinstein duality,
W(p, q) = sup_{||f||_L <= 1} E_p f - E_q f, so its loss is E f(G(z)) - E f(x) and the generator's is
-E f(G(z)). The Lipschitz bound comes from one of three devices:

- weight clipping (Algorithm 1): every weight clamped into [-c, c]; here before each critic loss, so the
  critic that loss evaluates is already clipped;
- the gradient penalty (eq. 3): lambda E (||grad f(x_hat)||_2 - 1)^2 at x_hat = t x + (1 - t) G(z), one
  t ~ U[0, 1] per sample, the norm over all of a sample's elements; `create_graph=True` lets the penalty's
  gradient reach the critic's weights;
- spectral normalisation (Algorithm 1 of Miyato et al.): each layer divides its weight, reshaped to
  (out, -1), by sigma estimated with power iteration, v = W^T u / ||W^T u||, u = W v / ||W v||,
  sigma = u^T W v, one step per forward from the u kept from the call before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def power_iteration_method(
    weight: torch.Tensor, n_iters: int, u_init: torch.Tensor, v_init: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sigma, u, v) after `n_iters` steps v <- W^T u / ||.||, u <- W v / ||.|| from (u_init, v_init);
    sigma = u^T W v. `weight` (m, n), u (m,), v (n,)."""
    u, v = u_init, v_init
    for _ in range(n_iters):
        v = F.normalize(weight.t() @ u, dim=0)
        u = F.normalize(weight @ v, dim=0)
    return u @ weight @ v, u, v


class _SpectralNorm:
    """The weight divided by its spectral norm, with u kept as a buffer between calls (mixin)."""

    weight: nn.Parameter
    u: torch.Tensor
    power_iterations: int

    def _init_u(self) -> None:
        rows = self.weight.shape[0]
        self.register_buffer("u", F.normalize(torch.randn(rows), dim=0))  # type: ignore[attr-defined]
        self.register_buffer("v", torch.zeros(self.weight[0].numel()))  # type: ignore[attr-defined]

    def normalized_weight(self) -> torch.Tensor:
        matrix = self.weight.reshape(self.weight.shape[0], -1)  # (out, in) or (out, in k k)
        with torch.no_grad():  # the vectors are constants for the gradient, as in the paper
            _, u, v = power_iteration_method(matrix, self.power_iterations, self.u, self.v)
            self.u.copy_(u)
            self.v.copy_(v)
        return self.weight / (u @ matrix @ v)


class SpectralNormLinear(_SpectralNorm, nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, power_iterations: int = 1) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.power_iterations = power_iterations
        self._init_u()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SpectralNormConv2D(_SpectralNorm, nn.Conv2d):
    def __init__(self, *args: int, power_iterations: int = 1, **kwargs: int) -> None:
        super().__init__(*args, **kwargs)
        self.power_iterations = power_iterations
        self._init_u()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class ConvGenerator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [0, 1]: a linear map to a (2n, H/4, W/4) grid, two x2
    upsamplings with 3x3 convolutions, a sigmoid."""

    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], n_channels: int) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.grid = (2 * n_channels, height // 4, width // 4)
        self.project = nn.Linear(z_dim, math.prod(self.grid))
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * n_channels),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * n_channels, n_channels, 3, padding=1),
            nn.BatchNorm2d(n_channels),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(n_channels, channels, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(len(z), *self.grid))  # (B, 2n H/4 W/4) -> (B, 2n, H/4, W/4)


class ConvCritic(nn.Module):
    """images (B, C, H, W) -> f(x) (B, 1), no sigmoid: two stride-2 convolutions and a linear layer, built
    with `conv_layer` and `linear_layer` (the spectral-norm layers for SN-GAN)."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_channels: int,
        conv_layer: type[nn.Conv2d] = nn.Conv2d,
        linear_layer: type[nn.Linear] = nn.Linear,
        clip_c: float | None = None,
    ) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.clip_c = clip_c
        self.net = nn.Sequential(
            conv_layer(channels, n_channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            conv_layer(n_channels, 2 * n_channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            linear_layer(2 * n_channels * math.ceil(height / 4) * math.ceil(width / 4), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def clip_weights(self) -> None:
        """Clamp every parameter into [-clip_c, clip_c] (the paper clips all of them)."""
        for p in self.parameters():
            p.clamp_(-self.clip_c, self.clip_c)


class WGAN(nn.Module):
    """Generator and critic with the losses as methods; `clip_c`, `gp_weight` and `spectral_norm` choose
    WGAN, WGAN-GP or SN-GAN."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        z_dim: int = 16,
        n_channels: int = 32,
        clip_c: float | None = None,
        gp_weight: float = 0.0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim, self.clip_c, self.gp_weight = z_dim, clip_c, gp_weight
        layers = (SpectralNormConv2D, SpectralNormLinear) if spectral_norm else (nn.Conv2d, nn.Linear)
        self.generator = ConvGenerator(z_dim, tuple(image_shape), n_channels)
        self.critic = ConvCritic(tuple(image_shape), n_channels, *layers, clip_c=clip_c)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=next(self.parameters()).device)

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """E (||grad_x f(x_hat)||_2 - 1)^2 at x_hat = t real + (1 - t) fake, t ~ U[0, 1] per sample."""
        t = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
        x_hat = (t * real + (1 - t) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def loss_critic(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """E f(G(z)) - E f(x) (+ gp_weight * the penalty); G's samples are detached."""
        if self.clip_c is not None:
            self.critic.clip_weights()
        fake = self.generator(self._noise(len(x))).detach()
        distance = self.critic(x).mean() - self.critic(fake).mean()
        penalty = self.gradient_penalty(x, fake) if self.gp_weight else torch.zeros((), device=x.device)
        return {
            "critic_loss": -distance + self.gp_weight * penalty,
            "wasserstein_distance": distance,
            "gradient_penalty": penalty,
        }

    def loss_generator(self, batch_size: int) -> dict[str, torch.Tensor]:
        """-E f(G(z)) on `batch_size` fresh samples."""
        return {"generator_loss": -self.critic(self.generator(self._noise(batch_size))).mean()}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]."""
        return self.generator(self._noise(n))
