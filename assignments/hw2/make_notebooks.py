"""Build homework 2's student template and solved notebook from one description.

    python assignments/hw2/make_notebooks.py

Writes `assignments/hw2/hw2.ipynb` (the template: solution cells raise NotImplementedError, answer
blocks are empty) and `reference_solutions/notebooks/hw2.ipynb` (the same cells with the code of
`reference_solutions/vae.py` and `resnet_vae.py` and the theory answers). Rebuild both, then
`tests/fixtures/hw2/make_fixtures.py`, whenever the reference models change.
"""

# ruff: noqa: E501  (markdown cells with LaTeX read better unwrapped)
from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from reference_solutions import resnet_vae, vae  # noqa: E402


def src(*objs: Any) -> str:
    """The source of reference functions/classes, as the solved notebook's cell shows them."""
    return "\n\n\n".join(inspect.getsource(o).rstrip() for o in objs)


def md(cid: str, text: str, tag: str | None = None) -> nbformat.NotebookNode:
    c = new_markdown_cell(textwrap.dedent(text).strip())
    c.metadata["dgm"] = {"id": cid}
    if tag:
        c.metadata["tags"] = [tag]
    return c


def code(cid: str, text: str, tag: str | None = None) -> nbformat.NotebookNode:
    c = new_code_cell(textwrap.dedent(text).strip())
    c.metadata["dgm"] = {"id": cid}
    if tag:
        c.metadata["tags"] = [tag]
    return c


INTRO = r"""
# Homework 2: latent variable models

13 points: theory 5 (IWAE, a Gaussian VAE, EM for a Gaussian mixture), a convolutional VAE 4, a ResNet VAE 4.

**How this notebook is graded.** Only the cells marked *YOUR CODE* / *YOUR ANSWER* are taken from your
upload; every other cell comes from this template. The grader runs the notebook top to bottom **except the
training cells** (they are yours to run at home), then calls your functions and classes on its own inputs and
trains your models itself under a fixed budget:

* `get_normal_KL`, `get_normal_nll` are compared with the closed forms on random inputs;
* `ConvVAE` / `ConvResNetVAE`: the grader calls your `loss(x)` with hooks on `model.encoder` and `model.decoder`:
  it records the encoder's `(mu_z, log_std_z)` and hands the decoder its own draw `mu + exp(log_std) * eps`, then
  recomputes the reconstruction and KL terms from what your encoder and decoder returned and compares them with
  your `loss`; it checks that the `z` your code would have decoded is `mu + exp(log_std) * eps` with fresh noise and
  carries gradients back to the encoder;
* after training with the grader's loop (Adam, `loss(x)["total_loss"]`), the test −ELBO (from the same kind of
  calls, on the test set) and the Fréchet distance of `sample(n)` (its decoder fed the grader's draws of
  $z \sim p(z)$) on classifier features are compared with the reference model's.

Theory: write the derivation in the markdown cell and put each final answer in its own ```answer block as
`key: expression` (Python syntax: `*`, `/`, `**`, `log`, `exp`, `sqrt`, `pi`); the derivations are read by a TA.
"""

SETUP = """
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)
torch.manual_seed(0)
"""

T1 = r"""
## Task 1. Theory (5 points)

### 1.1 IWAE (1.5 points)

The importance-weighted bound with $K$ samples is
$$\mathcal{L}_K(x) = \mathbb{E}_{z_1, \dots, z_K \sim q(z|x)} \log \frac{1}{K} \sum_{k=1}^K \frac{p(x, z_k)}{q(z_k|x)}.$$

1. (1 point, TA) Prove that $\mathcal{L}_K(x) \le \mathcal{L}_{K+1}(x) \le \log p(x)$ and that
   $\mathcal{L}_K(x) \to \log p(x)$ as $K \to \infty$ when the weights $p(x, z)/q(z|x)$ are bounded.
2. (0.5 point, auto) Toy model: $p(z) = \mathcal{N}(0, 1)$, $p(x|z) = \mathcal{N}(x; z, 1)$, and any
   $q(z|x)$ with full support. Give $\lim_{K\to\infty} \mathcal{L}_K(x)$ as an expression in `x`
   (key `t_iwae_limit`).
"""

