"""Build homework 3's template (`assignments/hw3/hw3.ipynb`) and solved notebook
(`reference_solutions/notebooks/hw3.ipynb`) from one list of cells, so that the two never drift apart.

    python assignments/hw3/make_notebooks.py

The solved cells are the source of `reference_solutions.realnvp_2d` / `reference_solutions.realnvp` itself
(read with `inspect`), so the solved notebook is the reference model. Every cell has `metadata.dgm.id`;
tags: `solution`, `theory`, `experiment` (never re-executed by the grader); untagged cells are locked.
The template's solution cells define the graded names with `raise NotImplementedError`.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from reference_solutions import realnvp as R  # noqa: E402
from reference_solutions import realnvp_2d as R2  # noqa: E402

TEMPLATE = ROOT / "assignments" / "hw3" / "hw3.ipynb"
SOLVED = ROOT / "reference_solutions" / "notebooks" / "hw3.ipynb"


def src(*objs: Any) -> str:
    return "\n\n\n".join(inspect.getsource(o).rstrip() for o in objs)


def cell(kind: str, cid: str, text: str, tag: str | None = None) -> NotebookNode:
    c = new_code_cell(text) if kind == "code" else new_markdown_cell(text)
    c.metadata["dgm"] = {"id": cid}
    if tag:
        c.metadata["tags"] = [tag]
    return c


INTRO = """# Homework 3: normalizing flows

13 points: theory (5), RealNVP on 2-D data (3), RealNVP on images (5).

