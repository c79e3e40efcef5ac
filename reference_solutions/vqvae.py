"""VQ-VAE for binary images, with a PixelCNN prior over its grid of code indices.

van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017, arXiv:1711.00937.

The encoder's output z_e(x) (B, D, h, w) is quantised position by position to its nearest codebook vector
(eq. 1-2): k = argmin_j ||z_e - e_j||_2, z_q = e_k. The decoder reads z_q through the straight-through
estimator (section 3.2): z_e + sg[z_q - z_e] has the value z_q and passes the decoder's gradient to z_e
unchanged. The objective (eq. 3), squared norms taken as means over the elements of z_e:

    L = -log p(x | z_q) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2,

the codebook term moving the codes towards the encoder's outputs, the commitment term (beta = 0.25 in
the paper) keeping the encoder near its codes. p(x | z_q) is a 2-way categorical per pixel.

After the VQ-VAE is trained, the prior over the code grid is a PixelCNN (van den Oord et al., "Pixel
Recurrent Neural Networks", arXiv:1601.06759) on one-hot codes: its first masked convolution has mask 'A'
(position i sees only positions before it in raster order), the later ones mask 'B'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reference_solutions.pixelcnn import MaskedConv2d


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation of (B, D, h, w) encoder outputs to a codebook of K vectors."""

    def __init__(self, num_embeddings: int, embedding_dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.beta = num_embeddings, embedding_dim, beta
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        self.embedding.weight.data.uniform_(-1.0 / num_embeddings, 1.0 / num_embeddings)

    def get_code_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, h, w) long: the index of the nearest code (eq. 1) at every position."""
        batch, _, height, width = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.embedding_dim)  # (B, D, h, w) -> (B h w, D)
        codes = self.embedding.weight  # (K, D)
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2
        distances = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ codes.T + codes.pow(2).sum(1)  # (B h w, K)
        return distances.argmin(dim=1).reshape(batch, height, width)

    def get_quantized(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, D, h, w): the codebook vectors of the indices."""
        return self.embedding(indices).permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_q with the straight-through gradient (B, D, h, w), the scalar VQ loss of eq. 3)."""
        z_q = self.get_quantized(self.get_code_indices(z_e))
        codebook_loss = F.mse_loss(z_q, z_e.detach())  # ||sg[z_e] - e||^2
        commitment_loss = F.mse_loss(z_e, z_q.detach())  # ||z_e - sg[e]||^2
        z_q_st = z_e + (z_q - z_e).detach()  # value z_q, gradient to z_e (section 3.2)
        return z_q_st, codebook_loss + self.beta * commitment_loss


class ConvEncoder(nn.Module):
    """(B, 1, H, W) in {0, 1} -> z_e (B, D, H / 2^downsample, W / 2^downsample)."""

    def __init__(self, embedding_dim: int, hidden: int, downsample: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(downsample):
            layers += [nn.Conv2d(channels, hidden, 4, stride=2, padding=1), nn.ReLU()]
            channels = hidden
        layers += [nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, embedding_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2.0 * x - 1.0)


class ConvDecoder(nn.Module):
    """z_q (B, D, h, w) -> 2-class logits (B, 2, 1, h 2^upsample, w 2^upsample)."""

    def __init__(self, embedding_dim: int, hidden: int, upsample: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(embedding_dim, hidden, 3, padding=1), nn.ReLU()]
        for _ in range(upsample):
            layers += [nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(hidden, 2, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q).unsqueeze(2)  # (B, 2, H, W) -> (B, 2, 1, H, W)


@dataclass(frozen=True)
class VQVAEConfig:
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W); one binary channel
    num_embeddings: int = 64
    embedding_dim: int = 16
    beta: float = 0.25
    hidden: int = 64
    downsample: int = 2  # stride-2 convolutions: the code grid is (H, W) / 2^downsample


class VQVAEModel(nn.Module):
    """Encoder, vector quantiser and decoder; `loss(x)` is eq. 3 with the cross-entropy in nats per pixel."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_embeddings: int = 64,
        embedding_dim: int = 16,
        beta: float = 0.25,
        hidden: int = 64,
        downsample: int = 2,
    ) -> None:
        super().__init__()
        self.config = VQVAEConfig(tuple(input_shape), num_embeddings, embedding_dim, beta, hidden, downsample)
        _, height, width = self.config.input_shape
        self.latent_size = (height >> downsample, width >> downsample)
        self.encoder = ConvEncoder(embedding_dim, hidden, downsample)
        self.vq = VectorQuantizer(num_embeddings, embedding_dim, beta)
        self.decoder = ConvDecoder(embedding_dim, hidden, downsample)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, H, W) in {0, 1} -> (logits (B, 2, 1, H, W), vq_loss)."""
        z_q, vq_loss = self.vq(self.encoder(x))
        return self.decoder(z_q), vq_loss

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, vq_loss = self(x)
        ce_loss = F.cross_entropy(logits, x.long())  # -log p(x | z_q), nats per pixel
        return {"total_loss": ce_loss + vq_loss, "ce_loss": ce_loss, "vq_loss": vq_loss}

    @torch.no_grad()
    def get_indices(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, H, W) -> code indices (B, h, w) long."""
        return self.vq.get_code_indices(self.encoder(x))

    def prior(self, n: int) -> torch.Tensor:
        """n code grids (n, h, w) drawn uniformly from the codebook."""
        return torch.randint(
            0, self.config.num_embeddings, (n, *self.latent_size), device=self.vq.embedding.weight.device
        )

    @staticmethod
    def sample_from_logits(logits: torch.Tensor) -> torch.Tensor:
        """2-class logits (B, 2, 1, H, W) -> images (B, 1, H, W) in {0, 1}, every pixel drawn."""
        probs = F.softmax(logits, dim=1)[:, 1]  # (B, 2, 1, H, W) -> p(x = 1), (B, 1, H, W)
        return torch.bernoulli(probs)

    @torch.no_grad()
    def sample(self, n: int, indices: torch.Tensor | None = None) -> torch.Tensor:
        """n images (n, 1, H, W) in {0, 1} decoded from `indices` (n, h, w), or from the uniform prior."""
        indices = self.prior(n) if indices is None else indices.reshape(n, *self.latent_size)
        return self.sample_from_logits(self.decoder(self.vq.get_quantized(indices.long())))


