"""Homework 1's notebooks: template and solution agree, answers are right (tests/grader/test_authoring.py:
they are current)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader import theory
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[2]
HW1 = ROOT / "assignments" / "hw1"
FIXTURES = ROOT / "tests" / "fixtures" / "hw1"


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.metadata["dgm"]["id"], c.cell_type, tuple(c.metadata.get("tags", []))) for c in nb.cells]


def test_template_and_solution_have_the_same_cells_and_the_template_is_blank() -> None:
    template = nbformat.read(HW1 / "hw1.ipynb", as_version=4)
    solved = nbformat.read(ROOT / "reference_solutions" / "notebooks" / "hw1.ipynb", as_version=4)
    assert _cells(template) == _cells(solved)
    for cell in template.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert "raise NotImplementedError" in cell.source and "# YOUR CODE" in cell.source
    setup = next(c for c in template.cells if c.metadata["dgm"]["id"] == "setup")
    assert all(line.startswith(("import ", "from ")) or not line for line in setup.source.splitlines())


def test_solved_answers_are_right_and_blank_answers_score_nothing() -> None:
    rubric = load_rubric(HW1 / "rubric.yaml")
    for path, expect in ((ROOT / "reference_solutions" / "notebooks" / "hw1.ipynb", True), (HW1 / "hw1.ipynb", False)):
        nb = nbformat.read(path, as_version=4)
        answers = theory.extract_answers(c.source for c in nb.cells if c.cell_type == "markdown").answers
        for item in rubric.items:
            if item.kind != "theory":
                continue
            assert item.answer is not None
            ok, message = theory.grade_answer(
                answers.get(item.id),
                item.answer.key,
                answer_id=item.id,
                symbols=item.answer.symbols,
                rtol=item.answer.rtol,
                domain=item.answer.domain,
            )
            assert ok is expect, (path.name, item.id, message)


def test_expected_yaml_names_real_items() -> None:
    import yaml

    expected = yaml.safe_load((FIXTURES / "expected.yaml").read_text())["fixtures"]
    shorthands = {"pixelcnn_all", "imagegpt_all", "imagegpt_uses_mask"}
    item_ids = {i.id for i in load_rubric(HW1 / "rubric.yaml").items} | shorthands
    for name, spec in expected.items():
        for key in ("lose", "may_lose"):
            assert set(spec.get(key, [])) <= item_ids, (name, key)
