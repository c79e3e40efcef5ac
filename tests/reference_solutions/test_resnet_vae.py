"""Reference ConvResNetVAE (hw2): residual block shape arithmetic and the shared VAE contract."""

import pytest
import torch

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
    model = ConvResNetVAE((3, 8, 8), n_latent=8, beta=2.0, n_filters=8)
    assert isinstance(model, ConvVAE)
    assert isinstance(model.encoder, ConvResNetEncoder) and isinstance(model.decoder, ConvResNetDecoder)
    # smooth colour images: a random colour per image plus a gradient
    g = torch.Generator().manual_seed(0)
    colour = torch.rand(256, 3, 1, 1, generator=g)
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8) * torch.rand(256, 1, 1, 1, generator=g)
    data = (0.7 * colour + 0.3 * ramp).expand(-1, -1, 8, -1).contiguous()  # (256, 3, 8, 8)

    loss = model.loss(data[:64])
    assert set(loss) == {"total_loss", "elbo_loss", "recon_loss", "kl_loss"}
    torch.testing.assert_close(loss["total_loss"], loss["recon_loss"] + 2.0 * loss["kl_loss"])
    samples = model.sample(5)
    assert samples.shape == (5, 3, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert model.log_prob_iwae(data[:3], k=4).shape == (3,)

    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with torch.no_grad():
        before = model.loss(data)["total_loss"].item()
    for step in range(60):
        batch = data[(step * 32) % 256 :][:32]
        opt.zero_grad()
        model.loss(batch)["total_loss"].backward()
        opt.step()
    with torch.no_grad():
        after = model.loss(data)["total_loss"].item()
    floor = 192 * 0.9189  # perfect reconstruction and zero KL
    assert after < before - 0.4 * (before - floor), (before, after)
