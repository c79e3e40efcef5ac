"""Authoring: `source.ipynb` -> template and solved notebook; `new-assignment` scaffolds one that `assign` accepts."""

from __future__ import annotations

import nbformat
import pytest

from grader import grade, list_assignments, load_assignment
from grader.authoring import build, write_notebooks
from grader.errors import AssignmentError
from grader.scaffold import create_assignment

RUBRIC = load_assignment("hw1").rubric  # keys such as t1_kde_variance


def _source(*cells: tuple[str, str, str | None, str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for cell_id, kind, tag, text in cells:
        cell = nbformat.v4.new_code_cell(text) if kind == "code" else nbformat.v4.new_markdown_cell(text)
        cell.metadata["dgm"] = {"id": cell_id}
        if tag:
            cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    return nb


@pytest.mark.parametrize("assignment", [a for a in list_assignments() if a.source_path.exists()], ids=lambda a: a.name)
def test_committed_notebooks_are_built_from_the_source(assignment) -> None:
    notebooks = build(nbformat.read(assignment.source_path, as_version=4), assignment.rubric)
    for built, path in ((notebooks.template, assignment.template_path), (notebooks.solved, assignment.solution_path)):
        assert nbformat.writes(built) + "\n" == path.read_text(), f"{path} is stale: run dgm-grader assign"


def test_solution_regions_become_stubs_and_prompts_replace_them() -> None:
    code = (
        "class M:\n    def f(self):\n        ### BEGIN SOLUTION: the answer\n        return 42\n"
        + "        ### END SOLUTION"
    )
    prompted = "### BEGIN PROMPT\nx = ...\n### END PROMPT\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nprint(x)"
    source = _source(("f", "code", "solution", code), ("x", "code", "solution", prompted), ("d", "code", None, "y = 2"))
    nbs = build(source, RUBRIC)
    assert [c.source for c in nbs.template.cells] == [
        "class M:\n    def f(self):\n        # YOUR CODE: the answer\n        raise NotImplementedError",
        "x = ...\nprint(x)",
        "y = 2",
    ]
    assert [c.source for c in nbs.solved.cells] == [
        "class M:\n    def f(self):\n        return 42",
        "x = 1\nprint(x)",
        "y = 2",
    ]
    assert [(c.id, c.metadata) for c in nbs.template.cells] == [
        ("f", {"dgm": {"id": "f"}, "tags": ["solution"]}),
        ("x", {"dgm": {"id": "x"}, "tags": ["solution"]}),
        ("d", {"dgm": {"id": "d"}}),
    ]


def test_markdown_regions_and_answers_come_from_the_rubric() -> None:
    text = (
        "<!-- BEGIN PROMPT -->\nYour derivation.\n<!-- END PROMPT -->\n<!-- BEGIN SOLUTION -->\n"
        "By total variance.\n<!-- END SOLUTION -->\n\n```answer\nt1_kde_variance:\n```"
    )
    nbs = build(_source(("t1", "markdown", "theory", text)), RUBRIC)
    assert nbs.template.cells[0].source == "Your derivation.\n\n```answer\nt1_kde_variance:\n```"
    assert nbs.solved.cells[0].source == "By total variance.\n\n```answer\nt1_kde_variance: s2 + h**2\n```"


def test_inline_directive_pastes_the_reference_source() -> None:
    line = "from reference_solutions.image_gpt import get_attention_mask  # dgm: inline"
    nbs = build(_source(("m", "code", "solution", f"### BEGIN SOLUTION\n{line}\n### END SOLUTION")), RUBRIC)
    assert nbs.solved.cells[0].source.startswith("def get_attention_mask(seq_len: int) -> torch.Tensor:")
    assert nbs.template.cells[0].source == "# YOUR CODE\nraise NotImplementedError"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (("a", "code", "solution", "### BEGIN SOLUTION\nx = 1"), "is not closed"),
        (("a", "code", None, "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), "locked cell"),
        (("a", "markdown", "theory", "```answer\nt1_kde_variance: 1\n```"), "write only 'key:'"),
        (("a", "markdown", "theory", "```answer\nnot_in_rubric:\n```"), "not_in_rubric"),
    ],
)
def test_source_mistakes_name_the_cell(cell, message: str) -> None:
    with pytest.raises(AssignmentError, match=f"source cell 'a': .*{message}"):
        build(_source(cell), RUBRIC)


@pytest.mark.slow
@pytest.mark.xdist_group("sandbox")
def test_new_assignment_is_accepted_by_assign(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("grader.assignment.REPO_ROOT", tmp_path)  # the solved notebook goes under REPO_ROOT
    create_assignment("hw9", tmp_path / "assignments")
    with pytest.raises(AssignmentError, match="exists already"):
        create_assignment("hw9", tmp_path / "assignments")
    assignment = write_notebooks("hw9", tmp_path / "assignments")
    assert assignment.solution_path.is_relative_to(tmp_path)
    assert {i.kind for i in assignment.rubric.items} == {"theory", "manual", "check", "metric"}
    solved = grade(assignment.solution_path, assignment, sandbox="bwrap")
    assert solved.auto_total == solved.auto_max > 0, [(i.id, i.message) for i in solved.items]
    assert grade(assignment.template_path, assignment, sandbox="bwrap").auto_total == 0
