"""The UPM conditional VAE: its rubric is the course's 10-point scale, and the graded fixtures' messages name
their mistakes (the golden tests of every notebook are in test_golden.py)."""

from __future__ import annotations

import re

import pytest

from grader import load_assignment
from grader.checks import find_checks
from tests.assignments.golden import auto, golden

pytestmark = [pytest.mark.xdist_group("upm_cvae"), pytest.mark.slow]


def test_rubric_is_the_courses_ten_point_scale() -> None:
    upm = load_assignment("upm_cvae")
    assert upm.rubric.points == 10
    assert {t.id: t.points for t in upm.rubric.tasks} == {"implementation": 5, "performance": 2, "presentation": 3}
    assert all(item.guide and item.cells for item in upm.rubric.items if item.kind == "manual")
    assert find_checks(upm.load_checks(), upm.rubric).make_inputs is not None
    assert set(upm.baselines("ci")) == {"cvae_nll", "cvae_accuracy"}


def test_report_shows_reconstructions_samples_and_the_loss_curve() -> None:
    report = golden("upm_cvae").report(golden("upm_cvae").solved)
    assert {
        "Test images (top) and the decoder's means (bottom)",
        "Samples: one row per requested class",
        "Training loss under the grader's loop (nats/image)",
    } <= {f.title for f in report.figures}


def test_messages_name_the_mistake() -> None:
    def message(name: str, item: str) -> str:
        return auto(golden("upm_cvae").fixture(f"{name}.ipynb"))[item][2]

    assert "the decoder must use c" in message("cvae_decoder_ignores_label", "cvae_condition")
    assert "one-hot vectors (B, 10)" in message("cvae_labels_not_encoded", "cvae_labels")
    assert "sign is flipped" in message("cvae_kl_wrong_sign", "cvae_elbo")
    assert "requested labels" in message("cvae_sample_ignores_label", "cvae_sample")
    accuracy = re.search(r"([\d.]+)% of 1000 samples", message("cvae_sample_ignores_label", "cvae_accuracy"))
    assert accuracy is not None and float(accuracy[1]) < 20  # chance is 10%