T1_ANS = """
*Your proof.*

```answer
t_iwae_limit:
```
"""

T2 = r"""
### 1.2 The best 1-D Gaussian VAE (0.5 point, auto)

Data $x \sim \mathcal{N}(\mu, 1)$. Prior $p(z) = \mathcal{N}(0, 1)$, decoder $p(x|z) = \mathcal{N}(x; z + \theta, 1)$,
encoder $q(z|x) = \mathcal{N}(z; x + \varphi, 1)$. Find the $\varphi$ and $\theta$ that maximise
$\mathbb{E}_{x}\, \mathrm{ELBO}(x)$, as expressions in `mu` (keys `t_vae_phi`, `t_vae_theta`).
"""

T2_ANS = """
*Your derivation.*

```answer
t_vae_phi:
t_vae_theta:
```
"""

T3 = r"""
### 1.3 EM for a Gaussian mixture (3 points)

$p(x) = \sum_{k=1}^K \pi_k \mathcal{N}(x; \mu_k, \Sigma_k)$, data $x_1, \dots, x_N$, E-step responsibilities
$\gamma_{nk} = p(k \mid x_n)$ and $N_k = \sum_n \gamma_{nk}$.

1. (TA) Derive the M-step updates of $\pi_k$ (with a Lagrange multiplier for $\sum_k \pi_k = 1$), $\mu_k$ and
   $\Sigma_k$. Prove $\frac{\partial \det A}{\partial A} = \det A \cdot A^{-T}$ and hence
   $\frac{\partial \log \det A}{\partial A} = A^{-T}$; use it for $\Sigma_k$.
2. (auto) The update of $\pi_k$ as an expression in `N_k` and `N` (key `t_em_pi`).
3. (auto) One component of a 1-D mixture, data $x = (0, 2, 4)$ with responsibilities $\gamma_{\cdot k} = (1, 1/2, 0)$:
   the updated $\mu_k$ (key `t_em_mu`) and $\sigma_k^2$ (key `t_em_var`), as numbers.
4. (auto) For $A = \begin{pmatrix} a & b \\ c & d \end{pmatrix}$ with $\det A > 0$: $\partial \log\det A / \partial A_{12}$
   (the entry in row 1, column 2, i.e. the derivative with respect to `b`) as an expression in `a, b, c, d`
   (key `t_logdet`).
"""

T3_ANS = """
*Your derivations.*

```answer
t_em_pi:
t_em_mu:
t_em_var:
t_logdet:
```
"""

VAE_MD = r"""
## Task 2. A convolutional VAE (4 points)

Images $x \in [0, 1]^{C \times H \times W}$ are modelled in $\tilde x = 2x - 1 \in [-1, 1]$ with
$$p(z) = \mathcal{N}(0, I), \quad q(z|x) = \mathcal{N}(\mu(x), \mathrm{diag}\, e^{2 \log\sigma(x)}), \quad p(\tilde x|z) = \mathcal{N}(\tilde x; \hat x(z), I).$$

First the two helpers, **elementwise** (no reduction; arguments broadcast like tensors):

* `get_normal_KL(mean_1, log_std_1, mean_2=None, log_std_2=None)` — $\mathrm{KL}(\mathcal{N}(m_1, e^{2 s_1}) \,\|\, \mathcal{N}(m_2, e^{2 s_2}))$,
  with $\mathcal{N}(0, 1)$ for the arguments left out;
* `get_normal_nll(x, mean, log_std)` — $-\log \mathcal{N}(x; m, e^{2 s})$, constant included.
"""

