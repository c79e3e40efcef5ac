import math

import numpy as np
import pytest

from grader.metrics import inception_score, kid, precision_recall
from grader.metrics.kid import polynomial_mmd2


def _brute_force_mmd2(x, y):
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_polynomial_mmd2_is_the_unbiased_estimator():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((12, 4)) + 0.3
    assert polynomial_mmd2(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_shift():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    same = kid(a, b, num_subsets=20, subset_size=200)
    shifted = kid(a, b + 1.0, num_subsets=20, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * abs(same.mean) and shifted.mean > 0


def test_kid_is_seeded_and_reduces_the_subset_size():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((60, 3))
    assert kid(a, b, num_subsets=5, seed=3) == kid(a, b, num_subsets=5, seed=3)
    assert kid(a, b, num_subsets=5, seed=3) != kid(a, b, num_subsets=5, seed=4)
    # subset_size 1000 > 50 samples: uses 50, i.e. every sample of `a`
    with pytest.raises(ValueError, match="at least 2"):
        kid(a[:1], b)


def test_inception_score_closed_forms():
    k = 10
    uniform = inception_score(np.zeros((100, k)), splits=5)
    assert uniform.mean == pytest.approx(1.0) and uniform.std == pytest.approx(0.0, abs=1e-12)
    confident = np.full((100, k), -1e4)
    confident[np.arange(100), np.arange(100) % k] = 0.0  # one class each, all classes equally often
    score = inception_score(confident, splits=5)
    assert score.mean == pytest.approx(k, rel=1e-9)
    collapsed = np.full((100, k), -1e4)
    collapsed[:, 0] = 0.0
    assert inception_score(collapsed, splits=5).mean == pytest.approx(1.0)


def test_inception_score_uses_log_of_mean_marginal():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((40, 6))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    marginal = p.mean(0)
    expected = math.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), 1)))
    assert inception_score(logits, splits=1).mean == pytest.approx(expected, rel=1e-10)
    assert inception_score(logits, splits=4, seed=0) != inception_score(logits, splits=4, seed=1)
    with pytest.raises(ValueError, match="splits"):
        inception_score(logits, splits=41)


def test_precision_recall_identical_disjoint_and_collapsed():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((300, 5))
    assert precision_recall(real, real) == (1.0, 1.0)
    far = precision_recall(real, rng.standard_normal((300, 5)) + 100.0)
    assert far == (0.0, 0.0)
    # mode collapse: fakes inside the real manifold but covering a tiny part of it
    collapsed = real[0] + 1e-2 * rng.standard_normal((50, 5))
    result = precision_recall(real, collapsed)
    assert result.precision == 1.0 and result.recall < 0.2


def test_precision_recall_excludes_self_and_uses_kth_neighbour():
    # 1-D points 0, 1, 2, 3, 10: with k = 3 the radius of 0 is 3 (self excluded), so 3 is inside its ball
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[-3.0], [-3.1], [30.0], [31.0], [32.0]])
    result = precision_recall(real, fake, k=3)
    assert result.precision == pytest.approx(1 / 5)  # only -3.0 is within distance 3 of 0 (<=)
