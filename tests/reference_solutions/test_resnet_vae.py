"""Reference ConvResNetVAE (hw2): residual block shape arithmetic and the shared VAE contract."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_images

from reference_solutions.resnet_vae import (
    ConvResNetDecoder,
    ConvResNetEncoder,
    ConvResNetVAE,
    ResNetBlock,
    ResNetTransposeBlock,
)
from reference_solutions.vae import ConvVAE


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def rgb_patches(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n random (3, size, size) patches in [0, 1] cut from scikit-learn's bundled sample photographs."""
    rng = np.random.default_rng(seed)
    images = load_sample_images().images
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        img = images[rng.integers(len(images))]
        r, c = rng.integers(img.shape[0] - size), rng.integers(img.shape[1] - size)
        out[i] = img[r : r + size, c : c + size] / 255.0
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)


@pytest.mark.parametrize(
    ("in_ch", "out_ch", "kernel", "stride", "size"),
    [(3, 8, 3, 1, 8), (3, 8, 3, 2, 8), (8, 8, 3, 2, 16), (4, 6, 5, 2, 32), (4, 4, 5, 4, 16), (8, 16, 1, 2, 8)],
)
def test_resnet_block_divides_spatial_shape_by_stride(
    in_ch: int, out_ch: int, kernel: int, stride: int, size: int
) -> None:
    block = ResNetBlock(in_ch, out_ch, kernel, stride, final_relu=True)
    y = block(torch.randn(2, in_ch, size, size))
    assert y.shape == (2, out_ch, size // stride, size // stride)
    assert (y >= 0).all()


@pytest.mark.parametrize(
    ("kernel", "stride", "size"), [(4, 2, 2), (6, 2, 4), (8, 2, 4), (2, 2, 4), (4, 4, 2), (8, 4, 2), (3, 1, 5)]
)
def test_resnet_transpose_block_multiplies_spatial_shape_by_stride(kernel: int, stride: int, size: int) -> None:
    block = ResNetTransposeBlock(8, 4, kernel, stride, final_relu=False)
    y = block(torch.randn(2, 8, size, size))
    assert y.shape == (2, 4, size * stride, size * stride)
    assert (y < 0).any()  # no final ReLU


def test_blocks_reject_kernels_that_break_the_arithmetic() -> None:
    with pytest.raises(ValueError):
        ResNetBlock(3, 3, kernel_size=4, stride=2)
    with pytest.raises(ValueError):
        ResNetTransposeBlock(3, 3, kernel_size=5, stride=2)


def test_identity_shortcut_when_shapes_match() -> None:
    block = ResNetBlock(4, 4, 3, 1, final_relu=False)
    with torch.no_grad():
        for p in block.net.parameters():
            p.zero_()
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_encoder_decoder_shapes(size: int) -> None:
    mu, log_std = ConvResNetEncoder((3, size, size), n_latent=10, n_filters=8)(torch.rand(4, 3, size, size))
    assert mu.shape == log_std.shape == (4, 10)
    assert ConvResNetDecoder(10, (3, size, size), n_filters=8)(mu).shape == (4, 3, size, size)


def test_vae_contract_and_short_training() -> None:
    torch.manual_seed(0)
    model = ConvResNetVAE((3, 8, 8), n_latent=16, beta=2.0, n_filters=8)
    assert isinstance(model, ConvVAE)
    assert isinstance(model.encoder, ConvResNetEncoder) and isinstance(model.decoder, ConvResNetDecoder)
    data = rgb_patches(256, 8)

    loss = model.loss(data[:64])
    assert set(loss) == {"total_loss", "elbo_loss", "recon_loss", "kl_loss"}
    torch.testing.assert_close(loss["total_loss"], loss["recon_loss"] + 2.0 * loss["kl_loss"])
    samples = model.sample(5)
    assert samples.shape == (5, 3, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert model.log_prob_iwae(data[:3], k=4).shape == (3,)

    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with torch.no_grad():
        before = model.loss(data)["total_loss"].item()
    for step in range(80):
        batch = data[(step * 32) % 256 :][:32]
        opt.zero_grad()
        model.loss(batch)["total_loss"].backward()
        opt.step()
    with torch.no_grad():
        after = model.loss(data)["total_loss"].item()
    floor = 192 * 0.9189  # perfect reconstruction and zero KL
    assert after < before - 0.4 * (before - floor), (before, after)
