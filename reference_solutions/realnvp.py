"""RealNVP for images: logit pre-processing, checkerboard and channel-wise affine couplings, squeeze.

Papers: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", arXiv:1605.08803
(couplings eq. 7-9, log-det eq. 6, masks sec. 3.4, squeeze sec. 3.6, logit pre-processing sec. 4.1);
ActNorm with data-dependent initialisation from Kingma & Dhariwal, "Glow", arXiv:1807.03039 (sec. 3.1);
uniform dequantization bound from Theis, van den Oord & Bethge, arXiv:1511.01844 (sec. 3.1).

Every layer's ``forward(x, invert=False)`` returns ``(out, log_det_map)``: ``log_det_map`` is the
elementwise log|d out_i / d in_i| of the *forward* map at the corresponding point (for couplings it is
the log-scale s), the same in both directions; a flow adds it going forward and subtracts it inverting.

Likelihood convention. x is an image in [0, 1] on ``nbins`` levels (x*(nbins-1) is an integer),
D = C*H*W, all logs natural:

1. dequantize:  y = (x*(nbins-1) + u) / nbins,  u ~ U[0, 1)^D, so y in [0, 1)^D, bins of width 1/nbins;
2. logit:       x_s = alpha + (1-2*alpha)*y,  h = log x_s - log(1-x_s),
                log|dh/dy| = log(1-2*alpha) - log x_s - log(1-x_s)                       (sec. 4.1);
3. flow:        z = f(h), log p_Y(y) = log N(z; 0, I) + log|det df/dh| + sum log|dh/dy|   (eq. 3).

``log_density(y)`` is log p_Y(y), a continuous density on [0, 1]^D. ``log_prob(x)`` is the discrete
log-mass bound log P(x) >= E_u[log p_Y(y)] - D*log(nbins) (Theis et al. sec. 3.1), estimated with one u:
the logit Jacobian enters once (step 3) and the bin width once (the -D*log(nbins)). Hence
``nll_loss = -mean log_prob`` is in nats per image of the discrete data, bits/dim = nll_loss / (D ln 2)
with nothing to add (uniform p_Y gives exactly log2(nbins) bits/dim); -log_prob(x, u) equals
``grader.metrics.nll.dequantized_nll(log_density(y), D, scale=1/nbins)``. The course's notebooks report
-log p_Y(y), i.e. our nll_loss minus D*log(nbins).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


def dequantize(x: Tensor, nbins: int, u: Tensor | None = None) -> Tensor:
    """x in [0, 1] on nbins levels -> y = (x*(nbins-1) + u) / nbins in [0, 1), u ~ U[0, 1) unless given."""
    u = torch.rand_like(x) if u is None else u
    return (x * (nbins - 1) + u) / nbins


class LogitTransform(nn.Module):
    """y in [0, 1] -> h = logit(alpha + (1-2*alpha)*y); log-det map log|dh/dy| (RealNVP sec. 4.1)."""

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        a = self.alpha
        x_s = torch.sigmoid(x) if invert else a + (1.0 - 2.0 * a) * x
        # log|dh/dy| = log(1-2a) - log x_s - log(1-x_s), at the forward-domain point
        log_det = math.log(1.0 - 2.0 * a) - torch.log(x_s) - torch.log1p(-x_s)
        out = (x_s - a) / (1.0 - 2.0 * a) if invert else torch.log(x_s) - torch.log1p(-x_s)
        return out, log_det


class ActNorm(nn.Module):
    """y = x * exp(log_scale) + shift per channel; the first forward call sets them so that its batch has
    zero mean and unit variance per channel (Glow sec. 3.1). Inverting an uninitialised layer is identity."""

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, n_channels, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, n_channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        if not invert and not self.initialized:
            with torch.no_grad():
                mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
                self.log_scale.copy_(-torch.log(std + 1e-6))
                self.shift.copy_(-mean * torch.exp(self.log_scale))
                self.initialized.fill_(True)
        log_det = self.log_scale.expand_as(x)
        if invert:
            return (x - self.shift) * torch.exp(-self.log_scale), log_det
        return x * torch.exp(self.log_scale) + self.shift, log_det


class ResnetBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))."""

    def __init__(self, n_filters: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(n_filters, n_filters, 1),
            nn.ReLU(),
            nn.Conv2d(n_filters, n_filters, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(n_filters, n_filters, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class SimpleResnet(nn.Module):
    """Conditioner network: (B, in_channels, H, W) -> (B, out_channels, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, n_filters: int = 64, n_blocks: int = 4) -> None:
        super().__init__()
        blocks = [ResnetBlock(n_filters) for _ in range(n_blocks)]
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, n_filters, 3, padding=1),
            *blocks,
            nn.ReLU(),
            nn.Conv2d(n_filters, out_channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class AffineCoupling(nn.Module):
    """Shared part of the couplings: the bounded log-scale s = scale * tanh(raw_s) + scale_shift, with both
    scalars zero-initialised so that every coupling starts with s = 0, and the masked affine map (eq. 9)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1))
        self.scale_shift = nn.Parameter(torch.zeros(1))

    def affine(self, x: Tensor, raw_s: Tensor, t: Tensor, keep: Tensor, invert: bool) -> tuple[Tensor, Tensor]:
        """``keep`` = 1 on the conditioning half, which passes through unchanged. Returns (out, log_s)."""
        log_s = (self.scale * torch.tanh(raw_s) + self.scale_shift) * (1.0 - keep)
        t = t * (1.0 - keep)
        if invert:
            return (x - t) * torch.exp(-log_s), log_s
        # y = b*x + (1-b)*(x*exp(s) + t)  (eq. 9)
        return x * torch.exp(log_s) + t, log_s


class AffineCheckerboardCouplingLayer(AffineCoupling):
    """Checkerboard-masked affine coupling (sec. 3.4). ``parity_type`` True: the top-left pixel conditions."""

    def __init__(
        self, parity_type: bool, input_shape: Sequence[int], in_channels: int, n_filters: int, n_blocks: int
    ) -> None:
        super().__init__()
        self.register_buffer("mask", self.build_mask(input_shape, parity_type))
        # input: the masked image plus the mask itself as an extra channel
        self.resnet = SimpleResnet(in_channels + 1, 2 * in_channels, n_filters, n_blocks)

    @staticmethod
    def build_mask(input_shape: Sequence[int], parity_type: bool) -> Tensor:
        """(1, 1, H, W) float mask, 1 where (i + j) is even for parity True (odd for False)."""
        h, w = input_shape[-2:]
        i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        mask = ((i + j) % 2 == 0) == bool(parity_type)
        return mask.float().view(1, 1, h, w)

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        mask = self.mask
        x_b = x * mask
        raw_s, t = self.resnet(torch.cat([x_b, mask.expand(x.shape[0], 1, -1, -1)], dim=1)).chunk(2, dim=1)
        return self.affine(x, raw_s, t, mask, invert)


class AffineChannelCouplingLayer(AffineCoupling):
    """Channel-wise coupling (sec. 3.4): one half of the channels conditions the other.
    ``parity_type`` True: the first half conditions and the second is transformed."""

    def __init__(self, parity_type: bool, in_channels: int, n_filters: int, n_blocks: int) -> None:
        super().__init__()
        self.parity_type = bool(parity_type)
        half = in_channels // 2
        self.resnet = SimpleResnet(half, 2 * (in_channels - half), n_filters, n_blocks)

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        x_a, x_b = x.chunk(2, dim=1)  # (B, C, H, W) -> 2 x (B, C/2, H, W)
        if not self.parity_type:
            x_a, x_b = x_b, x_a
        raw_s, t = self.resnet(x_a).chunk(2, dim=1)
        y_b, log_s = self.affine(x_b, raw_s, t, torch.zeros_like(x_b), invert)
        zeros = torch.zeros_like(x_a)
        if self.parity_type:
            return torch.cat([x_a, y_b], dim=1), torch.cat([zeros, log_s], dim=1)
        return torch.cat([y_b, x_a], dim=1), torch.cat([log_s, zeros], dim=1)


def squeeze(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels (sec. 3.6)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """(B, 4C, H/2, W/2) -> (B, C, H, W), the inverse of ``squeeze``."""
    b, c4, h, w = x.shape
    x = x.view(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, H/2, 2, W/2, 2)
    return x.reshape(b, c4 // 4, 2 * h, 2 * w)


class Squeeze(nn.Module):
    """``squeeze`` as a flow layer (``unsqueeze`` when ``inverse_op``); volume-preserving."""

    def __init__(self, inverse_op: bool = False) -> None:
        super().__init__()
        self.inverse_op = inverse_op

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        out = unsqueeze(x) if invert != self.inverse_op else squeeze(x)
        return out, torch.zeros_like(out)


@dataclass(frozen=True)
class RealNVPConfig:
    input_shape: tuple[int, int]  # (H, W), both even
    n_channels: int = 1
    n_filters: int = 64
    n_blocks: int = 4
    nbins: int = 256
    alpha: float = 0.05


class RealNVP(nn.Module):
    """logit -> 4 x (checkerboard coupling, ActNorm) -> squeeze -> 3 x (channel coupling, ActNorm)
    -> unsqueeze -> 3 x (checkerboard coupling, ActNorm); parities alternate, starting with True."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_channels: int = 1,
        n_filters: int = 64,
        n_blocks: int = 4,
        nbins: int = 256,
        alpha: float = 0.05,
    ) -> None:
        super().__init__()
        h, w = input_shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"input_shape: expected even H and W, got {tuple(input_shape)}")
        self.config = RealNVPConfig((h, w), n_channels, n_filters, n_blocks, nbins, alpha)
        self.shape, self.nbins = (n_channels, h, w), nbins
        self.logit = LogitTransform(alpha)
        c, f, nb = n_channels, n_filters, n_blocks
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [AffineCheckerboardCouplingLayer(i % 2 == 0, (h, w), c, f, nb), ActNorm(c)]
        layers.append(Squeeze())
        for i in range(3):
            layers += [AffineChannelCouplingLayer(i % 2 == 0, 4 * c, f, nb), ActNorm(4 * c)]
        layers.append(Squeeze(inverse_op=True))
        for i in range(3):
            layers += [AffineCheckerboardCouplingLayer(i % 2 == 0, (h, w), c, f, nb), ActNorm(c)]
        self.transforms = nn.ModuleList(layers)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, y: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        """Dequantized y in [0, 1]^D -> (z, log|det dz/dy|), logit included; with ``invert``,
        z -> (y, log|det dy/dz|). Log-dets are (B,) per image."""
        sign = -1.0 if invert else 1.0
        layers = [self.logit, *self.transforms]
        log_det = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for layer in reversed(layers) if invert else layers:
            y, log_det_map = layer(y, invert=invert)
            log_det = log_det + sign * log_det_map.flatten(1).sum(dim=1)
        return y, log_det

    def log_density(self, y: Tensor) -> Tensor:
        """log p_Y(y) in nats, (B,): prior log-density plus all log-dets, logit included (eq. 3)."""
        z, log_det = self(y)
        log_p_z = -0.5 * (z**2 + LOG_2PI).flatten(1).sum(dim=1)
        return log_p_z + log_det

    def log_prob(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        """Single-u estimate of the lower bound on log P(x): log p_Y(y) - D*log(nbins), nats, (B,)."""
        d = x[0].numel()
        return self.log_density(dequantize(x, self.nbins, u)) - d * math.log(self.nbins)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Mean negative log-likelihood bound of the discrete images, nats per image."""
        nll = -self.log_prob(x).mean()
        return {"total_loss": nll, "nll_loss": nll}

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n images (n, C, H, W) in [0, 1] on nbins levels: z ~ N(0, I), inverted, floored to bins."""
        p = next(self.parameters())
        z = torch.randn(n, *self.shape, device=p.device, dtype=p.dtype)
        y = self(z, invert=True)[0]
        x = torch.floor(y * self.nbins).clamp(0, self.nbins - 1)
        return x / (self.nbins - 1)
