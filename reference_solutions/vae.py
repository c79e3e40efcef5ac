"""Convolutional VAE with a Gaussian decoder, and its importance-weighted (IWAE) likelihood estimate.

Papers: Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114;
Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", arXiv:1509.00519;
Higgins et al., "beta-VAE", ICLR 2017 (the beta weight on the KL term).

Model (all densities with respect to Lebesgue measure on the model space x̃ = 2x - 1 in [-1, 1]^D,
D = C*H*W; images arrive in [0, 1] and are mapped to x̃ inside the model, as the course does):

    p(z) = N(0, I),   q(z|x) = N(mu(x), diag exp(log_std(x))^2),   p(x̃|z) = N(x̃; mu_x(z), I).

    ELBO(x) = E_q[log p(x̃|z)] - KL(q(z|x) || p(z))                              (AEVB eq. 3)
    L_k(x)  = E[log (1/k) sum_i p(x̃|z_i) p(z_i) / q(z_i|x)],  z_i ~ q(z|x)       (IWAE eq. 8)

with ELBO = L_1 <= L_k <= L_{k+1} <= log p(x̃) (IWAE theorem 1). The KL term is analytic (AEVB
appendix B); the reconstruction term uses one reparameterised sample z = mu + exp(log_std) * eps
(AEVB sec. 2.4).

Units. Every loss is in nats per image (sum over the D pixels of one image), averaged over the batch:
recon_loss = -log p(x̃|z) including the 0.5*log(2*pi) constant, kl_loss = KL(q || p),
total_loss = recon_loss + beta * kl_loss (the training objective; the course's notebooks call it
``elbo_loss``), elbo_loss = recon_loss + kl_loss = -ELBO (equal to total_loss when beta = 1).
These are densities, not masses: to bound the negative log-mass of 8-bit images, evaluate on
dequantized inputs (x*255 + u) / 256 and add the bin width in model space,
-log P(x) <= -ELBO(x̃) - D*log(2/256), i.e. ``grader.metrics.nll.dequantized_nll(elbo, D, scale=2/256)``.
With the fixed unit-variance decoder this bound is never below D*(0.919 + log 128) nats, 8.33 bits/dim:
compare models by -ELBO in nats per image, as the course does, not by that bound.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


def get_normal_KL(
    mean_1: Tensor, log_std_1: Tensor, mean_2: Tensor | None = None, log_std_2: Tensor | None = None
) -> Tensor:
    """Elementwise KL(N(mean_1, exp(log_std_1)^2) || N(mean_2, exp(log_std_2)^2)); default N(0, 1).

    No reduction: the result has the broadcast shape of the inputs.
    """
    mean_2 = torch.zeros_like(mean_1) if mean_2 is None else mean_2
    log_std_2 = torch.zeros_like(log_std_1) if log_std_2 is None else log_std_2
    # KL = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
    var_ratio = torch.exp(2.0 * (log_std_1 - log_std_2))
    mean_term = (mean_1 - mean_2) ** 2 * torch.exp(-2.0 * log_std_2)
    return log_std_2 - log_std_1 + 0.5 * (var_ratio + mean_term) - 0.5


def get_normal_nll(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Elementwise -log N(x; mean, exp(log_std)^2), constant included; no reduction."""
    return 0.5 * LOG_2PI + log_std + 0.5 * (x - mean) ** 2 * torch.exp(-2.0 * log_std)


def _check_shape(input_shape: tuple[int, int, int]) -> None:
    _, h, w = input_shape
    if h % 4 or w % 4:
        raise ValueError(f"input_shape: expected (C, H, W) with H and W divisible by 4, got {input_shape}")


