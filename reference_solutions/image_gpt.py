"""ImageGPT for binary images: a decoder-only transformer over the pixels in raster order.

Chen, Radford, Child, Wu, Jun, Luan, Sutskever, "Generative Pretraining from Pixels", ICML 2020
(PMLR 119:1691-1703). Attention and the decoder block follow Vaswani et al., "Attention Is All You
Need", arXiv:1706.03762, with the pre-LN placement of GPT-2 / Xiong et al., arXiv:2002.04745.

The image x in {0, 1}^L (L = H W) is modelled autoregressively (iGPT eq. 1):

    p(x) = prod_{i=1}^{L} p(x_i | x_1, ..., x_{i-1}),   p(x_i = 1 | x_<i) = sigmoid(logit_i).

Causality comes from two pieces: the input sequence is shifted right by one with a learned
start-of-sequence vector (position i holds x_{i-1}), and the attention mask keeps position i from
attending to positions after i. Loss: binary cross-entropy with logits, mean over pixels (nats/pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def get_attention_mask(seq_len: int) -> torch.Tensor:
    """Additive causal mask (L, L): 0 where key j <= query i, -inf where j > i (Vaswani et al. eq. 1)."""
    return torch.full((seq_len, seq_len), float("-inf")).triu(diagonal=1)


class DecoderBlock(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)) with the causal mask, then x + MLP(LN(x))."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dim)
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, 4 * embed_dim), nn.ReLU(), nn.Linear(4 * embed_dim, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, E) -> (B, L, E)."""
        mask = get_attention_mask(x.shape[1]).to(x.device)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


@dataclass(frozen=True)
class ImageGPTConfig:
    input_shape: tuple[int, int] = (28, 28)  # (H, W); the sequence length is H * W
    embed_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2


class ImageGPT(nn.Module):
    """Decoder-only transformer over binary pixels; `forward` returns one Bernoulli logit per pixel."""

    def __init__(self, input_shape: tuple[int, int], embed_dim: int, num_heads: int, num_layers: int) -> None:
        super().__init__()
        self.config = ImageGPTConfig(tuple(input_shape), embed_dim, num_heads, num_layers)
        self.input_shape = self.config.input_shape
        self.seq_len = self.input_shape[0] * self.input_shape[1]
        self.sos = nn.Parameter(0.02 * torch.randn(embed_dim))
        self.token_embedding = nn.Embedding(2, embed_dim)
        self.pos_embedding = nn.Embedding(self.seq_len, embed_dim)
        self.blocks = nn.ModuleList(DecoderBlock(embed_dim, num_heads) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, 1, bias=False)

    def add_sos_token(self, x_emb: torch.Tensor) -> torch.Tensor:
        """Shift right by one: (B, L, E) -> (B, L, E) holding [sos, x_1, ..., x_{L-1}]."""
        sos = self.sos.view(1, 1, -1).expand(x_emb.shape[0], 1, -1)  # (E,) -> (B, 1, E)
        return torch.cat([sos, x_emb[:, :-1]], dim=1)

    def add_pos_embeddings(self, x_emb: torch.Tensor) -> torch.Tensor:
        """Add the learned embedding of position i to element i: (B, L, E) -> (B, L, E)."""
        positions = torch.arange(x_emb.shape[1], device=x_emb.device)
        return x_emb + self.pos_embedding(positions)  # (L, E) broadcast over B

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (B, L) long in {0, 1} -> logits (B, L, 1); logit i depends on x_<i only."""
        h = self.add_pos_embeddings(self.add_sos_token(self.token_embedding(x)))  # (B, L, E)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))  # (B, L, E) -> (B, L, 1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats per image (B,) for images (B, 1, H, W) in {0, 1} (iGPT eq. 1)."""
        tokens = x.flatten(1)  # (B, 1, H, W) -> (B, L)
        logits = self(tokens.long())[..., 0]  # (B, L, 1) -> (B, L)
        return -F.binary_cross_entropy_with_logits(logits, tokens.float(), reduction="none").sum(dim=1)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (B, 1, H, W) in {0, 1} -> mean binary cross-entropy in nats per pixel."""
        tokens = x.flatten(1)  # (B, 1, H, W) -> (B, L)
        logits = self(tokens.long())[..., 0]  # (B, L, 1) -> (B, L)
        return {"total_loss": F.binary_cross_entropy_with_logits(logits, tokens.float())}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images (n, 1, H, W) in {0, 1}, one pixel per forward pass in raster order."""
        tokens = torch.zeros(n, self.seq_len, dtype=torch.long, device=self.sos.device)
        for i in range(self.seq_len):
            p = torch.sigmoid(self(tokens)[:, i, 0])  # (n,)
            tokens[:, i] = torch.bernoulli(p).long()
        return tokens.view(n, 1, *self.input_shape).float()  # (n, L) -> (n, 1, H, W)
