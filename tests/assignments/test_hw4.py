"""Homework 4: the rubric's shape, the report's pictures, and the graded fixtures' messages naming their mistakes
(the golden tests of every notebook are in test_golden.py)."""

from __future__ import annotations

import pytest

from grader import load_assignment
from grader.checks import find_checks
from tests.assignments.golden import auto, golden

pytestmark = [pytest.mark.xdist_group("hw4"), pytest.mark.slow]


def test_rubric_sums_to_thirteen() -> None:
    hw4 = load_assignment("hw4")
    assert hw4.rubric.points == 13
    assert {t.id: t.points for t in hw4.rubric.tasks} == {"theory": 4, "vqvae": 5, "gan": 4}
    assert sum(item.points for item in hw4.rubric.items) == 13
    assert all(item.guide and item.cells for item in hw4.rubric.items if item.kind == "manual")
    assert find_checks(hw4.load_checks(), hw4.rubric).make_inputs is not None
    assert set(hw4.baselines("ci")) == {"vq_recon", "prior_nll", "gan_kid", "gan_coverage"}


def test_report_shows_reconstructions_and_samples_of_both_models() -> None:
    report = golden("hw4").report(golden("hw4").solved)
    assert {
        "Test images (top) and the VQ-VAE's reconstructions p(x = 1) (bottom)",
        "VQ-VAE samples decoded from the PixelCNN prior's codes",
        "GAN samples (the host's z)",
    } <= {f.title for f in report.figures}


@pytest.mark.parametrize(
    ("fixture", "item", "words"),
    [
        ("vq_indices_argmax", "vq_indices", "argmax instead of argmin"),
        ("vq_indices_no_permute", "vq_indices", "without moving the channel axis"),
        ("vq_indices_l1_distance", "vq_indices", "L1 distance"),
        ("vq_no_straight_through", "vq_straight_through", "no gradient reaches z_e"),
        ("vq_straight_through_detach_wrong_side", "vq_straight_through", "it returns z_e itself"),
        ("vq_straight_through_two_x_minus_q", "vq_straight_through", "2 z_e - z_q"),
        ("vqvae_ce_moves_codebook", "vqvae_loss", "moves the codebook"),
        ("vq_loss_swapped_stop_gradients", "vq_loss", "beta weighs the codebook term"),
        ("vq_loss_missing_stop_gradients", "vq_loss", "stop-gradients (detach) are missing"),
        ("vq_loss_sum_not_mean", "vq_loss", "not sums"),
        ("vq_sample_from_logits_argmax", "vq_sample", "do not take the argmax"),
        ("prior_mask_b_first_layer", "prior_causal", "mask 'A' in the first layer"),
        ("gan_saturating_generator_loss", "gan_g_loss", "saturating loss"),
        ("gan_sigmoid_applied_twice", "gan_d_loss", "sigmoid applied"),
        ("gan_discriminator_loss_sign", "gan_d_loss", "discriminator_loss = "),
        ("gan_generator_loss_without_gradient", "gan_g_loss", "does not reach the generator"),
        ("gan_samples_out_of_range", "gan_samples", "in [0, 1]"),
    ],
)
def test_messages_name_the_mistake(fixture: str, item: str, words: str) -> None:
    assert words in auto(golden("hw4").fixture(f"{fixture}.ipynb"))[item][2]
