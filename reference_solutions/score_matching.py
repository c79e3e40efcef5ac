"""Denoising score matching with Langevin sampling, and the noise-conditional score network (NCSN).

Papers: Vincent, "A Connection Between Score Matching and Denoising Autoencoders", Neural Computation 2011
(DSM: for x̃ = x + σε the score of q_σ(x̃|x) is -ε/σ, eq. 4.2); Welling & Teh, "Bayesian Learning via
Stochastic Gradient Langevin Dynamics", ICML 2011 (x ← x + (η/2) ∇log p(x) + √η z); Song & Ermon,
"Generative Modeling by Estimating Gradients of the Data Distribution", NeurIPS 2019, arXiv:1907.05600
(NCSN: levels σ_1 > ... > σ_L, weight λ(σ) = σ², eq. 6; annealed Langevin, Algorithm 1, with step
α_i = ε σ_i² / σ_L², σ_L the smallest level).

Losses are per element (the shape of x) and reduced as the course does: the mean over the batch, then the
sum over the data dimensions.
"""

import math

import torch
from torch import Tensor, nn


class ScoreMLP(nn.Module):
    """s(x) or s(x, i): an MLP on flattened x; with `num_levels`, noise level i enters by an embedding."""

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 128, num_levels: int = 0) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        dim = math.prod(self.input_shape)
        self.embed = nn.Embedding(num_levels, hidden) if num_levels else None
        self.inp = nn.Linear(dim, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, level: Tensor | None = None) -> Tensor:
        h = self.inp(x.flatten(1))
        if self.embed is not None:
            h = h + self.embed(level)
        return self.body(h).view(x.shape)


class DenoisingScoreMatcher(nn.Module):
    """``DenoisingScoreMatcher(score_model, input_shape, sigma)``: DSM at one noise level."""

    def __init__(self, score_model: nn.Module, input_shape: tuple[int, ...], sigma: float) -> None:
        super().__init__()
        self.score_model, self.input_shape, self.sigma = score_model, tuple(input_shape), float(sigma)

    def forward(self, x: Tensor) -> Tensor:
        """Per-element (s(x + σε) + ε/σ)², the shape of x."""
        eps = torch.randn_like(x)
        return (self.score_model(x + self.sigma * eps) + eps / self.sigma) ** 2

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        return {"total_loss": self(x).mean(0).sum()}

    @torch.no_grad()
    def langevin_dynamics(self, x: Tensor, num_steps: int, eta: float) -> Tensor:
        """`num_steps` of x ← x + (η/2) s(x) + √η z."""
        for _ in range(num_steps):
            x = x + 0.5 * eta * self.score_model(x) + math.sqrt(eta) * torch.randn_like(x)
        return x

    @torch.no_grad()
    def sample(self, num_samples: int, num_steps: int, eta: float) -> Tensor:
        """Langevin dynamics from U[-1, 1]^D."""
        x = 2 * torch.rand(num_samples, *self.input_shape) - 1
        return self.langevin_dynamics(x, num_steps, eta)


class NoiseConditionedScoreNetwork(nn.Module):
    """``NoiseConditionedScoreNetwork(score_model, input_shape, sigmas)``, sigmas in decreasing order; the
    score model is called as ``score_model(x̃, i)`` with i (B,) the index of each row's level."""

    def __init__(self, score_model: nn.Module, input_shape: tuple[int, ...], sigmas: Tensor) -> None:
        super().__init__()
        self.score_model, self.input_shape = score_model, tuple(input_shape)
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        """Per-element σ_i² (s(x + σ_i ε, i) + ε/σ_i)², one random level i per row."""
        levels = torch.randint(0, len(self.sigmas), (len(x),), device=x.device)
        sigma = self.sigmas[levels].view(-1, *[1] * (x.dim() - 1))
        eps = torch.randn_like(x)
        return sigma**2 * (self.score_model(x + sigma * eps, levels) + eps / sigma) ** 2

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        return {"total_loss": self(x).mean(0).sum()}

    @torch.no_grad()
    def annealed_langevin_dynamics(self, x: Tensor, num_steps: int, eps: float) -> Tensor:
        """For each level i from the largest σ, `num_steps` Langevin steps of size α_i = ε σ_i² / σ_L²."""
        for i, sigma in enumerate(self.sigmas):
            alpha = eps * float(sigma / self.sigmas[-1]) ** 2
            levels = torch.full((len(x),), i, dtype=torch.long, device=x.device)
            for _ in range(num_steps):
                x = x + 0.5 * alpha * self.score_model(x, levels) + math.sqrt(alpha) * torch.randn_like(x)
        return x

    @torch.no_grad()
    def sample(self, num_samples: int, num_steps: int, eps: float) -> Tensor:
        x = 2 * torch.rand(num_samples, *self.input_shape) - 1
        return self.annealed_langevin_dynamics(x, num_steps, eps)