HELPERS_TEMPLATE = """
def get_normal_KL(mean_1, log_std_1, mean_2=None, log_std_2=None):
    # YOUR CODE
    raise NotImplementedError


def get_normal_nll(x, mean, log_std):
    # YOUR CODE
    raise NotImplementedError
"""

HELPERS_TEST = """
# the course's test values
t = torch.tensor
assert np.allclose(get_normal_KL(t(2.0), t(3.0)).numpy(), 200.2144, rtol=1e-3)
assert np.allclose(get_normal_KL(t(2.0), t(3.0), t(4.0), t(5.0)).numpy(), 1.50925, rtol=1e-3)
assert np.allclose(get_normal_KL(t([10.0, 10.0]), t([2.0, 4.0]), t([3.0, 5.0])).numpy(), [49.2990, 1498.479], rtol=1e-3)
assert np.allclose(get_normal_nll(t(2.0), t(2.0), t(3.0)).numpy(), 3.9189, rtol=1e-3)
assert np.allclose(get_normal_nll(t(5.0), t(-3.0), t(6.0)).numpy(), 6.9191, rtol=1e-3)
assert np.allclose(get_normal_nll(t([10.0, 10.0]), t([2.0, 4.0]), t([3.0, 5.0])).numpy(), [3.9982, 5.9197], rtol=1e-3)
"""

VAE_MD2 = r"""
Now the model. The grader builds it as `ConvVAE(input_shape, n_latent=..., beta=..., n_filters=...)` (`input_shape`
is `(C, H, W)` with `H`, `W` divisible by 4; `n_filters` is the width of the first convolution) and uses:

* `model.encoder` and `model.decoder` (`nn.Module`s, called as `self.encoder(...)` and `self.decoder(z)`): the encoder
  returns `(mu_z, log_std_z)`, two `(B, n_latent)` tensors; the decoder takes `z` of shape `(B, n_latent)`;
* `forward(x)` for `x` in $[0, 1]$ → `(mu_z, log_std_z, x_recon)`: the posterior parameters `(B, n_latent)` and the decoder
  mean $\hat x$ in the $[-1, 1]$ space, `(B, C, H, W)`, decoded from **one reparameterised draw**
  $z = \mu + e^{\log\sigma} \odot \varepsilon$, $\varepsilon \sim \mathcal{N}(0, I)$ (`torch.randn_like`);
* `loss(x)` → `{"total_loss", "recon_loss", "kl_loss"}`: computed from one call of `self(x)`; `recon_loss` is
  $-\log p(\tilde x|z)$ summed over pixels, `kl_loss` is $\mathrm{KL}(q(z|x)\,\|\,p(z))$ summed over latent dimensions, both
  averaged over the batch (nats per image), and `total_loss = recon_loss + beta * kl_loss`;
* `sample(n)` → `(n, C, H, W)` images in $[0, 1]$: the decoder mean at $z \sim p(z)$, clamped to $[-1, 1]$ and mapped back.
"""

VAE_TEMPLATE = '''
class ConvEncoder(nn.Module):
    """x̃ (B, C, H, W) -> (mu, log_std), each (B, n_latent)."""

    def __init__(self, input_shape, n_latent, n_filters=32):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE
        raise NotImplementedError


class ConvDecoder(nn.Module):
    """z (B, n_latent) -> decoder mean (B, C, H, W)."""

    def __init__(self, n_latent, output_shape, n_filters=32):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, z):
        # YOUR CODE
        raise NotImplementedError


class ConvVAE(nn.Module):
    def __init__(self, input_shape, n_latent, beta=1.0, n_filters=32):
        super().__init__()
        self.input_shape, self.n_latent, self.beta, self.n_filters = tuple(input_shape), n_latent, beta, n_filters
        self.init_submodels()

    def init_submodels(self):
        """Build self.encoder and self.decoder (ConvResNetVAE overrides this)."""
        # YOUR CODE
        raise NotImplementedError

    def prior(self, n):
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE
        raise NotImplementedError

    def loss(self, x):
        # YOUR CODE
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n):
        # YOUR CODE
        raise NotImplementedError
'''

