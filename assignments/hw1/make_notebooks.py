"""Build homework 1's template (`assignments/hw1/hw1.ipynb`) and solved notebook
(`reference_solutions/notebooks/hw1.ipynb`) from one list of cells, so that the two never drift apart.

    python assignments/hw1/make_notebooks.py

Every cell has `metadata.dgm.id`. Tags: `solution` (student code), `theory` (derivation + ```answer
blocks), `experiment` (data, training, plots: never re-executed by the grader); untagged cells are
locked and always come from the template. A solution cell's template text defines the same names with
`raise NotImplementedError`, so a blank template earns no automatic points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "assignments" / "hw1" / "hw1.ipynb"
SOLVED = ROOT / "reference_solutions" / "notebooks" / "hw1.ipynb"


@dataclass(frozen=True)
class Cell:
    id: str
    kind: str  # "markdown" (locked), "code" (locked), "solution", "theory", "experiment"
    solved: str
    template: str | None = None  # the student's starting text; None: same as `solved`


def _nb(cells: list[Cell], solved: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(
        {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "dgm": {"assignment": "hw1"},
        }
    )
    for cell in cells:
        text = cell.solved if solved or cell.template is None else cell.template
        text = text.strip("\n")
        tags = [] if cell.kind in ("markdown", "code") else [cell.kind]
        markdown = cell.kind in ("markdown", "theory")
        new = nbformat.v4.new_markdown_cell(text) if markdown else nbformat.v4.new_code_cell(text)
        new.id = cell.id.replace("_", "-")
        new.metadata["dgm"] = {"id": cell.id}
        if tags:
            new.metadata["tags"] = tags
        nb.cells.append(new)
    return nb


INTRO = r"""
# Homework 1: autoregressive models

13 points: **Theory** (4), **PixelCNN** (4), **ImageGPT** (5).

How this notebook is graded:

* Write code only in the cells that say `# YOUR CODE` (tagged `solution`). The other code cells are
  locked: the grader always runs its own copy of them, so edits there are lost.
