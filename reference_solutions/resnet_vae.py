"""Convolutional VAE with residual encoder and decoder.

Papers: Kingma & Welling, arXiv:1312.6114 (the VAE; objective and units as in ``vae.py``);
He et al., "Deep Residual Learning for Image Recognition", arXiv:1512.03385 (residual blocks,
y = relu(F(x) + W_s x), eq. 2). No batch normalisation: with it, the likelihood of one image would
depend on the other images of its batch in training mode.

Shape arithmetic: ``ResNetBlock(..., stride=s)`` maps (B, C_in, H, W) -> (B, C_out, H/s, W/s) for an
odd kernel (padding k // 2); ``ResNetTransposeBlock(..., stride=s)`` maps (B, C_in, H, W) ->
(B, C_out, s*H, s*W) for a kernel with k - s even (padding (k - s) / 2), e.g. k = 4, 6, 8 at s = 2.
"""

import math

from torch import Tensor, nn

from .vae import ConvVAE


class ResNetBlock(nn.Module):
    """conv(k, stride) -> ReLU -> conv(k) plus a 1x1 (strided) projection shortcut (He et al. eq. 2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        final_relu: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd size, got {kernel_size}")
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size, 1, pad),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride)
        self.final_relu = final_relu

    def forward(self, x: Tensor) -> Tensor:
        # y = F(x) + W_s x (He et al. eq. 2)
        y = self.net(x) + self.shortcut(x)
        return y.relu() if self.final_relu else y


class ResNetTransposeBlock(nn.Module):
    """Upsampling twin of ResNetBlock: transposed conv(k, stride) -> ReLU -> conv(3), transposed 1x1-style
    shortcut (kernel = stride = s, so the shortcut also multiplies the spatial shape by s)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 4,
        stride: int = 2,
        final_relu: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size < stride or (kernel_size - stride) % 2:
            raise ValueError(f"kernel_size: expected k >= stride with k - stride even, got {kernel_size}, {stride}")
        self.net = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, (kernel_size - stride) // 2),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.shortcut = nn.ConvTranspose2d(in_channels, out_channels, stride, stride)
        self.final_relu = final_relu

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x) + self.shortcut(x)
        return y.relu() if self.final_relu else y


class ConvResNetEncoder(nn.Module):
    """x̃ (B, C, H, W) -> (mu, log_std), each (B, n_latent); H, W divisible by 4."""

    def __init__(self, input_shape: tuple[int, int, int], n_latent: int, n_filters: int = 32) -> None:
        super().__init__()
        c, h, w = input_shape
        self.net = nn.Sequential(
            nn.Conv2d(c, n_filters, 3, 1, 1),
            nn.ReLU(),
            ResNetBlock(n_filters, 2 * n_filters, 3, stride=2),  # H -> H/2
            ResNetBlock(2 * n_filters, 4 * n_filters, 3, stride=2),  # H/2 -> H/4
            ResNetBlock(4 * n_filters, 4 * n_filters, 3, stride=1),
        )
        self.fc = nn.Linear(4 * n_filters * (h // 4) * (w // 4), 2 * n_latent)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x).flatten(1)  # (B, 4F, H/4, W/4) -> (B, 4F*H*W/16)
        mu, log_std = self.fc(h).chunk(2, dim=1)
        return mu, log_std


class ConvResNetDecoder(nn.Module):
    """z (B, n_latent) -> mean of p(x̃|z), (B, C, H, W), unconstrained."""

    def __init__(self, n_latent: int, output_shape: tuple[int, int, int], n_filters: int = 32) -> None:
        super().__init__()
        c, h, w = output_shape
        self.base_shape = (4 * n_filters, h // 4, w // 4)
        self.fc = nn.Linear(n_latent, math.prod(self.base_shape))
        self.net = nn.Sequential(
            nn.ReLU(),
            ResNetBlock(4 * n_filters, 4 * n_filters, 3, stride=1),
            ResNetTransposeBlock(4 * n_filters, 2 * n_filters, 4, stride=2),  # H/4 -> H/2
            ResNetTransposeBlock(2 * n_filters, n_filters, 4, stride=2),  # H/2 -> H
            nn.Conv2d(n_filters, c, 3, 1, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(-1, *self.base_shape)  # (B, 4F*H*W/16) -> (B, 4F, H/4, W/4)
        return self.net(h)


class ConvResNetVAE(ConvVAE):
    """``ConvVAE`` with residual encoder/decoder; same contract, losses and units (see ``vae.py``)."""

    def init_submodels(self) -> None:
        cfg = self.config
        self.encoder = ConvResNetEncoder(cfg.input_shape, cfg.n_latent, cfg.n_filters)
        self.decoder = ConvResNetDecoder(cfg.n_latent, cfg.input_shape, cfg.n_filters)
