"""Homework 5: the rubric's shape, the host's inputs (the cases that tell the mistakes apart), the report's pictures,
and the graded fixtures' messages naming their mistakes (the golden tests of every notebook are in test_golden.py)."""

from __future__ import annotations

import numpy as np
import pytest

from grader import grade, load_assignment
from grader.checks import find_checks
from grader.errors import AssignmentError
from tests.assignments.golden import auto, golden

pytestmark = [pytest.mark.xdist_group("hw5"), pytest.mark.slow]


def test_rubric_sums_to_thirteen() -> None:
    hw5 = load_assignment("hw5")
    assert hw5.rubric.points == 13
    assert {t.id: t.points for t in hw5.rubric.tasks} == {"theory": 3, "wgan": 5, "metrics": 5}
    assert sum(item.points for item in hw5.rubric.items) == 13
    assert all(item.guide and item.cells for item in hw5.rubric.items if item.kind == "manual")
    assert set(hw5.baselines("ci")) == {"wgan_gp_quality", "sngan_quality"}


def test_host_inputs_separate_the_classic_mistakes() -> None:
    """The FID cases include covariances that do not commute (sqrtm(S1) sqrtm(S2) is then wrong) and singular ones;
    the power-iteration matrices have a spectral gap, so 40 one-step calls converge."""
    hw5 = load_assignment("hw5")
    data = find_checks(hw5.load_checks(), hw5.rubric).make_inputs("ci", 7)
    s1, s2 = data["fid_cases_sigma"][0], data["fid_cases_sigma"][1]
    assert not np.allclose(s1 @ s2, s2 @ s1)
    assert np.linalg.matrix_rank(data["fid_cases_sigma"][2]) < len(s1)
    singular = np.linalg.svd(data["sn_linear_weight"].astype(np.float64), compute_uv=False)
    assert singular[0] / singular[1] == pytest.approx(3.0, rel=1e-5)
    assert not np.allclose(np.linalg.norm(data["gp_weights"][0]), 1.0)


def test_report_shows_samples_of_both_models() -> None:
    report = golden("hw5").report(golden("hw5").solved)
    assert {"WGAN-GP samples (the host's z)", "SN-GAN samples (the host's z)"} <= {f.title for f in report.figures}


@pytest.mark.parametrize(
    ("fixture", "item", "words"),
    [
        ("critic_loss_sign_flipped", "wgan_losses", "the sign is flipped"),
        ("critic_sigmoid_output", "wgan_losses", "a sigmoid or tanh at the end"),
        ("clip_rescales_weights", "wgan_clip", "do not rescale"),
        ("clip_gradients_not_weights", "wgan_clip", "not their gradients"),
        ("clip_conv_layers_only", "wgan_clip", "clip every Conv2d and Linear layer"),
        ("clip_after_forward", "wgan_clip", "clip first"),
        ("gp_without_create_graph", "gradient_penalty", "create_graph=True"),
        ("gp_one_t_per_batch", "gradient_penalty", "one t ~ U[0, 1] per sample"),
        ("gp_squared_norm", "gradient_penalty", "the squared norm"),
        ("gp_norm_over_channels_only", "gradient_penalty", "the norm over all of a sample's elements"),
        ("power_iteration_sigma_of_old_u", "sn_power_iteration", "one step from u_init"),
        ("sn_u_not_kept", "sn_layers", "u is not kept between calls"),
        ("sn_weight_not_divided", "sn_layers", "divide the weight by sigma"),
        ("is_softmax_twice_fid_unsquared_mean", "is_probs", "softmax applied twice"),
        ("is_softmax_twice_fid_unsquared_mean", "fid_distance", "is not squared"),
        ("is_logits_not_probs_fid_features_keep_spatial", "is_probs", "apply a softmax"),
        ("is_logits_not_probs_fid_features_keep_spatial", "fid_features", "spatial dimensions are kept"),
        ("is_strided_splits_fid_rows_as_variables", "fid_features", "rowvar=False"),
        ("is_reversed_kl_fid_elementwise_sqrt", "fid_distance", "the square root is taken elementwise"),
        ("is_reversed_kl_fid_elementwise_sqrt", "is_score", "the KL is reversed"),
        ("is_mean_of_logs_fid_product_of_roots", "is_score", "the mean of the logs"),
        ("is_mean_of_logs_fid_product_of_roots", "fid_distance", "only when S1 and S2 commute"),
        ("is_strided_splits_fid_rows_as_variables", "is_score", "the splits are consecutive"),
        ("gp_t_normal_fid_singular_complex", "gradient_penalty", "the interpolation weights leave [0, 1]"),
        ("gp_t_normal_fid_singular_complex", "fid_distance", "got a complex number"),
    ],
)
def test_messages_name_the_mistake(fixture: str, item: str, words: str) -> None:
    assert words in auto(golden("hw5").fixture(f"{fixture}.ipynb"))[item][2]


def test_full_profile_without_inception_weights_names_the_install_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DGM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DGM_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(AssignmentError, match="run `dgm-grader metrics inception install`"):
        grade(golden("hw5").solved, "hw5", profile="full", sandbox="none", seed=0)
