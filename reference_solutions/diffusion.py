"""DDPM: the forward and reverse Gaussian diffusion, its ε-prediction loss and ancestral sampling.

Papers: Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, arXiv:2006.11239
(q(x_t|x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I), eq. 4; the posterior q(x_{t-1}|x_t, x_0) = N(μ̃_t, β̃_t I),
eqs. 6-7; the simple loss ‖ε - ε_θ(x_t, t)‖², eq. 14; Algorithm 2); Nichol & Dhariwal, "Improved
Denoising Diffusion Probabilistic Models", ICML 2021 (the cosine schedule ᾱ_t = f(t)/f(0),
f(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, β_t clipped at 0.999, eq. 17).

Time steps are 0-based, as in the course: t = 0 .. T-1, β_t the t-th entry; ᾱ_{t-1} is 1 at t = 0.
Every coefficient takes a vector t (B,), one time step per row.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def make_betas(num_timesteps: int, schedule: str = "cosine") -> Tensor:
    """β_0 .. β_{T-1} (float64): "cosine" (s = 0.008, clipped at 0.999) or "linear" (1e-4 .. 0.02 at T = 1000,
    scaled by 1000 / T)."""
    if schedule == "linear":
        scale = 1000 / num_timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"schedule: expected 'cosine' or 'linear', got {schedule!r}")


def _at(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """values[t] (B,) shaped (B, 1, ..., 1) to broadcast against `like`, in its dtype."""
    return values.to(like.device)[t].to(like.dtype).view(-1, *[1] * (like.dim() - 1))


class BaseDiffusion:
    def __init__(self, betas: Tensor) -> None:
        self.betas = torch.as_tensor(betas, dtype=torch.float64)
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])


class ForwardDiffusion(BaseDiffusion):
    def get_mean_variance(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """q(x_t | x_0): mean √ᾱ_t x_0 and variance 1 - ᾱ_t (broadcast to x_0's shape)."""
        abar = _at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0, (1 - abar).expand_as(x0)

    def get_samples(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        mean, variance = self.get_mean_variance(x0, t)
        noise = torch.randn_like(x0) if noise is None else noise
        return mean + variance.sqrt() * noise


class ReverseDiffusion(BaseDiffusion):
    def get_x0(self, xt: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """x̂_0 = (x_t - √(1 - ᾱ_t) ε) / √ᾱ_t."""
        abar = _at(self.alphas_cumprod, t, xt)
        return (xt - (1 - abar).sqrt() * eps) / abar.sqrt()

    def get_mean_variance(self, xt: Tensor, eps: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """q(x_{t-1} | x_t, x̂_0): mean μ̃_t and variance β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)."""
        beta, alpha = _at(self.betas, t, xt), _at(self.alphas, t, xt)
        abar, abar_prev = _at(self.alphas_cumprod, t, xt), _at(self.alphas_cumprod_prev, t, xt)
        x0 = self.get_x0(xt, eps, t)
        mean = beta * abar_prev.sqrt() / (1 - abar) * x0 + (1 - abar_prev) * alpha.sqrt() / (1 - abar) * xt
        return mean, (beta * (1 - abar_prev) / (1 - abar)).expand_as(xt)

    def get_samples(self, xt: Tensor, eps: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """One ancestral step; no noise where t = 0."""
        mean, variance = self.get_mean_variance(xt, eps, t)
        noise = torch.randn_like(xt) if noise is None else noise
        return mean + (t > 0).to(xt.dtype).view(-1, *[1] * (xt.dim() - 1)) * variance.sqrt() * noise


class DDPM(nn.Module):
    """``DDPM(num_timesteps, model, input_shape, schedule="cosine")``; ``model(x_t, t)`` predicts ε."""

    def __init__(self, num_timesteps: int, model: nn.Module, input_shape: tuple[int, ...], schedule: str = "cosine"):
        super().__init__()
        self.num_timesteps, self.model, self.input_shape = num_timesteps, model, tuple(input_shape)
        betas = make_betas(num_timesteps, schedule)
        self.forward_diffusion, self.reverse_diffusion = ForwardDiffusion(betas), ReverseDiffusion(betas)

    def loss(self, x0: Tensor) -> dict[str, Tensor]:
        t = torch.randint(0, self.num_timesteps, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.forward_diffusion.get_samples(x0, t, noise)
        return {"total_loss": F.mse_loss(self.model(xt, t), noise)}

    @torch.no_grad()
    def sample(self, num_samples: int) -> Tensor:
        x = torch.randn(num_samples, *self.input_shape)
        for step in reversed(range(self.num_timesteps)):
            t = torch.full((num_samples,), step, dtype=torch.long)
            x = self.reverse_diffusion.get_samples(x, self.model(x, t), t)
        return x


class ConditionalMLP(nn.Module):
    """ε_θ(x_t, t): an MLP on flattened x_t with a learned embedding of t added to its first layer (the
    network the template gives; the student writes the diffusion around it)."""

    def __init__(self, input_shape: tuple[int, ...], num_embeds: int, hidden: int = 128) -> None:
        super().__init__()
        dim = math.prod(input_shape)
        self.inp, self.embed = nn.Linear(dim, hidden), nn.Embedding(num_embeds, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.body(self.inp(x.flatten(1)) + self.embed(t)).view(x.shape)
