import hashlib

import numpy as np
import pytest
import torch

from grader.metrics import InceptionV3, inception_features, load_inception
from grader.metrics.inception import INCEPTION_WEIGHTS_ENV, NUM_LOGITS, POOL_DIM


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Randomly initialised weights saved like pytorch-fid's file (a plain state dict, .pth)."""
    torch.manual_seed(0)
    model = InceptionV3()
    for module in model.modules():  # non-trivial running statistics so that BN loading is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    # the original port has no num_batches_tracked buffers
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(state, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), state


def test_state_dict_uses_pytorch_fid_names():
    names = set(InceptionV3().state_dict())
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_4a_3x3.bn.running_var",
        "Mixed_5b.branch_pool.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.bias",
        "Mixed_7c.branch3x3dbl_3b.conv.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert key in names
    assert not any(k.startswith("AuxLogits") for k in names)
    assert InceptionV3().fc.weight.shape == (NUM_LOGITS, POOL_DIM)


def test_loads_local_file_checked_by_hash_and_gives_2048_pool_and_1008_logits(random_weights):
    path, sha, state = random_weights
    model = load_inception(path, expected_sha256=sha[:8])
    assert torch.equal(model.Mixed_7c.branch_pool.bn.running_mean, state["Mixed_7c.branch_pool.bn.running_mean"])
    images = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    pool, logits = inception_features(model, images, batch_size=2)  # resized to 299 inside
    assert pool.shape == (2, POOL_DIM) and logits.shape == (2, NUM_LOGITS)
    assert pool.dtype == np.float64 and np.all(np.isfinite(pool)) and np.all(pool >= 0)  # post-ReLU average
    np.testing.assert_allclose(
        logits, pool @ state["fc.weight"].double().numpy().T + state["fc.bias"].double().numpy(), rtol=1e-4, atol=1e-4
    )
    small = load_inception(path, expected_sha256=sha, resize_input=False)  # 75x75 keeps this test fast
    grey = np.random.default_rng(1).random((1, 1, 75, 75)).astype(np.float32)
    grey_pool, _ = inception_features(small, grey)  # grey images are tiled to RGB
    tiled_pool, _ = inception_features(small, np.repeat(grey, 3, axis=1))
    np.testing.assert_allclose(grey_pool, tiled_pool, rtol=1e-5)


def test_environment_variable_and_safetensors(random_weights, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    path, sha, state = random_weights
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    assert isinstance(load_inception(expected_sha256=sha), InceptionV3)
    st_path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st_path))
    st_sha = hashlib.sha256(st_path.read_bytes()).hexdigest()
    model = load_inception(st_path, expected_sha256=st_sha)
    assert torch.equal(model.fc.bias, state["fc.bias"])


def test_wrong_hash_is_refused(random_weights):
    path, _, _ = random_weights
    with pytest.raises(ValueError, match="6726825d"):
        load_inception(path)  # default: pytorch-fid's pinned prefix


def test_absent_file_is_a_clear_error_and_nothing_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"pt_inception-2015-12-05-6726825d\.pth.*DGM_INCEPTION_WEIGHTS"):
        load_inception()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_inception(tmp_path / "missing.pth")


def test_wrong_state_dict_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="missing"):
        load_inception(path, expected_sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def test_rejects_images_outside_unit_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inception_features(InceptionV3(), np.full((1, 3, 8, 8), 255.0, dtype=np.float32))