VAE_TEST = """
_vae = ConvVAE((3, 16, 16), n_latent=4, beta=1.0, n_filters=8)
_x = torch.rand(5, 3, 16, 16)
_mu, _log_std, _x_recon = _vae(_x)
assert _mu.shape == _log_std.shape == (5, 4) and _x_recon.shape == _x.shape
_losses = _vae.loss(_x)
assert {"total_loss", "recon_loss", "kl_loss"} <= _losses.keys() and _losses["total_loss"].requires_grad
assert _vae.sample(3).shape == (3, 3, 16, 16)
"""

VAE_TRAIN = """
# Train on CIFAR-10 (or the `patches` stand-in) and look at samples, reconstructions and interpolations.
# This cell is yours: the grader never runs it. Hints: latent 64-256, beta 0.5-2, lr <= 1e-3, < 16 epochs.
from grader.data import load_dataset

train_x = torch.from_numpy(load_dataset("patches", "train")[0])
model = ConvVAE(tuple(train_x.shape[1:]), n_latent=16, beta=1.0, n_filters=32)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(2000):
    batch = train_x[torch.randint(0, len(train_x), (64,))]
    loss = model.loss(batch)["total_loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 200 == 0:
        print(step, float(loss))
"""

RES_MD = r"""
## Task 3. A ResNet VAE (4 points)

* `ResNetBlock(in_channels, out_channels, kernel_size=3, stride=1, final_relu=True)`: two convolutions with a
  residual shortcut (a 1x1 projection when the shape changes); `(B, C_in, H, W) -> (B, C_out, H/stride, W/stride)`
  for odd kernels; a final ReLU only if `final_relu`.
* `ResNetTransposeBlock(in_channels, out_channels, kernel_size=4, stride=2, final_relu=True)`: the upsampling twin,
  `(B, C_in, H, W) -> (B, C_out, stride*H, stride*W)` for kernels with `kernel_size - stride` even (4, 6, 8 at stride 2).
* `ConvResNetVAE(input_shape, n_latent, beta=1.0, n_filters=32)`: the same contract as `ConvVAE`, with an encoder built
  from `ResNetBlock`s and a decoder built from `ResNetTransposeBlock`s (subclass `ConvVAE` and override `init_submodels`).
"""

BLOCKS_TEMPLATE = """
class ResNetBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, final_relu=True):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE
        raise NotImplementedError


class ResNetTransposeBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=4, stride=2, final_relu=True):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE
        raise NotImplementedError
"""

BLOCKS_TEST = """
_x = torch.randn(2, 8, 16, 16)
assert ResNetBlock(8, 16, 3, 2)(_x).shape == (2, 16, 8, 8)
for _k in (4, 6, 8):
    assert ResNetTransposeBlock(8, 4, _k, 2)(_x).shape == (2, 4, 32, 32)
"""

RESVAE_TEMPLATE = """
class ConvResNetEncoder(nn.Module):
    def __init__(self, input_shape, n_latent, n_filters=32):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE
        raise NotImplementedError


class ConvResNetDecoder(nn.Module):
    def __init__(self, n_latent, output_shape, n_filters=32):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, z):
        # YOUR CODE
        raise NotImplementedError


class ConvResNetVAE(ConvVAE):
    def init_submodels(self):
        # YOUR CODE
        raise NotImplementedError
"""

RES_TEST = """
_vae = ConvResNetVAE((3, 16, 16), n_latent=4, beta=1.0, n_filters=8)
_x = torch.rand(5, 3, 16, 16)
assert _vae(_x)[2].shape == _x.shape and _vae.loss(_x)["total_loss"].requires_grad
assert _vae.sample(3).shape == (3, 3, 16, 16)
"""