class ConvEncoder(nn.Module):
    """x̃ (B, C, H, W) -> (mu, log_std), each (B, n_latent). Two stride-2 convolutions: H -> H/4."""

    def __init__(self, input_shape: tuple[int, int, int], n_latent: int, n_filters: int = 32) -> None:
        super().__init__()
        c, h, w = input_shape
        self.net = nn.Sequential(
            nn.Conv2d(c, n_filters, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(n_filters, 2 * n_filters, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * n_filters, 4 * n_filters, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(4 * n_filters, 4 * n_filters, 3, 1, 1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(4 * n_filters * (h // 4) * (w // 4), 2 * n_latent)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x).flatten(1)  # (B, 4F, H/4, W/4) -> (B, 4F*H*W/16)
        mu, log_std = self.fc(h).chunk(2, dim=1)
        return mu, log_std


class ConvDecoder(nn.Module):
    """z (B, n_latent) -> mean of p(x̃|z), (B, C, H, W), unconstrained. Two stride-2 transposed convs."""

    def __init__(self, n_latent: int, output_shape: tuple[int, int, int], n_filters: int = 32) -> None:
        super().__init__()
        c, h, w = output_shape
        self.base_shape = (4 * n_filters, h // 4, w // 4)
        self.fc = nn.Linear(n_latent, math.prod(self.base_shape))
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(4 * n_filters, 2 * n_filters, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * n_filters, n_filters, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(n_filters, c, 3, 1, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(-1, *self.base_shape)  # (B, 4F*H*W/16) -> (B, 4F, H/4, W/4)
        return self.net(h)


@dataclass(frozen=True)
class VAEConfig:
    input_shape: tuple[int, int, int]  # (C, H, W), H and W divisible by 4
    n_latent: int = 16
    beta: float = 1.0
    n_filters: int = 32


class ConvVAE(nn.Module):
    """Gaussian VAE on images in [0, 1]: ``loss(x) -> dict``, ``sample(n)``, ``log_prob_iwae(x, k)``."""

    def __init__(
        self, input_shape: tuple[int, int, int], n_latent: int, beta: float = 1.0, n_filters: int = 32
    ) -> None:
        super().__init__()
        self.config = VAEConfig(tuple(input_shape), n_latent, beta, n_filters)  # type: ignore[arg-type]
        _check_shape(self.config.input_shape)
        self.input_shape, self.n_latent, self.beta = self.config.input_shape, n_latent, beta
        self.init_submodels()

    def init_submodels(self) -> None:
        """Build ``self.encoder`` and ``self.decoder``; subclasses swap the architecture here."""
        cfg = self.config
        self.encoder = ConvEncoder(cfg.input_shape, cfg.n_latent, cfg.n_filters)
        self.decoder = ConvDecoder(cfg.n_latent, cfg.input_shape, cfg.n_filters)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prior(self, n: int) -> Tensor:
        """n draws of z ~ p(z) = N(0, I), shape (n, n_latent)."""
        p = next(self.parameters())
        return torch.randn(n, self.n_latent, device=p.device, dtype=p.dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x in [0, 1] -> (mu_z, log_std_z, x_recon); x_recon is the decoder mean in [-1, 1] space."""
        mu_z, log_std_z = self.encoder(2.0 * x - 1.0)
        # reparameterisation z = mu + sigma * eps (AEVB sec. 2.4): gradients reach the encoder
        z = mu_z + torch.exp(log_std_z) * torch.randn_like(mu_z)
        return mu_z, log_std_z, self.decoder(z)

    def elbo_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-image terms in nats, each (B,): ``recon_loss`` = -log p(x̃|z) for one z ~ q(z|x) and
        ``kl_loss`` = KL(q(z|x) || p(z)); -ELBO(x) = recon_loss + kl_loss (single-sample estimate)."""
        mu_z, log_std_z, x_recon = self(x)
        x_tilde = 2.0 * x - 1.0
        # -log p(x̃|z) with unit variance, summed over pixels (AEVB eq. 3, first term)
        recon = get_normal_nll(x_tilde, x_recon, torch.zeros_like(x_recon)).flatten(1).sum(1)
        # analytic KL(q(z|x) || N(0, I)) (AEVB appendix B)
        kl = get_normal_KL(mu_z, log_std_z).sum(1)
        return {"recon_loss": recon, "kl_loss": kl}

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Batch means of the per-image terms (nats per image); see the module docstring."""
        terms = self.elbo_terms(x)
        recon, kl = terms["recon_loss"].mean(), terms["kl_loss"].mean()
        return {
            "total_loss": recon + self.beta * kl,
            "elbo_loss": recon + kl,
            "recon_loss": recon,
            "kl_loss": kl,
        }

    @torch.no_grad()
    def log_prob_iwae(self, x: Tensor, k: int, chunk_size: int = 256) -> Tensor:
        """IWAE estimate L_k(x) of log p(x̃) in nats, shape (B,); k = 1 is a single-sample ELBO.

        Uses full log-densities (with 2*pi constants) of p(z), q(z|x) and p(x̃|z), never the analytic
        KL, so that the importance weights are exact (IWAE eq. 8). Decodes ``chunk_size`` samples per
        image at a time.
        """
        x_tilde = 2.0 * x - 1.0
        mu_z, log_std_z = self.encoder(x_tilde)
        log_w = []
        for start in range(0, k, chunk_size):
            m = min(chunk_size, k - start)
            eps = torch.randn(m, *mu_z.shape, device=x.device, dtype=x.dtype)  # (m, B, L)
            z = mu_z + torch.exp(log_std_z) * eps
            log_q = -get_normal_nll(z, mu_z, log_std_z).sum(-1)  # (m, B)
            log_p_z = -get_normal_nll(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
            x_recon = self.decoder(z.flatten(0, 1)).view(m, *x.shape)  # (m*B, C, H, W) -> (m, B, C, H, W)
            log_p_x = -get_normal_nll(x_tilde, x_recon, torch.zeros_like(x_recon)).flatten(2).sum(-1)
            log_w.append(log_p_x + log_p_z - log_q)
        # L_k = logsumexp_i log w_i - log k (IWAE eq. 8)
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n images in [0, 1], (n, C, H, W): the decoder mean at z ~ p(z), clamped to [-1, 1]."""
        x_tilde = self.decoder(self.prior(n)).clamp(-1.0, 1.0)
        return (x_tilde + 1.0) / 2.0
