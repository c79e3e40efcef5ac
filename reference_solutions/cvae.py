"""Conditional VAE with a Bernoulli decoder, for grayscale digits (the UPM course's graded assignment).

Papers: Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114; Sohn, Lee & Yan,
"Learning Structured Output Representation using Deep Conditional Generative Models", NeurIPS 2015
(the conditional VAE: the label c conditions both the encoder and the decoder, the prior stays N(0, I)).

Model, for x in [0, 1]^D (D = C*H*W) and a label y with one-hot code c:

    p(z) = N(0, I),   q(z|x, c) = N(mu(x, c), diag exp(log_std(x, c))^2),
    p(x|z, c) = prod_d Bernoulli(x_d; sigmoid(l_d(z, c)))      (grayscale x_d as soft targets)

    -ELBO(x, c) = E_q[-log p(x|z, c)] + KL(q(z|x, c) || N(0, I))

Units: nats per image (summed over pixels or latent dimensions), averaged over the batch:
recon_loss = binary cross-entropy of x against the decoder's logits, one reparameterised draw
z = mu + exp(log_std) * eps; kl_loss = the analytic KL; elbo_loss = recon_loss + beta * kl_loss
(the training objective; beta = 1 gives the -ELBO). The cross-entropy of a grayscale target x_d is
at least its binary entropy H(x_d), which no model can beat: compare models by the excess over it.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def one_hot(y: Tensor, num_classes: int) -> Tensor:
    """Labels (B,) int -> one-hot codes (B, num_classes) float."""
    return F.one_hot(y.long(), num_classes).float()


def gaussian_kl(mu: Tensor, log_std: Tensor) -> Tensor:
    """KL(N(mu, exp(log_std)^2) || N(0, 1)) elementwise."""
    return 0.5 * (mu**2 + torch.exp(2.0 * log_std) - 1.0) - log_std


class ConditionalEncoder(nn.Module):
    """(x (B, C, H, W), c (B, K)) -> (mu, log_std), each (B, n_latent): an MLP on [flatten(x), c]."""

    def __init__(self, input_dim: int, num_classes: int, n_latent: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim + num_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * n_latent),
        )

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_std = self.net(torch.cat([x.flatten(1), c], dim=1)).chunk(2, dim=1)
        return mu, log_std


class ConditionalDecoder(nn.Module):
    """(z (B, n_latent), c (B, K)) -> logits (B, C, H, W): an MLP on [z, c]."""

    def __init__(self, n_latent: int, num_classes: int, output_shape: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = nn.Sequential(
            nn.Linear(n_latent + num_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, int(torch.tensor(output_shape).prod())),
        )

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        return self.net(torch.cat([z, c], dim=1)).view(-1, *self.output_shape)


class ConditionalVAE(nn.Module):
    """``ConditionalVAE(input_shape, n_latent, num_classes, beta=1.0, hidden=256)``; see the module docstring."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        n_latent: int,
        num_classes: int = 10,
        beta: float = 1.0,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.input_shape, self.n_latent, self.num_classes, self.beta = tuple(input_shape), n_latent, num_classes, beta
        input_dim = int(torch.tensor(input_shape).prod())
        self.encoder = ConditionalEncoder(input_dim, num_classes, n_latent, hidden)
        self.decoder = ConditionalDecoder(n_latent, num_classes, self.input_shape, hidden)

    def encode_label(self, y: Tensor) -> Tensor:
        """Labels (B,) -> the code both networks see: one-hot (B, num_classes)."""
        return one_hot(y, self.num_classes).to(next(self.parameters()).device)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, C, H, W) in [0, 1], y (B,) -> (mu_z, log_std_z, logits)."""
        c = self.encode_label(y)
        mu_z, log_std_z = self.encoder(x, c)
        z = mu_z + torch.exp(log_std_z) * torch.randn_like(mu_z)
        return mu_z, log_std_z, self.decoder(z, c)

    def loss(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mu_z, log_std_z, logits = self(x, y)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        kl = gaussian_kl(mu_z, log_std_z).sum(1).mean()
        return {"elbo_loss": recon + self.beta * kl, "recon_loss": recon, "kl_loss": kl}

    @torch.no_grad()
    def sample(self, n: int, y: Tensor) -> Tensor:
        """n images (n, C, H, W) in [0, 1] (the decoder's Bernoulli means) of the classes y (n,)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.n_latent, device=device)
        return torch.sigmoid(self.decoder(z, self.encode_label(y.to(device))))
