"""The 2-D metrics: energy distance, nearest-neighbour recall and the exact score of noised moons."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_moons

from grader.metrics.two_d import energy_distance, moons_score, nn_recall


def test_energy_distance_is_zero_for_equal_sets_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((800, 2)), rng.standard_normal((800, 2))
    assert energy_distance(a, a) == 0
    near, far = energy_distance(a, b), energy_distance(a, b + 1.0)
    assert 0 <= near < 0.01 < far
    # closed form for a shift d of N(0, I) vs itself is > 0 and symmetric
    assert np.isclose(energy_distance(b + 1.0, a), far)


def test_recall_halves_when_a_moon_is_dropped() -> None:
    points, labels = make_moons(2000, noise=0.1, random_state=1)
    test, _ = make_moons(1000, noise=0.1, random_state=2)
    assert nn_recall(points, test, 0.25) > 0.99
    assert 0.4 < nn_recall(points[labels == 0], test, 0.25) < 0.6


def test_moons_score_matches_a_finite_difference_of_the_mixture_log_density() -> None:
    """The score is the gradient of log p_σ, checked against central differences of the same mixture."""
    from grader.metrics import two_d

    sigma, noise = 0.2, 0.1
    centres, variance = two_d._arcs(), noise**2 + sigma**2

    def log_density(x: np.ndarray) -> np.ndarray:
        d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
        return np.log(np.exp(-d2 / (2 * variance)).mean(axis=1))

    x = np.array([[0.0, 0.5], [1.0, -0.2], [-0.8, 0.3], [2.0, 0.6]])
    h = 1e-5
    numeric = np.stack([(log_density(x + h * e) - log_density(x - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(moons_score(x, sigma, noise), numeric, rtol=1e-4, atol=1e-6)