* Theory: write the derivation in the markdown cell of each problem (a TA grades it) and the final
  answers inside the ```` ```answer ```` block, one `key: expression` per line, in plain math
  (`s2 + h**2`, `log(2)`, `1 - (1 - eps)**m`). Those are checked automatically.
* Cells marked **experiment** (data loading, your training runs, plots) are *not* re-run by the grader;
  their outputs are kept for the TA. The grader builds your models itself, trains them with its own
  loop (Adam, fixed budget and seed) on binarized images, and measures the test negative
  log-likelihood from the logits your model returns. So your classes must follow the interfaces below
  exactly, and `loss(x)` must return a dict with key `"total_loss"`.
* Images are binary, float tensors of shape `(B, 1, H, W)` with values in {0, 1}. Your code must work
  for any `H, W` (the grader uses 8x8 digits and 28x28 MNIST).
"""

SETUP = """
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
"""

THEORY_INTRO = r"""
## Task 1: theory (4 points)

### Problem 1: sampling from a kernel density estimate (1 point)

Let $x_1, \dots, x_n \in \mathbb{R}$ and let $\varphi$ be the standard normal density. The Gaussian
KDE with bandwidth $h > 0$ is
$$\hat p_h(x) = \frac{1}{n} \sum_{i=1}^n \frac{1}{h}\,\varphi\!\left(\frac{x - x_i}{h}\right).$$
Sampling scheme: draw $i$ uniformly from $\{1, \dots, n\}$, draw $\varepsilon \sim \mathcal N(0, 1)$
independently, and return $y = x_i + h\varepsilon$.

1. Prove that $y$ has density $\hat p_h$. *(proof, 0.5)*
2. Let $\bar x = \frac1n \sum_i x_i$ and $s^2 = \frac1n\sum_i (x_i - \bar x)^2$. Find $\operatorname{Var}[y]$
   in terms of `s2` ($= s^2$) and `h`. Answer key: `t1_kde_variance`. *(0.5)*
"""

THEORY_KDE = r"""
**Derivation.**
For any measurable $A$, by the law of total probability over the chosen index,
$$P(y \in A) = \sum_{i=1}^n \frac1n P(x_i + h\varepsilon \in A)
= \sum_{i=1}^n \frac1n \int_A \frac1h \varphi\!\left(\frac{t - x_i}{h}\right) dt = \int_A \hat p_h(t)\, dt,$$
because $x_i + h\varepsilon \sim \mathcal N(x_i, h^2)$ has density $\frac1h\varphi((t - x_i)/h)$.
Hence $y \sim \hat p_h$.

Variance: by the law of total variance over the index $I$,
$$\operatorname{Var}[y] = \mathbb E[\operatorname{Var}[y \mid I]] + \operatorname{Var}[\mathbb E[y \mid I]]
= h^2 + \operatorname{Var}[x_I] = h^2 + s^2,$$
since $I$ is uniform, so $x_I$ has mean $\bar x$ and variance $s^2$.

```answer
t1_kde_variance: s2 + h**2
```
"""

THEORY_KDE_BLANK = r"""
**Your derivation here.**

```answer
t1_kde_variance:
```
"""

THEORY_ALPHA_INTRO = r"""
### Problem 2: limits of the alpha-divergence (1 point)

For densities $p, q$ and $\alpha \ne \pm 1$ define
$$D_\alpha(p \,\|\, q) = \frac{4}{1 - \alpha^2}
\left(1 - \int p(x)^{\frac{1+\alpha}{2}}\, q(x)^{\frac{1-\alpha}{2}}\, dx\right).$$

1. Prove that $D_\alpha(p\|q) \to KL(p\|q)$ as $\alpha \to 1$ and $D_\alpha(p\|q) \to KL(q\|p)$ as
   $\alpha \to -1$ (you may exchange limit and integral). *(proof, 0.5)*
2. Let $p = \mathcal N(0, 1)$ and $q = \mathcal N(1, 4)$ (mean 1, **variance** 4). Give the exact value
   of $\lim_{\alpha\to 1} D_\alpha(p\|q)$ (key `t2_alpha_to_1`) and of $\lim_{\alpha\to -1} D_\alpha(p\|q)$
   (key `t2_alpha_to_minus_1`). *(0.25 + 0.25)*
"""

THEORY_ALPHA = r"""
**Derivation.**
Put $\alpha = 1 - 2\delta$, so $\frac{1+\alpha}{2} = 1 - \delta$, $\frac{1-\alpha}{2} = \delta$ and
$1 - \alpha^2 = 4\delta(1 - \delta)$. Then
$p^{1-\delta} q^{\delta} = p\, e^{\delta \ln(q/p)} = p\,(1 + \delta \ln(q/p) + o(\delta))$, so
$\int p^{1-\delta}q^\delta = 1 - \delta\, KL(p\|q) + o(\delta)$ and
$$D_\alpha = \frac{1}{\delta(1-\delta)}\left(\delta\,KL(p\|q) + o(\delta)\right) \to KL(p\|q) \quad (\delta \to 0).$$
For $\alpha \to -1$ the roles of $p$ and $q$ swap ($D_\alpha(p\|q) = D_{-\alpha}(q\|p)$), giving $KL(q\|p)$.

For Gaussians,
$$KL(\mathcal N(\mu_1, \sigma_1^2)\|\mathcal N(\mu_2, \sigma_2^2))
= \ln\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1 - \mu_2)^2}{2\sigma_2^2} - \frac12,$$
so $KL(p\|q) = \ln 2 + \frac{2}{8} - \frac12 = \ln 2 - \frac14$ and
$KL(q\|p) = -\ln 2 + \frac{5}{2} - \frac12 = 2 - \ln 2$.

```answer
t2_alpha_to_1: log(2) - 1/4
t2_alpha_to_minus_1: 2 - log(2)
```
"""

THEORY_ALPHA_BLANK = r"""
**Your derivation here.**

```answer
t2_alpha_to_1:
t2_alpha_to_minus_1:
```
"""

THEORY_CURSE_INTRO = r"""
### Problem 3: the curse of dimensionality (2 points)

1. Show that the volume of the ball of radius $r$ in $\mathbb R^m$ is $V_m(r) = C_m r^m$ for a constant
   $C_m$ that depends only on $m$, and give $C_m$. *(proof, part of the 1-point manual item)*
2. Find the fraction of the volume of the unit ball that lies in the shell $1 - \varepsilon \le \|x\| \le 1$,
   as a function of `eps` and `m` (key `t3_shell_fraction`, 0.5), and its limit as $m \to \infty$ for a
   fixed $\varepsilon \in (0, 1)$ (key `t3_shell_limit`, 0.25). Prove the limit. *(manual)*
3. What is the smallest dimension $m$ for which at least 99% of the unit ball's volume lies within
   distance $\varepsilon = 0.01$ of its surface? (key `t3_min_dimension`, 0.25)
"""

THEORY_CURSE = r"""
**Derivation.**
The map $x \mapsto r x$ has Jacobian determinant $r^m$, so
$$V_m(r) = \int_{\|x\| \le r} dx = r^m \int_{\|u\| \le 1} du = r^m V_m(1),$$
and $C_m = V_m(1) = \frac{\pi^{m/2}}{\Gamma(m/2 + 1)}$ (compute $\int e^{-\|x\|^2} dx = \pi^{m/2}$ in polar
coordinates). The shell fraction is
$$\frac{V_m(1) - V_m(1-\varepsilon)}{V_m(1)} = 1 - (1 - \varepsilon)^m.$$
Since $0 < 1 - \varepsilon < 1$, $(1-\varepsilon)^m = e^{m \ln(1 - \varepsilon)} \to 0$, so the fraction tends
to 1: in high dimension almost all of the volume is near the surface.
For $\varepsilon = 0.01$: $1 - 0.99^m \ge 0.99 \iff m \ge \ln 0.01 / \ln 0.99 \approx 458.2$, so $m = 459$.

```answer
t3_shell_fraction: 1 - (1 - eps)**m
t3_shell_limit: 1
t3_min_dimension: 459
```
"""

THEORY_CURSE_BLANK = r"""
**Your derivation here.**

```answer
t3_shell_fraction:
t3_shell_limit:
t3_min_dimension:
```
"""

PIXELCNN_INTRO = r"""
## Task 2: PixelCNN (4 points)

PixelCNN (van den Oord et al., 2016, arXiv:1601.06759) models $p(x) = \prod_i p(x_i \mid x_{<i})$ in
raster order with masked convolutions. Implement exactly this architecture (the grader compares the
receptive field of your model with it):

* `MaskedConv2d('A', 1, n_filters, kernel_size, padding=kernel_size // 2)`;
* then `n_layers - 1` times: `ReLU`, `MaskedConv2d('B', n_filters, n_filters, kernel_size, padding=kernel_size // 2)`;
* then `ReLU`, `MaskedConv2d('B', n_filters, n_filters, 1)`, `ReLU`, `MaskedConv2d('B', n_filters, 2, 1)`.

Interfaces:

* `MaskedConv2d(mask_type, in_channels, out_channels, kernel_size, **kwargs)` subclasses `nn.Conv2d`
  (extra keyword arguments such as `padding` go to `nn.Conv2d`); `create_mask()` returns the mask, which
  `__init__` registers as the buffer `self.mask` with the kernel's shape `(out, in, k, k)`: ones on the
  rows above the centre and left of the centre, zeros after it, and the centre itself 0 for type `'A'`
  and 1 for type `'B'`. `forward` convolves with `weight * mask`.
* `PixelCNN(input_shape, n_filters=32, kernel_size=5, n_layers=5)` with `input_shape = (H, W)`:
  `forward(x)` takes `(B, 1, H, W)` in {0, 1} and returns logits `(B, 2, 1, H, W)`, where
  `logits[:, k]` scores pixel value `k` (you may rescale the input to {-1, 1} inside);
  `loss(x)` returns `{"total_loss": mean cross-entropy in nats per pixel}`; `sample(n)` returns
  `(n, 1, H, W)` in {0, 1}, drawn pixel by pixel in raster order.
"""

DATA = r"""
# experiment: data for your own runs (the grader brings its own)
from sklearn.datasets import load_digits

digits = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
digits = (digits > 0.5).float()
perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
train_data, test_data = digits[perm[:1437]], digits[perm[1437:]]
print(train_data.shape, test_data.shape, f"mean pixel {train_data.mean():.3f}")


def fit(model, data, steps=300, batch_size=64, lr=3e-3):
    # a minimal training loop; use your own (more steps, MNIST, a GPU) for the report
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        batch = data[torch.randint(len(data), (batch_size,))]
        loss = model.loss(batch)["total_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(step, round(loss.item(), 4))
    return model


def show(images, title=""):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; skipping the plot", title)
        return
    images = torch.as_tensor(images).float().cpu()
    n = len(images)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
    for ax, img in zip(axes.flat, images):
        ax.imshow(img[0], cmap="gray")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    plt.show()
"""

MASKED_CONV = r"""
class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        assert mask_type in ("A", "B")
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.mask_type = mask_type
        self.register_buffer("mask", self.create_mask())

    def create_mask(self):
        k_h, k_w = self.kernel_size
        mask = torch.zeros_like(self.weight)  # (out, in, k, k)
        mask[:, :, : k_h // 2] = 1
        mask[:, :, k_h // 2, : k_w // 2] = 1
        if self.mask_type == "B":
            mask[:, :, k_h // 2, k_w // 2] = 1
        return mask

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups)
"""

MASKED_CONV_BLANK = r"""
class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, in_channels, out_channels, kernel_size, **kwargs):
        # YOUR CODE: call nn.Conv2d's constructor, then register the mask as a buffer named "mask"
        raise NotImplementedError

    def create_mask(self):
        # YOUR CODE: a tensor of the kernel's shape (out, in, k, k)
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE: convolve with weight * mask
        raise NotImplementedError
"""

MASK_TEST = r"""
# locked: quick checks of MaskedConv2d (the grader checks much more)
for k in (3, 5):
    assert MaskedConv2d("A", 1, 1, k).mask[0, 0, k // 2, k // 2] == 0
    assert MaskedConv2d("B", 1, 1, k).mask[0, 0, k // 2, k // 2] == 1
print("MaskedConv2d: ok")
"""

PIXELCNN = r"""
class PixelCNN(nn.Module):
    def __init__(self, input_shape, n_filters=32, kernel_size=5, n_layers=5):
        super().__init__()
        self.input_shape = tuple(input_shape)
        pad = kernel_size // 2
        layers = [MaskedConv2d("A", 1, n_filters, kernel_size, padding=pad)]
        for _ in range(n_layers - 1):
            layers += [nn.ReLU(), MaskedConv2d("B", n_filters, n_filters, kernel_size, padding=pad)]
        layers += [nn.ReLU(), MaskedConv2d("B", n_filters, n_filters, 1), nn.ReLU(), MaskedConv2d("B", n_filters, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        # (B, 1, H, W) -> (B, 2, H, W) -> (B, 2, 1, H, W)
        return self.net(2.0 * x - 1.0).unsqueeze(2)

    def loss(self, x):
        return {"total_loss": F.cross_entropy(self(x), x.long())}

    @torch.no_grad()
    def sample(self, n):
        device = next(self.parameters()).device
        x = torch.zeros(n, 1, *self.input_shape, device=device)
        for i in range(self.input_shape[0]):
            for j in range(self.input_shape[1]):
                logits = self(x)[:, :, 0, i, j]  # (n, 2)
                x[:, 0, i, j] = torch.distributions.Categorical(logits=logits).sample().float()
        return x
"""

PIXELCNN_BLANK = r"""
class PixelCNN(nn.Module):
    def __init__(self, input_shape, n_filters=32, kernel_size=5, n_layers=5):
        super().__init__()
        # YOUR CODE: the architecture described above
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE: (B, 1, H, W) in {0, 1} -> logits (B, 2, 1, H, W)
        raise NotImplementedError

    def loss(self, x):
        # YOUR CODE: {"total_loss": mean cross-entropy in nats per pixel}
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n):
        # YOUR CODE: (n, 1, H, W) in {0, 1}, one pixel at a time in raster order
        raise NotImplementedError
"""

PIXELCNN_TEST = r"""
# locked: shapes on a tiny model
_model = PixelCNN((6, 5), n_filters=4, kernel_size=3, n_layers=2)
_x = (torch.rand(3, 1, 6, 5) > 0.5).float()
assert _model(_x).shape == (3, 2, 1, 6, 5)
assert "total_loss" in _model.loss(_x)
assert _model.sample(2).shape == (2, 1, 6, 5)
print("PixelCNN: ok")
"""

PIXELCNN_TRAIN = r"""
# experiment: train on the digits and look at samples
pixelcnn = fit(PixelCNN((8, 8), n_filters=16, kernel_size=3, n_layers=4), train_data)
with torch.no_grad():
    print("test NLL, nats/pixel:", pixelcnn.loss(test_data)["total_loss"].item())
show(pixelcnn.sample(16), "PixelCNN samples")
"""

RF_INTRO = r"""
### Receptive field

Implement `get_receptive_field(model, input_shape)`: feed an all-zero image `(1, 1, H, W)` that
requires grad, back-propagate the sum of the logits of the centre pixel `(H // 2, W // 2)`, and return
the `(H, W)` bool map `|grad| > 1e-8`. Plot it for several depths: where is the blind spot?
"""

RF = r"""
def get_receptive_field(model, input_shape):
    height, width = input_shape
    x = torch.zeros(1, 1, height, width, requires_grad=True)
    logits = model(x)  # (1, 2, 1, H, W)
    logits[0, :, 0, height // 2, width // 2].sum().backward()
    return x.grad[0, 0].abs() > 1e-8
"""

RF_BLANK = r"""
def get_receptive_field(model, input_shape):
    # YOUR CODE: (H, W) bool map of the pixels the centre pixel's logits depend on
    raise NotImplementedError
"""

RF_PLOT = r"""
# experiment: receptive fields for growing depth (28x28, kernel 5)
fields = [get_receptive_field(PixelCNN((28, 28), 8, 5, n), (28, 28)).float()[None] for n in (1, 3, 5, 6)]
show(torch.stack(fields), "receptive fields, n_layers = 1, 3, 5, 6")
"""

AUTOCOMPLETE_INTRO = r"""
### Autocomplete

`PixelCNNAutoComplete(PixelCNN)` overrides `sample(self, n, init)`: `init` is `(n, 1, H, W)` with known
pixels in {0, 1} and unknown pixels equal to `-1`. Fill only the unknown pixels, in raster order, each
drawn from $p(x_i \mid x_{<i})$; known pixels must come back unchanged.
"""

AUTOCOMPLETE = r"""
class PixelCNNAutoComplete(PixelCNN):
    @torch.no_grad()
    def sample(self, n, init):
        x = init.clone().float()
        unknown = x < 0
        for i in range(self.input_shape[0]):
            for j in range(self.input_shape[1]):
                todo = unknown[:, 0, i, j]
                if not todo.any():
                    continue
                logits = self(x.clamp(min=0))[:, :, 0, i, j]  # unknown pixels are fed as 0
                draw = torch.distributions.Categorical(logits=logits).sample().float()
                x[:, 0, i, j] = torch.where(todo, draw, x[:, 0, i, j])
        return x
"""

AUTOCOMPLETE_BLANK = r"""
class PixelCNNAutoComplete(PixelCNN):
    @torch.no_grad()
    def sample(self, n, init):
        # YOUR CODE: fill the pixels equal to -1, keep the others
        raise NotImplementedError
"""

AUTOCOMPLETE_RUN = r"""
# experiment: complete the lower halves of test digits
completer = PixelCNNAutoComplete((8, 8), n_filters=16, kernel_size=3, n_layers=4)
completer.load_state_dict(pixelcnn.state_dict())
init = test_data[:8].clone()
init[:, :, 4:] = -1
show(torch.cat([test_data[:8], completer.sample(8, init)]), "originals (top) and completions (bottom)")
"""

GPT_INTRO = r"""
## Task 3: ImageGPT (5 points)

ImageGPT (Chen et al., 2020, "Generative Pretraining from Pixels") is a decoder-only transformer over
the $L = HW$ pixels. Interfaces:

* `get_attention_mask(seq_len)` returns the additive causal mask `(L, L)`, float: 0 on and below the
  diagonal, `-inf` above it (query `i` may attend to keys `j <= i`). Pass it as `attn_mask` to
  `nn.MultiheadAttention` (you may use the built-in attention module).
* `DecoderBlock(embed_dim, num_heads)`, pre-LN: `x = x + MHA(LN(x))` with the causal mask, then
  `x = x + MLP(LN(x))` with a 2-layer ReLU MLP; `forward(x)` maps `(B, L, E)` to `(B, L, E)`.
* `ImageGPT(input_shape, embed_dim, num_heads, num_layers)`: a learnable start-of-sequence vector
  (`nn.Parameter`), a token embedding `nn.Embedding(2, E)`, a learned positional `nn.Embedding(L, E)`,
  the blocks, a final `LayerNorm` and a bias-free `nn.Linear(E, 1)`.
  * `add_sos_token(x_emb)`: `(B, L, E) -> (B, L, E)`, prepends the start vector and drops the last
    element, so position `i` holds the embedding of pixel `i - 1`;
  * `add_pos_embeddings(x_emb)`: adds the embedding of position `i` to element `i`;
  * `forward(x)`: pixels `(B, L)` long -> logits `(B, L, 1)`; logit `i` is
    $\log\frac{p(x_i = 1 \mid x_{<i})}{p(x_i = 0 \mid x_{<i})}$;
  * `loss(x)`: images `(B, 1, H, W)` -> `{"total_loss": binary cross-entropy with logits, mean over pixels}`;
  * `sample(n)`: `(n, 1, H, W)` in {0, 1}, one pixel per forward pass in raster order.
"""

ATTENTION_MASK = r"""
def get_attention_mask(seq_len):
    return torch.full((seq_len, seq_len), float("-inf")).triu(diagonal=1)
"""

ATTENTION_MASK_BLANK = r"""
def get_attention_mask(seq_len):
    # YOUR CODE: (L, L) float, 0 on and below the diagonal, -inf above
    raise NotImplementedError
"""

ATTENTION_TEST = r"""
# locked
_inf = float("-inf")
assert torch.equal(get_attention_mask(3), torch.tensor([[0.0, _inf, _inf], [0.0, 0.0, _inf], [0.0, 0.0, 0.0]]))
print("get_attention_mask: ok")
"""

DECODER_BLOCK = r"""
class DecoderBlock(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dim)
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, 4 * embed_dim), nn.ReLU(), nn.Linear(4 * embed_dim, embed_dim))

    def forward(self, x):
        mask = get_attention_mask(x.shape[1]).to(x.device)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))
"""

DECODER_BLOCK_BLANK = r"""
class DecoderBlock(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE: (B, L, E) -> (B, L, E)
        raise NotImplementedError
"""

IMAGE_GPT = r"""
class ImageGPT(nn.Module):
    def __init__(self, input_shape, embed_dim, num_heads, num_layers):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.seq_len = self.input_shape[0] * self.input_shape[1]
        self.sos = nn.Parameter(0.02 * torch.randn(embed_dim))
        self.token_embedding = nn.Embedding(2, embed_dim)
        self.pos_embedding = nn.Embedding(self.seq_len, embed_dim)
        self.blocks = nn.ModuleList(DecoderBlock(embed_dim, num_heads) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, 1, bias=False)

    def add_sos_token(self, x_emb):
        sos = self.sos.view(1, 1, -1).expand(x_emb.shape[0], 1, -1)  # (B, 1, E)
        return torch.cat([sos, x_emb[:, :-1]], dim=1)

    def add_pos_embeddings(self, x_emb):
        return x_emb + self.pos_embedding(torch.arange(x_emb.shape[1], device=x_emb.device))

    def forward(self, x):
        h = self.add_pos_embeddings(self.add_sos_token(self.token_embedding(x)))  # (B, L, E)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))  # (B, L, 1)

    def loss(self, x):
        tokens = x.flatten(1)  # (B, 1, H, W) -> (B, L)
        logits = self(tokens.long())[..., 0]
        return {"total_loss": F.binary_cross_entropy_with_logits(logits, tokens.float())}

    @torch.no_grad()
    def sample(self, n):
        tokens = torch.zeros(n, self.seq_len, dtype=torch.long, device=self.sos.device)
        for i in range(self.seq_len):
            tokens[:, i] = torch.bernoulli(torch.sigmoid(self(tokens)[:, i, 0])).long()
        return tokens.view(n, 1, *self.input_shape).float()
"""

IMAGE_GPT_BLANK = r"""
class ImageGPT(nn.Module):
    def __init__(self, input_shape, embed_dim, num_heads, num_layers):
        super().__init__()
        # YOUR CODE
        raise NotImplementedError

    def add_sos_token(self, x_emb):
        # YOUR CODE: (B, L, E) -> (B, L, E), shifted right by one with the start vector first
        raise NotImplementedError

    def add_pos_embeddings(self, x_emb):
        # YOUR CODE
        raise NotImplementedError

    def forward(self, x):
        # YOUR CODE: (B, L) long -> (B, L, 1)
        raise NotImplementedError

    def loss(self, x):
        # YOUR CODE: images (B, 1, H, W) -> {"total_loss": ...}
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n):
        # YOUR CODE: (n, 1, H, W) in {0, 1}
        raise NotImplementedError
"""

GPT_TEST = r"""
# locked: the smoke test
_gpt = ImageGPT(input_shape=(2, 2), embed_dim=12, num_heads=4, num_layers=2)
assert _gpt(torch.randint(0, 2, (2, 4))).shape == (2, 4, 1)
assert _gpt.loss(torch.randint(0, 2, (2, 1, 2, 2)).float())["total_loss"].requires_grad
assert _gpt.sample(1).shape == (1, 1, 2, 2)
print("ImageGPT: ok")
"""

GPT_TRAIN = r"""
# experiment: train on the digits and look at samples
gpt = fit(ImageGPT((8, 8), embed_dim=32, num_heads=2, num_layers=1), train_data, steps=300, batch_size=32, lr=5e-3)
with torch.no_grad():
    print("test NLL, nats/pixel:", gpt.loss(test_data)["total_loss"].item())
show(gpt.sample(16), "ImageGPT samples")
"""

CELLS = [
    Cell("intro", "markdown", INTRO),
    Cell("setup", "code", SETUP),
    Cell("theory_intro", "markdown", THEORY_INTRO),
    Cell("theory_kde", "theory", THEORY_KDE, THEORY_KDE_BLANK),
    Cell("theory_alpha_intro", "markdown", THEORY_ALPHA_INTRO),
    Cell("theory_alpha", "theory", THEORY_ALPHA, THEORY_ALPHA_BLANK),
    Cell("theory_curse_intro", "markdown", THEORY_CURSE_INTRO),
    Cell("theory_curse", "theory", THEORY_CURSE, THEORY_CURSE_BLANK),
    Cell("pixelcnn_intro", "markdown", PIXELCNN_INTRO),
    Cell("data", "experiment", DATA),
    Cell("masked_conv", "solution", MASKED_CONV, MASKED_CONV_BLANK),
    Cell("masked_conv_test", "code", MASK_TEST),
    Cell("pixelcnn", "solution", PIXELCNN, PIXELCNN_BLANK),
    Cell("pixelcnn_test", "code", PIXELCNN_TEST),
    Cell("pixelcnn_train", "experiment", PIXELCNN_TRAIN),
    Cell("receptive_field_intro", "markdown", RF_INTRO),
    Cell("receptive_field", "solution", RF, RF_BLANK),
    Cell("receptive_field_plot", "experiment", RF_PLOT),
    Cell("autocomplete_intro", "markdown", AUTOCOMPLETE_INTRO),
    Cell("autocomplete", "solution", AUTOCOMPLETE, AUTOCOMPLETE_BLANK),
    Cell("autocomplete_run", "experiment", AUTOCOMPLETE_RUN),
    Cell("imagegpt_intro", "markdown", GPT_INTRO),
    Cell("attention_mask", "solution", ATTENTION_MASK, ATTENTION_MASK_BLANK),
    Cell("attention_mask_test", "code", ATTENTION_TEST),
    Cell("decoder_block", "solution", DECODER_BLOCK, DECODER_BLOCK_BLANK),
    Cell("image_gpt", "solution", IMAGE_GPT, IMAGE_GPT_BLANK),
    Cell("image_gpt_test", "code", GPT_TEST),
    Cell("image_gpt_train", "experiment", GPT_TRAIN),
]


def main() -> None:
    nbformat.write(_nb(CELLS, solved=False), TEMPLATE)
    SOLVED.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_nb(CELLS, solved=True), SOLVED)


if __name__ == "__main__":
    main()