How this notebook is graded. The grader runs the setup cell, the given code and your `solution` cells, then
calls your classes on its own inputs: it checks that every coupling layer and flow inverts exactly, compares
your log-determinants with `log|det J|` of the Jacobian autograd computes, integrates your 2-D density over a
grid, and trains your models with its own loop and budget to measure the test NLL against a reference model.
Cells marked *experiment* (data loading, long training, plots) are never re-run by the grader; their outputs are
kept for the TA. Final theory answers go into the ```` ```answer ```` blocks as `key: expression` (Python or
simple LaTeX syntax); the derivations are read by a TA. Do not rename classes or change their signatures."""

SETUP = """import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)"""

T1_TEXT = """## Theory

### Problem 1 (2 pt): Sylvester flows

A Sylvester flow maps $z \\in \\mathbb{R}^D$ to $z' = z + A\\, h(Bz + b)$
with $A \\in \\mathbb{R}^{D \\times M}$, $B \\in \\mathbb{R}^{M \\times D}$, $b \\in \\mathbb{R}^M$, $M \\le D$,
and an
elementwise smooth $h$.

1. Prove the matrix determinant lemma $\\det(I_D + AB) = \\det(I_M + BA)$ and use it to write
   $\\det \\frac{\\partial z'}{\\partial z}$ as the determinant of an $M \\times M$ matrix.
2. For $M = 1$ (a planar flow, $z' = z + u\\, h(w^Tz + b)$), write the determinant in terms of the two
   scalars `hp` $= h'(w^Tz + b)$ and `wTu` $= w^Tu$. Answer key: `t1_planar_det`.
3. Computing the determinant of a dense $D \\times D$ Jacobian costs $O(D^p)$: give $p$ (`t1_cost_naive`). With the
   parametrisation $A = QR$, $B = \\tilde{R}Q^T$ ($Q$ with orthonormal columns, $R, \\tilde{R}$ upper
   triangular $M \\times M$), the $M \\times M$ determinant costs $O(M^q)$: give $q$ (`t1_cost_sylvester`), and
   explain."""

T1 = """Your derivation here.

```answer
t1_planar_det: {det}
t1_cost_naive: {p}
t1_cost_sylvester: {q}
```"""

T2_TEXT = """### Problem 2 (2 pt): flows are universal

Let $\\pi$ be a density on $\\mathbb{R}^m$ that is positive everywhere. Define $u = f(x)$ by the conditional CDFs
$u_i = F_i(x_i \\mid x_1, \\dots, x_{i-1})$.

1. (1 pt) Show that the Jacobian of $f$ is triangular and that $\\det \\frac{\\partial f}{\\partial x} = \\pi(x)$.
2. (0.5 pt) Conclude that $u \\sim U[0, 1]^m$ when $x \\sim \\pi$.
3. (0.5 pt) Show that any two such densities are connected by an invertible differentiable map.

This problem is graded by a TA."""

T2 = """Your proofs here."""

T3_TEXT = """### Problem 3 (1 pt): discrete or continuous outputs

An autoregressive image model predicts each sub-pixel (256 values) either with a 256-way categorical
distribution or with a discretized mixture of $K$ logistics (each component has a weight, a mean and a scale).

1. How many numbers per sub-pixel does the network output for the categorical (`t3_categorical_outputs`) and for the
   mixture (`t3_mixture_outputs`, a formula in `K`)?
2. What is the largest $K$ for which the mixture needs strictly fewer outputs than the categorical (`t3_max_k`)?
   Discuss what the mixture gains besides size."""

T3 = """Your reasoning here.

```answer
t3_categorical_outputs: {cat}
t3_mixture_outputs: {mix}
t3_max_k: {k}
```"""

TASK2 = """## Task 2 (3 pt): RealNVP on 2-D data

Implement an affine coupling layer for 2-D points and a RealNVP built from a stack of them.

* `AffineCouplingLayer(parity_type, n_hiddens)`: `parity_type=True` keeps coordinate 0 and transforms coordinate 1
  (`False`: the other way round). The conditioner is `mlp(2, n_hiddens, 4)` applied to the masked input; it gives
  `raw_s` and `t`. Use the bounded log-scale `s = scale * tanh(raw_s) + scale_shift` with two scalar parameters
  initialised to zero. `forward(x, invert=False)` returns `(y, log_det)` where `log_det` has shape `(B,)` and is
  `log|det dy/dx|` of the map applied (so it is negative of the forward one when `invert=True`).
* `RealNVP2D(n_layers, n_hiddens)`: `transforms` is an `nn.ModuleList` of couplings with alternating parity (first
  `True`); `forward(x, invert=False) -> (z, log_det)` composes them (in reverse order when inverting, with the
  log-dets of the inverse maps); `log_prob(x)` is the log-density in nats `(B,)` with a standard normal prior;
  `loss(x)` returns `{"total_loss": ...}` (mean NLL); `sample(n)` returns `(n, 2)` points."""

MLP_GIVEN = src(R2.mlp)

TEMPLATE_COUPLING_2D = """class AffineCouplingLayer(nn.Module):
    def __init__(self, parity_type: bool, n_hiddens: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        # YOUR CODE
        raise NotImplementedError"""

TEMPLATE_REALNVP_2D = """class RealNVP2D(nn.Module):
    def __init__(self, n_layers: int = 8, n_hiddens: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # YOUR CODE

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError  # YOUR CODE

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError  # YOUR CODE

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        raise NotImplementedError  # YOUR CODE"""

TRAIN_2D = """# Experiment: train on two moons and look at the samples and the density (not re-run by the grader).
import matplotlib.pyplot as plt
from sklearn.datasets import make_moons

points = torch.tensor(make_moons(n_samples=6250, noise=0.1, random_state=0)[0], dtype=torch.float32)
train_points, test_points = points[:5000], points[5000:]
torch.manual_seed(0)
flow_2d = RealNVP2D(n_layers=8, n_hiddens=(64, 64))
optimizer = torch.optim.Adam(flow_2d.parameters(), lr=3e-3)
for epoch in range(30):
    for batch in train_points[torch.randperm(len(train_points))].split(128):
        loss = flow_2d.loss(batch)["total_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        print(f"epoch {epoch}: test NLL {flow_2d.loss(test_points)['total_loss'].item():.3f} nats/point")

xs, ys = torch.meshgrid(torch.linspace(-1.5, 2.5, 200), torch.linspace(-1.0, 1.5, 200), indexing="xy")
with torch.no_grad():
    density = flow_2d.log_prob(torch.stack([xs.ravel(), ys.ravel()], 1)).exp().reshape(xs.shape)
    samples = flow_2d.sample(2000)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.scatter(*samples.T, s=2)
ax1.set_title("samples")
ax2.imshow(density, origin="lower", extent=(-1.5, 2.5, -1.0, 1.5))
ax2.set_title("density")
plt.show()"""

TASK3 = """## Task 3 (5 pt): RealNVP on images

RealNVP on binarized digits (`nbins = 2`, as the course does for MNIST). The pipeline on an image `x` in [0, 1] on
`nbins` levels (`D = C*H*W`, natural logs):

1. dequantize (given): `y = (x*(nbins-1) + u) / nbins`, `u ~ U[0, 1)`;
2. logit: `x_s = alpha + (1 - 2 alpha) y`, `h = log x_s - log(1 - x_s)`, with
   `log|dh/dy| = log(1 - 2 alpha) - log x_s - log(1 - x_s)`;
3. flow `z = f(h)`; `log p_Y(y) = log N(z; 0, I) + log|det df/dh| + sum log|dh/dy|`;
4. `log_prob(x, u)` is the bound on the log-probability of the discrete image, `log p_Y(y) - D log(nbins)`: the bin
   width is counted once, the logit Jacobian once.

Every layer's `forward(x, invert=False)` returns `(out, log_det_map)`: `log_det_map` has the shape of the layer's
output and holds the elementwise `log|d out / d in|` of the *forward* map (for couplings: the log-scale `s`, zero on
the untouched half), the same in both directions. `RealNVP.forward(y, invert=False)` returns `(z, log_det)` with a
per-image `log_det` `(B,)` that includes the logit transform (forward: `log|det dz/dy|`; inverse: `log|det dy/dz|`).

* `LogitTransform(alpha)`: steps 2 (and its inverse).
* `AffineCheckerboardCouplingLayer(parity_type, input_shape, in_channels, n_filters, n_blocks)`: checkerboard mask,
  1 where `(i + j)` is even for `parity_type=True` (the top-left pixel conditions); the conditioner
  `SimpleResnet(in_channels + 1, 2 * in_channels, n_filters, n_blocks)` sees the masked image and the mask; log-scale
  `s = scale * tanh(raw_s) + scale_shift` with zero-initialised scalars.
* `AffineChannelCouplingLayer(parity_type, in_channels, n_filters, n_blocks)`: with `parity_type=True` the first
half of
  the channels conditions and the second half is transformed.
* `RealNVP(input_shape, n_channels, n_filters, n_blocks, nbins, alpha=0.05)`: logit -> 4 x (checkerboard coupling,
  ActNorm) -> squeeze -> 3 x (channel coupling, ActNorm) -> unsqueeze -> 3 x (checkerboard coupling, ActNorm),
parities
  alternating from `True`; `log_density(y)`, `log_prob(x, u=None)`, `loss(x) -> {"total_loss": ...}` (mean NLL in nats
  per image), `sample(n)` (images on the `nbins` levels)."""

GIVEN_IMAGES = src(R.dequantize, R.ActNorm, R.ResnetBlock, R.SimpleResnet, R.squeeze, R.unsqueeze, R.Squeeze)

TEMPLATE_LOGIT = """class LogitTransform(nn.Module):
    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # YOUR CODE"""

TEMPLATE_COUPLINGS = """class AffineCheckerboardCouplingLayer(nn.Module):
    def __init__(self, parity_type: bool, input_shape: Sequence[int], in_channels: int, n_filters: int,
                 n_blocks: int) -> None:
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # YOUR CODE


class AffineChannelCouplingLayer(nn.Module):
    def __init__(self, parity_type: bool, in_channels: int, n_filters: int, n_blocks: int) -> None:
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # YOUR CODE"""

TEMPLATE_REALNVP = """class RealNVP(nn.Module):
    def __init__(self, input_shape: Sequence[int], n_channels: int = 1, n_filters: int = 64, n_blocks: int = 4,
                 nbins: int = 256, alpha: float = 0.05) -> None:
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, y: Tensor, invert: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # YOUR CODE

    def log_density(self, y: Tensor) -> Tensor:
        raise NotImplementedError  # YOUR CODE

    def log_prob(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        raise NotImplementedError  # YOUR CODE

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError  # YOUR CODE

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        raise NotImplementedError  # YOUR CODE"""

TRAIN_IMAGES = """# Experiment: train on binarized 8x8 digits and show samples (not re-run by the grader).
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

digits = torch.tensor(load_digits().images / 16.0 > 0.5, dtype=torch.float32)[:, None]  # (N, 1, 8, 8) in {0, 1}
train_images, test_images = digits[:1400], digits[1400:]
torch.manual_seed(0)
flow = RealNVP((8, 8), n_channels=1, n_filters=32, n_blocks=2, nbins=2)
optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
for epoch in range(20):
    for batch in train_images[torch.randperm(len(train_images))].split(64):
        loss = flow.loss(batch)["total_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        nll = flow.loss(test_images)["total_loss"].item()
    print(f"epoch {epoch}: test NLL {nll:.2f} nats/image = {nll / (64 * math.log(2)):.3f} bits/dim")

samples = flow.sample(64)
fig, axes = plt.subplots(8, 8, figsize=(6, 6))
for ax, image in zip(axes.ravel(), samples):
    ax.imshow(image[0], cmap="gray")
    ax.axis("off")
plt.show()"""


def solution_2d_coupling() -> str:
    return src(R2.AffineCouplingLayer)


def solution_2d_flow() -> str:
    s = src(R2.RealNVP2D)
    return s.replace("        self.config = RealNVP2DConfig(n_layers, tuple(n_hiddens))\n", "")


def solution_couplings() -> str:
    return src(R.AffineCoupling, R.AffineCheckerboardCouplingLayer, R.AffineChannelCouplingLayer)


def solution_realnvp() -> str:
    s = src(R.RealNVP)
    config = "        self.config = RealNVPConfig((h, w), n_channels, n_filters, n_blocks, nbins, alpha)\n"
    return s.replace(config, "")


def build(solved: bool) -> NotebookNode:
    cells = [
        cell("markdown", "intro", INTRO),
        cell("code", "setup", SETUP),
        cell("markdown", "t1_text", T1_TEXT),
        cell(
            "markdown",
            "t1",
            T1.format(**(dict(det="1 + hp*wTu", p=3, q=1) if solved else dict(det="", p="", q=""))),
            "theory",
        ),
        cell("markdown", "t2_text", T2_TEXT),
        cell("markdown", "t2", T2, "theory"),
        cell("markdown", "t3_text", T3_TEXT),
        cell(
            "markdown",
            "t3",
            T3.format(**(dict(cat=256, mix="3*K", k=85) if solved else dict(cat="", mix="", k=""))),
            "theory",
        ),
        cell("markdown", "task2", TASK2),
        cell("code", "mlp_given", MLP_GIVEN),
        cell("code", "coupling_2d", solution_2d_coupling() if solved else TEMPLATE_COUPLING_2D, "solution"),
        cell("code", "realnvp_2d", solution_2d_flow() if solved else TEMPLATE_REALNVP_2D, "solution"),
        cell("code", "train_2d", TRAIN_2D, "experiment"),
        cell("markdown", "task3", TASK3),
        cell("code", "given_images", GIVEN_IMAGES),
        cell("code", "logit", src(R.LogitTransform) if solved else TEMPLATE_LOGIT, "solution"),
        cell("code", "couplings", solution_couplings() if solved else TEMPLATE_COUPLINGS, "solution"),
        cell("code", "realnvp", solution_realnvp() if solved else TEMPLATE_REALNVP, "solution"),
        cell("code", "train_images", TRAIN_IMAGES, "experiment"),
    ]
    if solved:
        cells[3].source = cells[3].source.replace("Your derivation here.", SOLVED_T1)
        cells[5].source = SOLVED_T2
        cells[7].source = cells[7].source.replace("Your reasoning here.", SOLVED_T3)
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    return nb


SOLVED_T1 = """**Lemma.** With the block matrices $\\begin{pmatrix} I_D & -A \\\\ B & I_M \\end{pmatrix}$, Gaussian
elimination on
the rows gives the determinant both as $\\det(I_M)\\det(I_D + AB)$ and as $\\det(I_D)\\det(I_M + BA)$.

**Jacobian.** $\\frac{\\partial z'}{\\partial z} = I_D + A\\,\\mathrm{diag}(h'(Bz + b))\\,B$, so by the lemma
$\\det \\frac{\\partial z'}{\\partial z} = \\det(I_M + \\mathrm{diag}(h')\\,BA)$. For $M = 1$ this is
$1 + h'(w^Tz + b)\\,w^Tu$.

**Cost.** A dense determinant (LU) costs $O(D^3)$. With $A = QR$, $B = \\tilde{R}Q^T$: $BA = \\tilde{R}R$ is upper
triangular, so is $I_M + \\mathrm{diag}(h')\\tilde{R}R$, and its determinant is the product of its $M$ diagonal
entries: $O(M)$."""

SOLVED_T2 = """1. $u_i$ depends on $x_1, \\dots, x_i$ only, so the Jacobian is lower triangular with diagonal
$\\partial u_i / \\partial x_i = \\pi(x_i \\mid x_{<i})$; the product of the diagonal is
$\\prod_i \\pi(x_i \\mid x_{<i}) = \\pi(x)$.
2. By the change of variables, $p_U(u) = \\pi(x) / |\\det J| = 1$ on $[0, 1]^m$.
3. With $f_\\pi$, $f_\\rho$ the maps of two such densities, $f_\\rho^{-1} \\circ f_\\pi$ maps $\\pi$ to $\\rho$;
   both are invertible
(strictly increasing conditional CDFs) and differentiable."""

SOLVED_T3 = """A categorical over 256 values needs 256 logits per sub-pixel. A mixture of $K$ logistics needs $K$
weights, $K$ means
and $K$ scales: $3K$. $3K < 256 \\iff K \\le 85$. Besides size, the mixture knows that nearby values are similar
(a smooth density over intensities), which the categorical has to learn from data."""


def main() -> None:
    nbformat.write(build(False), str(TEMPLATE))
    SOLVED.parent.mkdir(exist_ok=True)
    nbformat.write(build(True), str(SOLVED))


if __name__ == "__main__":
    main()
