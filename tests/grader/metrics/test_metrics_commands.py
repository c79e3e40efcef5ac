import argparse
import json

import numpy as np
import pytest

from grader.metrics import classifier_features
from grader.metrics.commands import register
from grader.metrics.reference import compute_reference_stats


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgm-grader")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_parses_every_command():
    parser = _parser()
    args = parser.parse_args(["metrics", "train-classifier", "mnist", "--binarize", "--out", "w", "--epochs", "2"])
    assert (args.dataset, args.binarize, str(args.out), args.epochs) == ("mnist", True, "w", 2)
    args = parser.parse_args(["metrics", "reference-stats", "cifar10", "--split", "train", "--extractor", "inception"])
    assert (args.dataset, args.split, args.extractor) == ("cifar10", "train", "inception")
    args = parser.parse_args(["data", "download", "cifar10", "--dir", "/data"])
    assert (args.dataset, str(args.dir), callable(args.func)) == ("cifar10", "/data", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "download", "svhn", "--dir", "/data"])
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "download", "mnist"])  # --dir is required


def test_reference_stats_command_writes_and_reuses_the_cache(tmp_path, capsys):
    args = _parser().parse_args(["metrics", "reference-stats", "digits", "--cache-dir", str(tmp_path)])
    assert args.func(args) == 0
    assert "359 images, d = 32" in capsys.readouterr().out
    path = tmp_path / "classifier-digits-test.npz"
    with np.load(path) as cached:
        mu, sigma = cached["mu"], cached["sigma"]
    from grader.data import load_dataset

    features = classifier_features("digits", load_dataset("digits", "test")[0])
    np.testing.assert_allclose(mu, features.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-8, atol=1e-8)
    # a cache made with other weights is recomputed, not reused
    np.savez(path, mu=mu + 1, sigma=sigma, count=359, weights_sha256=np.array("0" * 64), extractor=np.array("digits"))
    stats = compute_reference_stats("digits", "test", cache_dir=tmp_path)
    np.testing.assert_allclose(stats.mu, mu)
    np.savez(
        path,
        mu=mu + 1,
        sigma=sigma,
        count=359,
        weights_sha256=np.array(stats.weights_sha256),
        extractor=np.array("digits"),
    )
    np.testing.assert_allclose(compute_reference_stats("digits", "test", cache_dir=tmp_path).mu, mu + 1)


def test_train_classifier_command_prints_hash_and_floor(tmp_path, capsys):
    args = _parser().parse_args(["metrics", "train-classifier", "digits", "--out", str(tmp_path), "--epochs", "1"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "digits.json").read_text())
    assert record["sha256"] in out and "floor FD" in out


def test_download_failure_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    args = _parser().parse_args(["data", "download", "mnist", "--dir", str(tmp_path)])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "could not download train-images-idx3-ubyte.gz" in err and err.count("\n") == 1
