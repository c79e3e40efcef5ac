"""Fixture notebooks (`tests/fixtures/hwN/variants.yaml`) and alternative correct solutions
(`tests/fixtures/hwN/correct/`): the stored notebooks are what `tests/fixtures/variants.py` builds from the
current solved notebooks, each fixture has its expected outcome, and the builder refuses edits it cannot
apply. Grading them is the golden tests' job (`test_hwN.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def _variants() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fixture_variants", FIXTURES / "variants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


variants = _variants()
SOLVED = nbformat.read(ROOT / "reference_solutions" / "notebooks" / "hw1.ipynb", as_version=4)


@pytest.mark.parametrize("hw", ["hw1", "hw2", "hw3", "hw4", "hw6", "upm_cvae"])
def test_stored_fixtures_are_built_from_the_current_solution_and_expected(hw: str) -> None:
    built = variants.build_fixtures(hw)
    for name, text in built.items():
        assert (FIXTURES / hw / name).read_text() == text, (
            f"{hw}/{name} is stale: run python tests/fixtures/variants.py"
        )
    expected = yaml.safe_load((FIXTURES / hw / "expected.yaml").read_text())["fixtures"]
    assert set(built) == set(expected) == {p.name for p in (FIXTURES / hw).glob("*.ipynb")}


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        ({"cell": "pixelcnn", "replace": "no such text", "with": ""}, "exactly once"),
        ({"cell": "no_such_cell", "source": "x = 1"}, "no cell 'no_such_cell'"),
        ({"cell": "pixelcnn"}, "has none of"),
    ],
)
def test_unusable_edits_are_refused(edit: dict, error: str) -> None:
    with pytest.raises(variants.VariantError, match=error):
        variants.apply_edits(SOLVED, [edit], "test")


@pytest.mark.parametrize("hw", ["hw1", "hw2", "hw3", "hw4", "hw6", "upm_cvae"])
def test_every_homework_has_three_alternatives(hw: str) -> None:
    assert len(list((FIXTURES / hw / "correct").glob("*.py"))) >= 3


@pytest.mark.parametrize("path", variants.all_variants(), ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_stored_notebook_is_built_from_the_current_solution(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / path.parent.parent.name / "correct" / path.name
    copy.parent.mkdir(parents=True)
    copy.write_text(path.read_text())
    fresh = nbformat.read(variants.build(copy), as_version=4)
    stored = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
    assert [c.source for c in fresh.cells] == [c.source for c in stored.cells], f"{path.with_suffix('.ipynb')} is stale"


def test_sections_replace_only_the_named_solution_cells() -> None:
    text = "what differs\n\n# %% [attention_mask]\ndef get_attention_mask(seq_len):\n    return None\n"
    nb = variants.apply_sections(SOLVED, variants.read_sections(text), "test")
    changed = [c.metadata["dgm"]["id"] for c, old in zip(nb.cells, SOLVED.cells, strict=True) if c.source != old.source]
    assert changed == ["attention_mask"]
    assert nb.cells[[c.metadata["dgm"]["id"] for c in nb.cells].index("attention_mask")].source.endswith("None")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("no sections at all\n", "no '# %% \\[<cell-id>\\]' section"),
        ("# %% [no_such_cell]\nx = 1\n", "no cell 'no_such_cell'"),
        ("# %% [masked_conv_test]\nx = 1\n", "not a solution cell"),
        ("# %% [theory_kde]\nx = 1\n", "not a solution cell"),
        ("# %% [pixelcnn]\nx = 1\n# %% [pixelcnn]\nx = 2\n", "replaced twice"),
        ("# %% [pixelcnn]\n\n# %% [autocomplete]\nx = 2\n", "is empty"),
    ],
)
def test_unusable_sections_are_refused(text: str, error: str) -> None:
    with pytest.raises(variants.VariantError, match=error):
        variants.apply_sections(SOLVED, variants.read_sections(text, "test"), "test")
