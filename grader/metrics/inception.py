"""Inception-v3 feature extractor for FID / IS, in pure torch (no torchvision), for the standard weights.

The architecture is the TF "inception-2015-12-05" graph as ported by pytorch-fid (``FIDInceptionA/C/E``
patches: TF average pooling ignores padded zeros; ``Mixed_7c`` uses max pooling; 1008 classes). The
state-dict names are pytorch-fid's (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``,
..., ``fc.weight``), so its ``pt_inception-2015-12-05-6726825d.pth`` loads as is (the 8 hex digits are
the start of the file's SHA-256, which is checked).

Nothing is downloaded: the file comes from the ``path`` argument or ``$DGM_INCEPTION_WEIGHTS``, and a
missing file or a hash mismatch is an error that says what to do. Pre-processing follows pytorch-fid
(float images in [0, 1], PyTorch bilinear resize to 299 with ``align_corners=False``, then ``2x − 1``);
grey images are tiled to 3 channels. TTUR / torch-fidelity resize with TF1's bilinear grid instead,
which moves FID by a little (see METRICS-NOTES P8), so only compare values computed here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_WEIGHTS_ENV = "DGM_INCEPTION_WEIGHTS"
PYTORCH_FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_SHA256_PREFIX = "6726825d"
POOL_DIM = 2048
NUM_LOGITS = 1008


class BasicConv2d(nn.Module):
    """conv (no bias) → batch norm (eps 1e-3, TF's) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool does not count the padded zeros
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        branch_pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """``max_pool=True`` is pytorch-fid's ``FIDInceptionE_2`` (Mixed_7c): the TF graph max-pools there."""

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)], 1)


class InceptionV3(nn.Module):
    """FID Inception-v3: ``forward(images)`` → ``(pool (B, 2048), logits (B, 1008))``.

    ``images``: float (B, 3, H, W) or (B, 1, H, W) in [0, 1]; resized to 299x299 unless
    ``resize_input=False`` (then H, W ≥ 75). ``logits = fc(pool)`` with the bias, as the course's
    helper computes them for IS (torch-fidelity's "logits_unbiased" drops the bias).
    """

    def __init__(self, *, resize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(POOL_DIM, NUM_LOGITS)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # grey -> RGB by tiling
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0  # [0, 1] -> [-1, 1]
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, 2048, h, w) -> (B, 2048)
        return pool, self.fc(pool)


def _resolve_path(path: Path | str | None) -> Path:
    if path is None:
        env = os.environ.get(INCEPTION_WEIGHTS_ENV)
        if not env:
            raise FileNotFoundError(
                f"Inception weights: no file given. Copy pytorch-fid's {PYTORCH_FID_FILENAME} onto this "
                f"machine and pass its path or set ${INCEPTION_WEIGHTS_ENV}; nothing is downloaded at "
                f"grading time"
            )
        path = env
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights: {path} does not exist. Copy pytorch-fid's {PYTORCH_FID_FILENAME} there "
            f"(or point ${INCEPTION_WEIGHTS_ENV} at it); nothing is downloaded at grading time"
        )
    return path


def load_inception(
    path: Path | str | None = None,
    *,
    expected_sha256: str = PYTORCH_FID_SHA256_PREFIX,
    resize_input: bool = True,
) -> InceptionV3:
    """Build ``InceptionV3`` and load a local weight file checked by SHA-256.

    ``expected_sha256`` may be the full digest or a prefix (default: pytorch-fid's ``6726825d``).
    ``.pth`` files are read with ``torch.load(weights_only=True)`` (tensors only, no code), and
    ``.safetensors`` files with safetensors. The state dict must match exactly (``num_batches_tracked``
    buffers may be absent, as in the original port).
    """
    path = _resolve_path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not expected_sha256 or not digest.startswith(expected_sha256.lower()):
        raise ValueError(
            f"Inception weights: {path} has SHA-256 {digest}, expected one starting with "
            f"{expected_sha256!r}; this is not the FID Inception file"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load

        state = load(data)
    else:
        import io

        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model = InceptionV3(resize_input=resize_input)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    if expected != given:
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        raise ValueError(
            f"Inception weights: {path} does not have the FID Inception state dict "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in given}, strict=False)
    return model.eval()


def inception_features(
    model: InceptionV3, images: np.ndarray, *, batch_size: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """``(pool (N, 2048), logits (N, 1008))`` float64 for float NCHW images in [0, 1] (1 or 3 channels)."""
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"images: expected (N, 3 or 1, H, W) float in [0, 1], got {array.shape} {array.dtype}")
    if array.size and (array.min() < -1e-4 or array.max() > 1 + 1e-4):
        raise ValueError(f"images: expected values in [0, 1], got range [{array.min():.4g}, {array.max():.4g}]")
    x = torch.as_tensor(array, dtype=torch.float32)
    pools, logits = [], []
    with torch.no_grad():
        for batch in torch.split(x, batch_size):
            pool, logit = model(batch)
            pools.append(pool.double())
            logits.append(logit.double())
    return torch.cat(pools).numpy(), torch.cat(logits).numpy()
