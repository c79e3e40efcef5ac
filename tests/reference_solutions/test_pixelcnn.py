"""The reference PixelCNN: masks, causality, receptive field, autocomplete, and that it learns digits."""

from __future__ import annotations

import pytest
import torch

from reference_solutions.pixelcnn import (
    MaskedConv2d,
    PixelCNN,
    PixelCNNAutoComplete,
    get_receptive_field,
)


def _dependence(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """D[j, i] = True when the logits at pixel i change when input pixel j is flipped (raster order)."""
    height, width = x.shape[-2:]
    n = height * width
    flipped = x.repeat(n, 1, 1, 1)  # (1, 1, H, W) -> (n, 1, H, W)
    flipped.view(n, n)[torch.arange(n), torch.arange(n)] = 1 - x.view(n)
    with torch.no_grad():
        base = model(x).flatten(2)  # (1, 2, n)
        out = model(flipped).flatten(2)  # (n, 2, n)
    return (out - base).abs().amax(dim=1) > 1e-6


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_masks_hide_the_future_and_type_decides_the_centre(kernel_size: int) -> None:
    c = kernel_size // 2
    for mask_type, centre in (("A", 0.0), ("B", 1.0)):
        conv = MaskedConv2d(mask_type, 2, 3, kernel_size)
        assert conv.mask.shape == conv.weight.shape
        assert "mask" in dict(conv.named_buffers())
        m = conv.mask[1, 0]
        assert (m[:c] == 1).all() and (m[c, :c] == 1).all()
        assert (m[c, c + 1 :] == 0).all() and (m[c + 1 :] == 0).all()
        assert m[c, c] == centre


def test_masked_conv_uses_the_mask() -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d("A", 1, 1, 5, padding=2)
    x = torch.randn(1, 1, 7, 7, requires_grad=True)
    conv(x)[0, 0, 3, 3].backward()
    grad = x.grad[0, 0]
    assert grad[3, 3] == 0 and (grad[3, 4:] == 0).all() and (grad[4:] == 0).all()
    assert (grad[1:3, 1:6] != 0).all() and (grad[3, 1:3] != 0).all()


@pytest.mark.parametrize("n_layers", [1, 3])
def test_logits_depend_only_on_earlier_pixels(n_layers: int) -> None:
    torch.manual_seed(1)
    model = PixelCNN((6, 6), n_filters=8, kernel_size=3, n_layers=n_layers).eval()
    x = (torch.rand(1, 1, 6, 6) > 0.5).float()
    dep = _dependence(model, x)
    assert not dep.tril().any(), "a pixel's logits depend on itself or on a later pixel"
    assert dep[:, 1:].any(dim=0).all(), "every pixel after the first must see some earlier pixel"


def test_receptive_field_has_the_blind_spot() -> None:
    torch.manual_seed(0)
    one = get_receptive_field(PixelCNN((8, 8), 16, 3, 1), (8, 8))
    assert one.nonzero().tolist() == [[3, 3], [3, 4], [3, 5], [4, 3]]
    three = get_receptive_field(PixelCNN((8, 8), 16, 3, 3), (8, 8))
    assert three.dtype == torch.bool and three.shape == (8, 8)
    assert not three[4, 4:].any() and not three[5:].any()
    assert three[4, 1:4].all() and three[1:4, 1:4].all()
    assert not three[3, 7] and not three[2, 7], "stacked 'B' masks must leave the upper-right blind spot"


def test_shapes_loss_and_log_prob_agree_for_8x8_and_28x28() -> None:
    torch.manual_seed(0)
    for shape in ((8, 8), (28, 28)):
        model = PixelCNN(shape, n_filters=4, kernel_size=5, n_layers=2)
        x = (torch.rand(2, 1, *shape) > 0.5).float()
        assert model(x).shape == (2, 2, 1, *shape)
        loss = model.loss(x)["total_loss"]
        assert loss.requires_grad and loss.shape == ()
        torch.testing.assert_close(loss, -model.log_prob(x).mean() / (shape[0] * shape[1]))
    samples = PixelCNN((5, 4), 4, 3, 2).sample(3)
    assert samples.shape == (3, 1, 5, 4) and set(samples.unique().tolist()) <= {0.0, 1.0}


def test_autocomplete_fills_only_unknown_pixels() -> None:
    torch.manual_seed(0)
    model = PixelCNNAutoComplete((6, 6), 8, 3, 2)
    init = (torch.rand(4, 1, 6, 6) > 0.5).float()
    init[:, :, 3:] = -1
    init[0, 0, 1, 1] = -1
    out = model.sample(4, init)
    known = init >= 0
    assert torch.equal(out[known], init[known])
    assert set(out[~known].unique().tolist()) <= {0.0, 1.0}


def test_training_on_binarized_digits_lowers_the_loss() -> None:
    from grader.data import load_dataset

    torch.manual_seed(0)
    torch.set_num_threads(1)
    images = torch.from_numpy(load_dataset("digits", "train", binarize=True)[0])
    model = PixelCNN((8, 8), n_filters=16, kernel_size=3, n_layers=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(images[:256])["total_loss"].item()
    for step in range(40):
        batch = images[(step * 32) % 1408 :][:32]
        loss = model.loss(batch)["total_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = model.loss(images[:256])["total_loss"].item()
    assert first > 0.6 and last < 0.45, (first, last)
