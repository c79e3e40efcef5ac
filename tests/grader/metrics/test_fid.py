import warnings

import numpy as np
import pytest
import scipy.linalg

from grader.metrics import (
    FrechetReference,
    StreamingStatistics,
    feature_statistics,
    fid_from_features,
    frechet_distance,
)
from grader.metrics.fid import FrechetWarning


def pytorch_fid_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0's calculate_frechet_distance (TTUR's algorithm), the reference method."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _random_features(rng, n, d, scale=1.0, shift=0.0):
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return shift + scale * rng.standard_normal((n, d)) @ mixing + 0.1 * rng.standard_normal((n, d))


def test_course_helper_value():
    mu1, mu2 = np.ones(3), np.full(3, 10.0)
    assert frechet_distance(mu1, 5 * np.eye(3), mu2, 3 * np.eye(3)) == pytest.approx(243.7621, abs=1e-4)


def test_equal_covariances_give_squared_mean_distance():
    rng = np.random.default_rng(0)
    sigma = np.cov(rng.standard_normal((200, 8)), rowvar=False)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float((mu1 - mu2) @ (mu1 - mu2)), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pytorch_fid_sqrtm_method_on_full_rank_cases(seed):
    rng = np.random.default_rng(seed)
    a = _random_features(rng, 400, 48)
    b = _random_features(rng, 500, 48, scale=1.3, shift=0.2)
    stats = (*feature_statistics(a), *feature_statistics(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy >= 1.16 deprecates disp
        expected = pytorch_fid_frechet_distance(*stats)
    assert frechet_distance(*stats) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_set_with_itself_is_zero_and_never_negative():
    rng = np.random.default_rng(3)
    for d in (5, 64):
        a = _random_features(rng, 3 * d, d, shift=100.0)
        value = fid_from_features(a, a)
        _mu, sigma = feature_statistics(a)
        assert 0.0 <= value < 1e-6 * (1 + np.trace(sigma))


def test_statistics_are_unbiased_covariance_like_np_cov():
    a = np.random.default_rng(4).standard_normal((50, 6)).astype(np.float32)
    mu, sigma = feature_statistics(a)
    assert sigma.dtype == np.float64
    np.testing.assert_allclose(mu, a.astype(np.float64).mean(0))
    np.testing.assert_allclose(sigma, np.cov(a.astype(np.float64), rowvar=False), rtol=1e-12)


def test_refuses_n_le_d_unless_allowed_and_then_finite_real():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((20, 32)), rng.standard_normal((20, 32)) + 0.5
    with pytest.raises(ValueError, match="20 samples for 32-dimensional"):
        fid_from_features(a, b)
    with pytest.warns(FrechetWarning, match="rank"):
        value = fid_from_features(a, b, allow_singular=True)
    assert isinstance(value, float) and np.isfinite(value) and value >= 0


def test_rank_deficient_covariance_gives_finite_real_value():
    # a constant feature (dead unit): both covariances singular; sqrtm-based code can go complex here
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((300, 10)), rng.standard_normal((300, 10))
    a[:, 3] = 0.0
    b[:, 3] = 0.0
    value = fid_from_features(a, b)
    assert isinstance(value, float) and np.isfinite(value) and value >= 0


def test_rejects_non_finite_inputs_and_bad_shapes():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, sigma, np.array([0.0, np.nan, 0.0]), sigma)
    with pytest.raises(ValueError, match="NaN"):
        fid_from_features(np.full((10, 2), np.inf), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(mu, np.triu(np.ones((3, 3))), mu, sigma)
    with pytest.raises(ValueError, match="dimension"):
        frechet_distance(mu, sigma, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        fid_from_features(np.zeros(10), np.zeros(10))


def test_warns_on_a_matrix_that_is_not_a_covariance():
    bad = np.diag([1.0, -1.0, 1.0])
    with pytest.warns(FrechetWarning, match="positive semi-definite"):
        value = frechet_distance(np.zeros(3), bad, np.zeros(3), np.eye(3))
    assert np.isfinite(value)


def test_cached_reference_matches_one_shot_distance():
    rng = np.random.default_rng(7)
    ref = feature_statistics(_random_features(rng, 300, 20))
    cached = FrechetReference(*ref)
    for shift in (0.0, 0.5, 2.0):
        other = feature_statistics(_random_features(rng, 300, 20, shift=shift))
        assert cached.distance(*other) == pytest.approx(frechet_distance(*ref, *other), rel=1e-12)


def test_streaming_statistics_equal_np_cov_without_cancellation():
    rng = np.random.default_rng(8)
    data = (1000.0 + rng.standard_normal((1000, 16))).astype(np.float32)  # |mean| >> std
    stats = StreamingStatistics(16)
    for batch in np.array_split(data, [1, 7, 300, 301, 999]):  # includes 1-row batches
        stats.update(batch)
    reference = data.astype(np.float64)
    np.testing.assert_allclose(stats.mean, reference.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(reference, rowvar=False), rtol=1e-9, atol=1e-12)
    left, right = StreamingStatistics(16), StreamingStatistics(16)
    left.update(data[:400])
    right.update(data[400:])
    left.merge(right)
    np.testing.assert_allclose(left.covariance, stats.covariance, rtol=1e-10)
    with pytest.raises(ValueError, match=r"\(n, 16\)"):
        stats.update(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        StreamingStatistics(2).covariance  # noqa: B018


def test_singular_reference_uses_the_eigh_path_and_matches_eigvals_method():
    # Σ₁ singular (Cholesky fails): the eigh fallback must agree with torch-fidelity's eigvals(Σ₁Σ₂) method
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((200, 12)), rng.standard_normal((200, 12)) * 1.5
    a[:, :3] = a[:, 3:4]  # columns 0-3 equal: rank 9
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(s1)
    eig = np.linalg.eigvals(s1 @ s2).astype(complex)
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).real.sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
