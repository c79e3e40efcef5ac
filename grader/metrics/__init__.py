"""Generative-model metrics: NLL conventions, Fréchet distance, KID, IS, precision/recall, extractors.

Public names are imported lazily (as in `grader`), so that the command line does not load torch to
print its help. Two names are also module names (`kid`, `inception_score`): the function wins, as
an eager import would have it.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "classifier_features": "grader.metrics.classifier",
    "fd_classifier": "grader.metrics.classifier",
    "load_classifier": "grader.metrics.classifier",
    "train_classifier": "grader.metrics.classifier",
    "FrechetReference": "grader.metrics.fid",
    "StreamingStatistics": "grader.metrics.fid",
    "feature_statistics": "grader.metrics.fid",
    "fid_from_features": "grader.metrics.fid",
    "frechet_distance": "grader.metrics.fid",
    "InceptionV3": "grader.metrics.inception",
    "inception_features": "grader.metrics.inception",
    "load_inception": "grader.metrics.inception",
    "ISResult": "grader.metrics.inception_score",
    "inception_score": "grader.metrics.inception_score",
    "KIDResult": "grader.metrics.kid",
    "kid": "grader.metrics.kid",
    "bernoulli_nll": "grader.metrics.nll",
    "bits_per_dim": "grader.metrics.nll",
    "categorical_nll": "grader.metrics.nll",
    "dequantized_nll": "grader.metrics.nll",
    "discretized_logistic_mixture_nll": "grader.metrics.nll",
    "gaussian_kl": "grader.metrics.nll",
    "iwae_nll": "grader.metrics.nll",
    "logit_dequantized_nll": "grader.metrics.nll",
    "logit_transform": "grader.metrics.nll",
    "negative_elbo": "grader.metrics.nll",
    "two_class_nll": "grader.metrics.nll",
    "PRResult": "grader.metrics.precision_recall",
    "precision_recall": "grader.metrics.precision_recall",
    "ReferenceStats": "grader.metrics.reference",
    "compute_reference_stats": "grader.metrics.reference",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'grader.metrics' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # importing the module bound its name here (kid, inception_score): rebind
    return value
