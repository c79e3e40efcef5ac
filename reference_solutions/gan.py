"""A GAN with the non-saturating generator loss.

Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, arXiv:1406.2661.

The discriminator D(x) in (0, 1) maximises the value function (eq. 1)

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],

so its loss is -log D(x) - log(1 - D(G(z))). The generator would minimise log(1 - D(G(z))), whose gradient
vanishes while D rejects its samples confidently; it minimises -log D(G(z)) instead (section 3, the
"non-saturating" loss), which has the same fixed point. Training alternates a discriminator step on every
batch and a generator step every `d_steps` batches (the grader's `harness.train_adversarial`).

Both networks are MLPs over the flattened image; G ends in a sigmoid (pixels in [0, 1]), D in a sigmoid
(a probability), as in the course's template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [0, 1]."""

    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, math.prod(self.image_shape)),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), *self.image_shape)  # (B, C H W) -> (B, C, H, W)


class Discriminator(nn.Module):
    """images (B, C, H, W) -> D(x) (B, 1), the probability that x is real."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, C, H, W) -> (B, C H W)
            nn.Linear(math.prod(image_shape), hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class GANConfig:
    image_shape: tuple[int, int, int] = (1, 8, 8)
    z_dim: int = 16
    hidden: int = 128


class GAN(nn.Module):
    """Generator and discriminator with the losses as methods, so that any training loop can drive them."""

    def __init__(self, image_shape: tuple[int, int, int], z_dim: int = 16, hidden: int = 128) -> None:
        super().__init__()
        self.config = GANConfig(tuple(image_shape), z_dim, hidden)
        self.generator = Generator(z_dim, self.config.image_shape, hidden)
        self.discriminator = Discriminator(self.config.image_shape, hidden)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, device=next(self.parameters()).device)

    def loss_discriminator(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """-log D(x) - log(1 - D(G(z))), each averaged over the batch; G's samples are detached."""
        fake = self.generator(self._noise(len(x))).detach()
        d_real, d_fake = self.discriminator(x), self.discriminator(fake)
        loss_real = F.binary_cross_entropy(d_real, torch.ones_like(d_real))  # -log D(x)
        loss_fake = F.binary_cross_entropy(d_fake, torch.zeros_like(d_fake))  # -log(1 - D(G(z)))
        return {
            "discriminator_loss": loss_real + loss_fake,
            "discriminator_loss_real": loss_real,
            "discriminator_loss_fake": loss_fake,
        }

    def loss_generator(self, batch_size: int) -> dict[str, torch.Tensor]:
        """The non-saturating loss -log D(G(z)), averaged over `batch_size` fresh samples."""
        d_fake = self.discriminator(self.generator(self._noise(batch_size)))
        return {"generator_loss": F.binary_cross_entropy(d_fake, torch.ones_like(d_fake))}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]."""
        return self.generator(self._noise(n))
