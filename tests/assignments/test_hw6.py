"""Homework 6: the rubric's shape, the course's DDPM values, the report's pictures, and the graded fixtures'
messages naming their mistakes (the golden tests of every notebook are in test_golden.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader import load_assignment
from grader.checks import find_checks
from tests.assignments.golden import auto, golden

pytestmark = [pytest.mark.xdist_group("hw6"), pytest.mark.slow]


def test_rubric_and_checks_agree() -> None:
    hw6 = load_assignment("hw6")
    assert hw6.rubric.points == 13
    assert {t.id: t.points for t in hw6.rubric.tasks} == {"theory": 4, "score": 4, "ddpm": 5}
    assert find_checks(hw6.load_checks(), hw6.rubric).make_inputs is not None
    assert set(hw6.baselines("ci")) == {"dsm_fisher", "ncsn_samples", "ddpm_moons", "ddpm_digits"}


def test_course_values_are_what_the_reference_diffusion_computes() -> None:
    """COURSE.md §2.3's DDPM values (T = 100, t = 5, ones), which ddpm_coefficients demands, are the reference's."""
    from reference_solutions.diffusion import ForwardDiffusion, ReverseDiffusion, make_betas

    checks = load_assignment("hw6").load_checks()
    one, t = torch.ones(1, 1, dtype=torch.float64), torch.tensor([5])
    for schedule, want in checks.COURSE_VALUES.items():
        fwd, rev = ForwardDiffusion(make_betas(100, schedule)), ReverseDiffusion(make_betas(100, schedule))
        got = [*fwd.get_mean_variance(one, t), fwd.get_samples(one, t, one), rev.get_x0(one, one, t)]
        got += rev.get_mean_variance(one, one, t)
        np.testing.assert_allclose([float(g) for g in got], want, rtol=2e-5)  # the course prints 7 digits


def test_report_shows_the_samples() -> None:
    titles = {f.title for f in golden("hw6").report(golden("hw6").solved).figures}
    assert {
        "NCSN samples (annealed Langevin) over the test points",
        "DDPM samples over the test points",
        "DDPM samples of digits",
    } <= titles


def test_messages_name_the_mistake() -> None:
    def message(name: str, item: str) -> str:
        return auto(golden("hw6").fixture(f"{name}.ipynb"))[item][2]

    assert "-ε/σ²" in message("dsm_target_over_sigma_squared", "dsm_loss")
    assert "σ² used as the noise's standard deviation" in message("dsm_sigma_squared_as_std", "dsm_loss")
    assert "no 1/2" in message("langevin_drift_without_half", "langevin")
    assert "draw fresh z every step" in message("langevin_same_noise_every_step", "langevin")
    assert "one level per row" in message("ncsn_one_level_per_batch", "ncsn_loss")
    assert "weight λ(σ_i) = σ_i²" in message("ncsn_no_weight", "ncsn_loss")
    assert "divide by the largest σ" in message("annealed_divides_by_largest_sigma", "ncsn_langevin")
    assert "order [3, 2, 1, 0]" in message("annealed_smallest_sigma_first", "ncsn_langevin")
    assert "t[0] for every row" in message("ddpm_t_first_for_whole_batch", "ddpm_coefficients")
    assert "standard deviation returned as a variance" in message("ddpm_std_returned_as_variance", "ddpm_coefficients")
    assert "never 0" in message("ddpm_t_from_one", "ddpm_loss")
    assert "β_t used as the variance" in message("ddpm_reverse_variance_beta", "ddpm_reverse")