class PixelCNNPrior(nn.Module):
    """Autoregressive prior over (h, w) grids of code indices; logits (B, K, 1, h, w)."""

    def __init__(
        self,
        num_embeddings: int,
        input_shape: tuple[int, int],
        n_filters: int = 32,
        kernel_size: int = 3,
        n_layers: int = 3,
    ) -> None:
        super().__init__()
        self.num_embeddings, self.input_shape = num_embeddings, tuple(input_shape)
        pad = kernel_size // 2
        layers: list[nn.Module] = [MaskedConv2d("A", num_embeddings, n_filters, kernel_size, padding=pad)]
        for _ in range(n_layers - 1):
            layers += [nn.ReLU(), MaskedConv2d("B", n_filters, n_filters, kernel_size, padding=pad)]
        layers += [nn.ReLU(), MaskedConv2d("B", n_filters, num_embeddings, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, 1, h, w) long -> logits (B, K, 1, h, w)."""
        one_hot = F.one_hot(indices[:, 0].long(), self.num_embeddings).permute(0, 3, 1, 2).float()  # (B, K, h, w)
        return self.net(one_hot).unsqueeze(2)

    def loss(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy in nats per code."""
        return {"total_loss": F.cross_entropy(self(indices), indices.long())}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n code grids (n, 1, h, w) long, drawn position by position in raster order."""
        device = next(self.parameters()).device
        indices = torch.zeros(n, 1, *self.input_shape, dtype=torch.long, device=device)
        height, width = self.input_shape
        for i in range(height):
            for j in range(width):
                logits = self(indices)[:, :, 0, i, j]  # (n, K)
                indices[:, 0, i, j] = torch.distributions.Categorical(logits=logits).sample()
        return indices
