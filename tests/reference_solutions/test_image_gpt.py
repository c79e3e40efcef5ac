"""The reference ImageGPT: causal mask, SOS shift, the course's smoke test, causality, and learning."""

from __future__ import annotations

import torch

from reference_solutions.image_gpt import DecoderBlock, ImageGPT, get_attention_mask


def _dependence(model: ImageGPT, tokens: torch.Tensor) -> torch.Tensor:
    """D[j, i] = True when logit i changes when token j is flipped."""
    n = tokens.shape[1]
    flipped = tokens.repeat(n, 1)  # (1, L) -> (L, L)
    flipped[torch.arange(n), torch.arange(n)] = 1 - tokens[0]
    with torch.no_grad():
        base = model(tokens)[..., 0]  # (1, L)
        out = model(flipped)[..., 0]  # (L, L)
    return (out - base).abs() > 1e-6


def test_attention_mask_is_zero_on_and_below_the_diagonal() -> None:
    mask = get_attention_mask(3)
    inf = float("-inf")
    assert mask.dtype == torch.float32
    assert torch.equal(mask, torch.tensor([[0.0, inf, inf], [0.0, 0.0, inf], [0.0, 0.0, 0.0]]))
    assert torch.equal(get_attention_mask(1), torch.zeros(1, 1))


def test_course_smoke_test() -> None:
    torch.manual_seed(0)
    model = ImageGPT((2, 2), embed_dim=12, num_heads=4, num_layers=2)
    assert model(torch.randint(0, 2, (2, 4))).shape == (2, 4, 1)
    images = torch.randint(0, 2, (2, 1, 2, 2)).float()
    assert model.loss(images)["total_loss"].requires_grad
    sample = model.sample(1)
    assert sample.shape == (1, 1, 2, 2) and set(sample.unique().tolist()) <= {0.0, 1.0}


def test_sos_shift_and_positional_embeddings() -> None:
    torch.manual_seed(0)
    model = ImageGPT((3, 3), embed_dim=8, num_heads=2, num_layers=1)
    x_emb = torch.randn(2, 9, 8)
    shifted = model.add_sos_token(x_emb)
    assert torch.equal(shifted[:, 1:], x_emb[:, :-1])
    assert torch.equal(shifted[0, 0], model.sos) and torch.equal(shifted[1, 0], model.sos)
    pos = model.add_pos_embeddings(x_emb) - x_emb
    torch.testing.assert_close(pos[0], pos[1])
    torch.testing.assert_close(pos[0], model.pos_embedding.weight)


def test_decoder_block_is_causal_and_pre_ln() -> None:
    torch.manual_seed(0)
    block = DecoderBlock(8, 2)
    x = torch.randn(1, 5, 8, requires_grad=True)
    block(x)[0, 2].sum().backward()
    assert (x.grad[0, 3:] == 0).all() and (x.grad[0, :3] != 0).all()
    for linear in (block.attn.out_proj, block.mlp[-1]):
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
    torch.testing.assert_close(block(x), x)  # both residual branches off -> identity


def test_logit_i_depends_only_on_earlier_pixels_for_8x8() -> None:
    torch.manual_seed(0)
    model = ImageGPT((8, 8), embed_dim=16, num_heads=2, num_layers=2).eval()
    dep = _dependence(model, torch.randint(0, 2, (1, 64)))
    assert not dep.tril().any(), "a logit depends on its own pixel or a later one"
    earlier = torch.ones(64, 64, dtype=torch.bool).triu(diagonal=1)
    assert dep[earlier].float().mean() > 0.95, "logit i should depend on (almost) every earlier pixel"


def test_training_on_binarized_digits_lowers_the_loss() -> None:
    from grader.data import load_dataset

    torch.manual_seed(0)
    torch.set_num_threads(1)
    images = torch.from_numpy(load_dataset("digits", "train", binarize=True)[0])
    model = ImageGPT((8, 8), embed_dim=16, num_heads=2, num_layers=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        first = model.loss(images[:256])["total_loss"].item()
    for step in range(40):
        loss = model.loss(images[(step * 32) % 1408 :][:32])["total_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = model.loss(images[:256])["total_loss"].item()
    assert first > 0.6 and last < 0.5, (first, last)
