import itertools
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.data import load_dataset
from grader.metrics import classifier_features, fd_classifier, load_classifier
from grader.metrics.classifier import EXTRACTORS, PINNED_SHA256, WEIGHTS_DIR, sha256_file, train_classifier


@pytest.mark.parametrize("name", ["digits", "digits-binary", "patches"])
def test_committed_weights_are_small_pinned_and_documented(name):
    path = WEIGHTS_DIR / f"{name}.safetensors"
    assert path.stat().st_size < 1_000_000
    assert sha256_file(path) == PINNED_SHA256[name]
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == PINNED_SHA256[name] and record["metric_name"] == f"FD-{name}"
    assert record["floor"]["n_samples"] == 500 and record["floor"]["mean"] > 0


@pytest.mark.parametrize("name", ["digits", "digits-binary", "patches"])
def test_features_have_the_documented_dimension(name):
    spec = EXTRACTORS[name]
    images, _ = load_dataset(spec.dataset, "test", binarize=spec.binarize)
    features = classifier_features(name, images[:20])
    assert features.shape == (20, spec.feature_dim) and features.dtype == np.float64
    model = load_classifier(name)
    with torch.no_grad():
        accuracy = (model(torch.as_tensor(images)).argmax(1).numpy() == load_dataset(spec.dataset, "test")[1]).mean()
    assert accuracy > 0.7


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    offsets = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    x, c = torch.as_tensor(images), images.shape[1]
    x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 7).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), kernel.view(1, 1, 7, 1).repeat(c, 1, 1, 1), groups=c)
    return x.numpy()


@pytest.fixture(scope="module")
def patches():
    train, _ = load_dataset("patches", "train")
    test, _ = load_dataset("patches", "test")
    # 1000 rather than 500 real images: the floor's sampling spread (std 2.6 at 500) must stay below the
    # effect of the mildest corruption
    rng = np.random.default_rng(0)
    return train[rng.choice(len(train), 1000, replace=False)], test, rng


def test_fd_grows_monotonically_with_noise_on_patches(patches):
    real, test, rng = patches
    noise = rng.standard_normal(real.shape).astype(np.float32)
    values = [fd_classifier("patches", np.clip(real + s * noise, 0, 1), test) for s in (0.0, 0.1, 0.2, 0.3, 0.4)]
    assert all(a < b for a, b in itertools.pairwise(values)), values
    assert values[-1] > 20 * values[0]


def test_fd_grows_monotonically_with_blur_on_patches(patches):
    real, test, _ = patches
    values = [fd_classifier("patches", real, test)]
    values += [fd_classifier("patches", _blur(real, s), test) for s in (0.5, 1.0, 1.5, 2.0)]
    assert all(a < b for a, b in itertools.pairwise(values)), values


def test_separates_a_good_model_from_a_bad_one_on_digits():
    train, _ = load_dataset("digits", "train")
    test, _labels = load_dataset("digits", "test")
    floor = json.loads((WEIGHTS_DIR / "digits.json").read_text())["floor"]
    good = fd_classifier("digits", train[:500], test)
    collapsed = fd_classifier("digits", np.repeat(train[:50][np.arange(50) % 2 == 0], 20, axis=0), test)
    noise = fd_classifier("digits", np.random.default_rng(0).random((500, 1, 8, 8)).astype(np.float32), test)
    assert good < floor["mean"] + 4 * floor["std"]
    assert collapsed > 3 * good and noise > 10 * good


def test_rejects_images_of_the_wrong_shape_or_range():
    with pytest.raises(ValueError, match=r"expected \(N, 1, 8, 8\) float in \[0, 1\], got \(4, 64\)"):
        classifier_features("digits", np.zeros((4, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="range"):
        classifier_features("digits", np.full((4, 1, 8, 8), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="extractor"):
        classifier_features("svhn", np.zeros((4, 1, 8, 8), dtype=np.float32))


def test_tampered_weights_are_refused(tmp_path):
    shutil.copy(WEIGHTS_DIR / "digits.safetensors", tmp_path / "digits.safetensors")
    with (tmp_path / "digits.safetensors").open("r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x00\x80\x7f")
    with pytest.raises(ValueError, match="SHA-256"):
        load_classifier("digits", tmp_path)


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="dgm-grader metrics train-classifier mnist --binarize"):
        load_classifier("mnist-binary", tmp_path)


def test_training_writes_weights_and_a_sidecar_checked_on_load(tmp_path):
    path = train_classifier("digits", binarize=True, out_dir=tmp_path, epochs=1, progress=False)
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(path)
    assert {"mean", "std", "protocol"} <= set(record["floor"])
    # a retrained "digits-binary" is not the pinned file: the loader refuses it
    with pytest.raises(ValueError, match="SHA-256"):
        load_classifier("digits-binary", tmp_path)
