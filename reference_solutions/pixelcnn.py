"""PixelCNN for binary images.

van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016, arXiv:1601.06759.

The image density factorises in raster order (eq. 1):

    p(x) = prod_{i=1}^{HW} p(x_i | x_1, ..., x_{i-1}),

and every conditional is a 2-way categorical whose logits come from one pass of a stack of masked
convolutions (section 3.4): the first layer uses mask 'A' (a position sees only pixels strictly before
it), the later layers mask 'B' (a position also sees its own features, which already depend only on
earlier pixels). Stacked 'B' masks leave the well-known blind spot to the upper right (section 3.5 of
van den Oord et al., "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328), which
`get_receptive_field` makes visible.

Architecture (the homework's spec, so that students' models match it exactly):
    MaskedConv 'A' k x k (1 -> F), then (n_layers - 1) x [ReLU, MaskedConv 'B' k x k (F -> F)],
    then ReLU, MaskedConv 'B' 1 x 1 (F -> F), ReLU, MaskedConv 'B' 1 x 1 (F -> 2).
Inputs are images in {0, 1}, shape (B, 1, H, W); they are centred to {-1, 1} inside `forward`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel is zero at and after the centre in raster order ('A'), or after it ('B')."""

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type: expected 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.mask_type = mask_type
        self.register_buffer("mask", self.create_mask())

    def create_mask(self) -> torch.Tensor:
        """Mask of the kernel's shape (out, in, kH, kW): ones strictly before the centre, centre by type."""
        k_h, k_w = self.kernel_size
        mask = torch.zeros_like(self.weight)
        mask[:, :, : k_h // 2, :] = 1  # every row above the centre
        mask[:, :, k_h // 2, : k_w // 2] = 1  # the centre row, left of the centre
        if self.mask_type == "B":
            mask[:, :, k_h // 2, k_w // 2] = 1
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups)


@dataclass(frozen=True)
class PixelCNNConfig:
    input_shape: tuple[int, int] = (28, 28)  # (H, W); one binary channel
    n_filters: int = 32
    kernel_size: int = 5
    n_layers: int = 5  # masked k x k convolutions, the first of type 'A'


class PixelCNN(nn.Module):
    """Autoregressive model of binary images; `forward` returns 2-class logits per pixel."""

    def __init__(
        self, input_shape: tuple[int, int], n_filters: int = 32, kernel_size: int = 5, n_layers: int = 5
    ) -> None:
        super().__init__()
        self.config = PixelCNNConfig(tuple(input_shape), n_filters, kernel_size, n_layers)
        self.input_shape = self.config.input_shape
        pad = kernel_size // 2
        layers: list[nn.Module] = [MaskedConv2d("A", 1, n_filters, kernel_size, padding=pad)]
        for _ in range(n_layers - 1):
            layers += [nn.ReLU(), MaskedConv2d("B", n_filters, n_filters, kernel_size, padding=pad)]
        layers += [nn.ReLU(), MaskedConv2d("B", n_filters, n_filters, 1), nn.ReLU(), MaskedConv2d("B", n_filters, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in {0, 1} -> logits (B, 2, 1, H, W); logits[:, k] scores pixel value k."""
        out = self.net(2.0 * x - 1.0)  # (B, 2, H, W)
        return out.unsqueeze(2)  # (B, 2, H, W) -> (B, 2, 1, H, W)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats per image, (B,): sum over pixels of log p(x_i | x_<i) (eq. 1)."""
        nll = F.cross_entropy(self(x), x.long(), reduction="none")  # (B, 1, H, W)
        return -nll.flatten(1).sum(dim=1)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean cross-entropy in nats per pixel."""
        return {"total_loss": F.cross_entropy(self(x), x.long())}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images (n, 1, H, W) in {0, 1}, drawn pixel by pixel in raster order."""
        init = torch.full((n, 1, *self.input_shape), -1.0, device=next(self.parameters()).device)
        return _fill(self, init)


class PixelCNNAutoComplete(PixelCNN):
    """PixelCNN that completes partially known images: pixels equal to -1 are unknown."""

    @torch.no_grad()
    def sample(self, n: int, init: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if init.shape != (n, 1, *self.input_shape):
            raise ValueError(f"init: expected {(n, 1, *self.input_shape)}, got {tuple(init.shape)}")
        return _fill(self, init.to(next(self.parameters()).device, torch.float32))


def _fill(model: PixelCNN, init: torch.Tensor) -> torch.Tensor:
    """Draw every pixel equal to -1 from p(x_i | x_<i), in raster order; other pixels are kept."""
    x = init.clone()
    unknown = x < 0  # (n, 1, H, W)
    height, width = model.input_shape
    for i in range(height):
        for j in range(width):
            todo = unknown[:, 0, i, j]
            if not todo.any():
                continue
            # unknown pixels at or after (i, j) are fed as 0; a causal model never looks at them
            logits = model(x.clamp(min=0.0))[:, :, 0, i, j]  # (n, 2)
            draw = torch.distributions.Categorical(logits=logits).sample().float()
            x[:, 0, i, j] = torch.where(todo, draw, x[:, 0, i, j])
    return x


def get_receptive_field(model: nn.Module, input_shape: tuple[int, int]) -> torch.Tensor:
    """Which input pixels the centre pixel's logits depend on: (H, W) bool, |d logits / d x| > 1e-8.

    The gradient is taken at an all-zero image; the centre is (H // 2, W // 2).
    """
    height, width = input_shape
    x = torch.zeros(1, 1, height, width, requires_grad=True)
    logits = model(x)  # (1, 2, 1, H, W)
    logits[0, :, 0, height // 2, width // 2].sum().backward()
    return x.grad[0, 0].abs() > 1e-8  # (1, 1, H, W) -> (H, W)