RES_TRAIN = """
# Yours to run: train the ResNet VAE as in Task 2 and compare samples and the test -ELBO with the plain ConvVAE.
res_model = ConvResNetVAE(tuple(train_x.shape[1:]), n_latent=16, beta=1.0, n_filters=32)
optimizer = torch.optim.Adam(res_model.parameters(), lr=1e-3)
for step in range(2000):
    batch = train_x[torch.randint(0, len(train_x), (64,))]
    loss = res_model.loss(batch)["total_loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""

# ---------------------------------------------------------------- the solved notebook's cells

T1_SOL = r"""
**Monotonicity.** Let $w_k = p(x, z_k)/q(z_k|x)$. For $K+1$ i.i.d. draws,
$\frac{1}{K+1}\sum_{k=1}^{K+1} w_k = \mathbb{E}_{I}\big[\frac{1}{K}\sum_{k \in I} w_k\big]$ where $I$ is a uniformly
random $K$-subset of $\{1, \dots, K+1\}$. By Jensen (concavity of log),
$\log \frac{1}{K+1}\sum w_k \ge \mathbb{E}_I \log \frac{1}{K}\sum_{k\in I} w_k$; taking expectations over the $z$'s
(each subset has the law of $K$ i.i.d. draws) gives $\mathcal{L}_{K+1} \ge \mathcal{L}_K$.
**Upper bound.** Jensen again: $\mathcal{L}_K \le \log \mathbb{E}\,\frac1K\sum w_k = \log p(x)$, since $\mathbb{E}_q w = p(x)$.
**Limit.** By the strong law of large numbers $\frac1K \sum w_k \to p(x)$ a.s.; with bounded weights the log of the
average is bounded, so by dominated convergence $\mathcal{L}_K \to \log p(x)$.

Toy model: $p(x) = \int \mathcal{N}(z; 0, 1)\mathcal{N}(x; z, 1)\,dz = \mathcal{N}(x; 0, 2)$, so the limit is
$\log \mathcal{N}(x; 0, 2) = -\tfrac12 \log(4\pi) - x^2/4$.

```answer
t_iwae_limit: -log(4*pi)/2 - x**2/4
```
"""

T2_SOL = r"""
With $z = x + \varphi + \varepsilon$: $\mathbb{E}_q \log p(x|z) = -\tfrac12\log 2\pi - \tfrac12\big((\varphi + \theta)^2 + 1\big)$ and
$\mathrm{KL}(q\,\|\,p) = \tfrac12 (x + \varphi)^2$, whose mean over the data is $\tfrac12\big((\mu + \varphi)^2 + 1\big)$.
Maximising $-\tfrac12(\varphi+\theta)^2 - \tfrac12(\mu+\varphi)^2$ gives $\varphi = -\mu$, $\theta = \mu$.

```answer
t_vae_phi: -mu
t_vae_theta: mu
```
"""

T3_SOL = r"""
**π.** Maximise $\sum_{n,k} \gamma_{nk}\log\pi_k + \lambda(1 - \sum_k \pi_k)$: $N_k/\pi_k = \lambda$, and summing over $k$ gives
$\lambda = N$, so $\pi_k = N_k / N$.
**μ.** $\nabla_{\mu_k}\sum_n \gamma_{nk}\log\mathcal{N}(x_n;\mu_k,\Sigma_k) = \Sigma_k^{-1}\sum_n\gamma_{nk}(x_n - \mu_k) = 0$, so
$\mu_k = \frac{1}{N_k}\sum_n \gamma_{nk} x_n$.
**Σ.** With $\Lambda = \Sigma_k^{-1}$ the objective is $\sum_n \gamma_{nk}\big(\tfrac12\log\det\Lambda - \tfrac12 (x_n-\mu_k)^T\Lambda(x_n-\mu_k)\big)$;
using $\partial\log\det\Lambda/\partial\Lambda = \Lambda^{-T}$ the gradient is
$\tfrac12 N_k \Sigma_k - \tfrac12\sum_n\gamma_{nk}(x_n-\mu_k)(x_n-\mu_k)^T = 0$, so
$\Sigma_k = \frac1{N_k}\sum_n\gamma_{nk}(x_n-\mu_k)(x_n-\mu_k)^T$.
**det.** Expanding along row $i$, $\det A = \sum_j A_{ij} C_{ij}$ with cofactors $C_{ij}$ that do not involve $A_{ij}$, so
$\partial\det A/\partial A_{ij} = C_{ij} = \det A\,(A^{-1})_{ji}$, i.e. $\partial \det A/\partial A = \det A\cdot A^{-T}$
and $\partial\log\det A/\partial A = A^{-T}$.

