"""Generative-model metrics: NLL conventions, Fréchet distance, KID, IS, precision/recall, extractors."""

from grader.metrics.classifier import classifier_features, fd_classifier, load_classifier, train_classifier
from grader.metrics.fid import (
    FrechetReference,
    StreamingStatistics,
    feature_statistics,
    fid_from_features,
    frechet_distance,
)
from grader.metrics.inception import InceptionV3, inception_features, load_inception
from grader.metrics.inception_score import ISResult, inception_score
from grader.metrics.kid import KIDResult, kid
from grader.metrics.nll import (
    bernoulli_nll,
    bits_per_dim,
    categorical_nll,
    dequantized_nll,
    discretized_logistic_mixture_nll,
    gaussian_kl,
    iwae_nll,
    logit_dequantized_nll,
    logit_transform,
    negative_elbo,
    two_class_nll,
)
from grader.metrics.precision_recall import PRResult, precision_recall
from grader.metrics.reference import ReferenceStats, compute_reference_stats

__all__ = [
    "FrechetReference",
    "ISResult",
    "InceptionV3",
    "KIDResult",
    "PRResult",
    "ReferenceStats",
    "StreamingStatistics",
    "bernoulli_nll",
    "bits_per_dim",
    "categorical_nll",
    "classifier_features",
    "compute_reference_stats",
    "dequantized_nll",
    "discretized_logistic_mixture_nll",
    "fd_classifier",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "gaussian_kl",
    "inception_features",
    "inception_score",
    "iwae_nll",
    "kid",
    "load_classifier",
    "load_inception",
    "logit_dequantized_nll",
    "logit_transform",
    "negative_elbo",
    "precision_recall",
    "train_classifier",
    "two_class_nll",
]
