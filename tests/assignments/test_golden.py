"""The golden tests of every assignment graded through `tests/assignments/golden.py` (hw1-hw3 have their own
modules): the solved notebook gets every automatic point on a fixed and on a random seed, the blank template
none, each alternative correct solution every automatic point, and each fixture loses exactly the items its
`expected.yaml` lists. Assignment-specific tests (rubric shape, messages) live in `test_<assignment>.py`."""

from __future__ import annotations

import pytest

from tests.assignments.golden import SEEDS, assert_loses_exactly, auto, golden, lost

pytestmark = pytest.mark.slow


def _each(names: list[str] | None = None) -> list:
    """One parameter per assignment (or per assignment and notebook), in that assignment's xdist group."""
    params = []
    for hw in SEEDS:
        for name in [None] if names is None else getattr(golden(hw), names[0]):
            marks = pytest.mark.xdist_group(hw)
            params.append(pytest.param(hw, name, marks=marks, id=hw if name is None else f"{hw}/{name}"))
    return params


@pytest.mark.parametrize(("hw", "name"), _each())
def test_solution_gets_every_automatic_point(hw: str, name: None) -> None:
    report = golden(hw).report(golden(hw).solved)
    assert not lost(report), lost(report)
    assert (report.auto_total, report.pending_manual) == golden(hw).points
    assert report.sandbox is not None and report.sandbox.isolated
    assert report.warnings == []


@pytest.mark.parametrize(("hw", "name"), _each())
def test_solution_gets_every_automatic_point_on_a_random_seed(hw: str, name: None) -> None:
    seed = golden(hw).random_seed
    report = golden(hw).report(golden(hw).solved, seed)
    assert not lost(report), f"seed {seed} (reproduce with --seed {seed}): {lost(report)}"


@pytest.mark.parametrize(("hw", "name"), _each())
def test_blank_template_gets_nothing(hw: str, name: None) -> None:
    report = golden(hw).report(golden(hw).template)
    assert report.auto_total == 0, {k: v for k, v in auto(report).items() if v[0] > 0}


@pytest.mark.parametrize(("hw", "name"), _each(["correct"]))
def test_correct_alternative_gets_every_automatic_point(hw: str, name: str) -> None:
    report = golden(hw).alternative(name)
    assert not lost(report), lost(report)
    assert report.auto_total == golden(hw).points[0]


@pytest.mark.parametrize(("hw", "name"), _each(["fixture_names"]))
def test_fixture_loses_exactly_its_items(hw: str, name: str) -> None:
    assert_loses_exactly(golden(hw).fixture(name), name, golden(hw).expected[name])