Example: $N_k = 3/2$, $\mu_k = (0 + 1 + 0)/(3/2) = 2/3$,
$\sigma_k^2 = \big(1\cdot\tfrac49 + \tfrac12\cdot\tfrac{16}9\big)/\tfrac32 = 8/9$. For the 2x2 matrix,
$(A^{-T})_{12} = (A^{-1})_{21} = -c/(ad - bc)$.

```answer
t_em_pi: N_k / N
t_em_mu: 2/3
t_em_var: 8/9
t_logdet: -c / (a*d - b*c)
```
"""

HELPERS_SOL = src(vae.get_normal_KL, vae.get_normal_nll)
VAE_SOL = src(vae._check_shape, vae.ConvEncoder, vae.ConvDecoder, vae.VAEConfig, vae.ConvVAE)
VAE_SOL = "from dataclasses import dataclass\n\n\n" + VAE_SOL
BLOCKS_SOL = src(resnet_vae.ResNetBlock, resnet_vae.ResNetTransposeBlock)
RESVAE_SOL = src(resnet_vae.ConvResNetEncoder, resnet_vae.ConvResNetDecoder, resnet_vae.ConvResNetVAE)
for name in ("HELPERS_SOL", "VAE_SOL", "BLOCKS_SOL", "RESVAE_SOL"):
    assert "from ." not in globals()[name]


def notebook(solved: bool) -> nbformat.NotebookNode:
    def pick(blank: str, sol: str) -> str:
        return sol if solved else blank

    cells = [
        md("intro", INTRO),
        code("setup", SETUP),
        md("t1_task", T1),
        md("t1", pick(T1_ANS, T1_SOL), "theory"),
        md("t2_task", T2),
        md("t2", pick(T2_ANS, T2_SOL), "theory"),
        md("t3_task", T3),
        md("t3", pick(T3_ANS, T3_SOL), "theory"),
        md("vae_task", VAE_MD),
        code("helpers", pick(HELPERS_TEMPLATE, HELPERS_SOL), "solution"),
        code("helpers_test", HELPERS_TEST),
        md("vae_model_task", VAE_MD2),
        code("vae", pick(VAE_TEMPLATE, VAE_SOL), "solution"),
        code("vae_test", VAE_TEST),
        code("vae_train", VAE_TRAIN, "experiment"),
        md("resnet_task", RES_MD),
        code("resnet_blocks", pick(BLOCKS_TEMPLATE, BLOCKS_SOL), "solution"),
        code("resnet_blocks_test", BLOCKS_TEST),
        code("resnet_vae", pick(RESVAE_TEMPLATE, RESVAE_SOL), "solution"),
        code("resnet_vae_test", RES_TEST),
        code("resnet_train", RES_TRAIN, "experiment"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell["id"] = cell.metadata["dgm"]["id"].replace("_", "-")
    return nb


def main() -> None:
    nbformat.write(notebook(False), str(ROOT / "assignments" / "hw2" / "hw2.ipynb"))
    (ROOT / "reference_solutions" / "notebooks").mkdir(exist_ok=True)
    nbformat.write(notebook(True), str(ROOT / "reference_solutions" / "notebooks" / "hw2.ipynb"))


if __name__ == "__main__":
    main()
