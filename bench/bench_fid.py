"""Time the Fréchet distance at d = 2048: pytorch-fid's scipy ``sqrtm`` method vs ours (cold and cached).

    .venv/bin/python bench/bench_fid.py [--dim 2048] [--samples 4096] [--repeats 3]

- sqrtm:  pytorch-fid 0.3.0 / TTUR — ``scipy.linalg.sqrtm(S1 @ S2)`` (complex Schur), then ``.real``;
- cold:   ``frechet_distance`` — factor S1 = V Vᵀ (Cholesky; ``eigh`` if singular), two products,
          ``eigvalsh`` (nothing cached);
- cached: ``FrechetReference(mu1, S1).distance(mu2, S2)`` with the reference side's factor done once
          (the grading case: every submission is compared with the same real-data statistics).

Statistics are computed once outside the timings. Prints the median of each and the speed-ups.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.metrics.fid import FrechetReference, feature_statistics, frechet_distance


def sqrtm_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance (without its eps retry, which never triggers here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


def _median_time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((args.dim, args.dim)) / np.sqrt(args.dim)
    real = np.maximum(rng.standard_normal((args.samples, args.dim)) @ mixing, 0)  # ReLU-like, as pool3
    fake = np.maximum(1.1 * rng.standard_normal((args.samples, args.dim)) @ mixing + 0.05, 0)
    mu1, s1 = feature_statistics(real)
    mu2, s2 = feature_statistics(fake)
    print(f"statistics ready in {time.perf_counter() - t0:.1f} s", flush=True)

    t_sqrtm, v_sqrtm = _median_time(lambda: sqrtm_frechet_distance(mu1, s1, mu2, s2), args.repeats)
    t_cold, v_cold = _median_time(lambda: frechet_distance(mu1, s1, mu2, s2), args.repeats)
    start = time.perf_counter()
    reference = FrechetReference(mu1, s1)
    t_setup = time.perf_counter() - start
    t_cached, v_cached = _median_time(lambda: reference.distance(mu2, s2), args.repeats)

    print(f"d = {args.dim}, N = {args.samples} per side, median of {args.repeats} runs")
    print(f"  scipy sqrtm (pytorch-fid): {t_sqrtm:8.3f} s   FD = {v_sqrtm:.10f}")
    print(f"  ours, cold:                {t_cold:8.3f} s   FD = {v_cold:.10f}   {t_sqrtm / t_cold:5.1f}x faster")
    print(
        f"  ours, cached reference:    {t_cached:8.3f} s   FD = {v_cached:.10f}   "
        f"{t_sqrtm / t_cached:5.1f}x faster (one-off setup {t_setup:.3f} s)"
    )
    print(f"  |ours - sqrtm| = {abs(v_cold - v_sqrtm):.3g} (relative {abs(v_cold - v_sqrtm) / abs(v_sqrtm):.3g})")


if __name__ == "__main__":
    main()
