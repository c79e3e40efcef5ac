"""The UPM conditional VAE graded through the real pipeline: the solved notebook gets every automatic
point (on a fixed and a random seed), the blank template none, each alternative correct solution every
point, and each fixture loses exactly the items `tests/fixtures/upm_cvae/expected.yaml` lists."""

from __future__ import annotations

import re

import pytest

from grader import load_assignment
from grader.checks import find_checks
from tests.assignments.golden import Golden, assert_loses_exactly, auto, lost

pytestmark = [pytest.mark.xdist_group("upm_cvae"), pytest.mark.slow]

GOLDEN = Golden("upm_cvae", seed=5)
AUTO_POINTS = 7.0  # implementation 5 + performance 2; presentation 3 is the TA's


def test_rubric_is_the_courses_ten_point_scale() -> None:
    upm = load_assignment("upm_cvae")
    assert upm.rubric.points == 10
    assert {t.id: t.points for t in upm.rubric.tasks} == {"implementation": 5, "performance": 2, "presentation": 3}
    assert all(item.guide for item in upm.rubric.items if item.kind == "manual")
    assert find_checks(upm.load_checks(), upm.rubric).make_inputs is not None
    assert set(upm.baselines("ci")) == {"cvae_nll", "cvae_accuracy"}


def test_solution_gets_every_automatic_point() -> None:
    report = GOLDEN.report(GOLDEN.solved)
    assert not lost(report), lost(report)
    assert report.auto_total == report.auto_max == AUTO_POINTS
    assert report.pending_manual == 3
    assert report.sandbox is not None and report.sandbox.isolated
    assert report.warnings == []
    assert {
        "Test images (top) and the decoder's means (bottom)",
        "Samples: one row per requested class",
        "Training loss under the grader's loop (nats/image)",
    } <= {f.title for f in report.figures}


def test_solution_gets_every_automatic_point_on_a_random_seed() -> None:
    report = GOLDEN.report(GOLDEN.solved, GOLDEN.random_seed)
    assert not lost(report), f"seed {GOLDEN.random_seed} (reproduce with --seed {GOLDEN.random_seed}): {lost(report)}"


@pytest.mark.parametrize("name", GOLDEN.correct)
def test_correct_alternative_gets_every_automatic_point(name: str) -> None:
    report = GOLDEN.alternative(name)
    assert not lost(report), lost(report)
    assert report.auto_total == AUTO_POINTS


def test_blank_template_gets_nothing() -> None:
    report = GOLDEN.report(GOLDEN.template)
    assert report.auto_total == 0, {k: v for k, v in auto(report).items() if v[0] > 0}


@pytest.mark.parametrize("name", sorted(GOLDEN.expected))
def test_fixture_loses_exactly_its_items(name: str) -> None:
    assert_loses_exactly(GOLDEN.fixture(name), name, GOLDEN.expected[name])


def test_messages_name_the_mistake() -> None:
    messages = {name: {k: v[2] for k, v in auto(GOLDEN.fixture(name)).items()} for name in GOLDEN.expected}
    assert "the decoder must use c" in messages["cvae_decoder_ignores_label.ipynb"]["cvae_condition"]
    assert "one-hot vectors (B, 10)" in messages["cvae_labels_not_encoded.ipynb"]["cvae_labels"]
    assert "sign is flipped" in messages["cvae_kl_wrong_sign.ipynb"]["cvae_elbo"]
    assert "requested labels" in messages["cvae_sample_ignores_label.ipynb"]["cvae_sample"]
    accuracy = re.search(r"([\d.]+)% of 1000 samples", messages["cvae_sample_ignores_label.ipynb"]["cvae_accuracy"])
    assert accuracy is not None and float(accuracy[1]) < 20  # chance is 10%
