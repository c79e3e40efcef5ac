import json
from pathlib import Path

import nbformat
import pytest

from grader.errors import InvalidSubmission
from grader.prepare import SKIP_TAG, cell_key, prepare, read_notebook, validate_notebook

TOY = Path(__file__).parent / "toy"


@pytest.fixture
def template() -> nbformat.NotebookNode:
    return nbformat.read(TOY / "toy.ipynb", as_version=4)


@pytest.fixture
def solution() -> nbformat.NotebookNode:
    return nbformat.read(TOY / "solution.ipynb", as_version=4)


def sources(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {cell_key(c): c.source for c in nb.cells}


def test_student_cells_come_from_submission_locked_from_template(template, solution):
    solution.cells[0].source = "import os; os.system('echo pwned')"
    prepared = prepare(solution, template)
    got = sources(prepared.notebook)
    assert got["setup"] == template.cells[0].source
    assert got["square"] == "def square(x):\n    return x * x"
    assert prepared.warnings == ["locked cell 'setup' was edited; the template's version was used"]
    assert "1 - (1-eps)^m" in prepared.answer_sources[0]


def test_experiment_cells_are_skipped_and_keep_outputs(template, solution):
    solution.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="epoch 1 loss 0.3\n")]
    nb = prepare(solution, template).notebook
    experiment = next(c for c in nb.cells if cell_key(c) == "train")
    assert SKIP_TAG in experiment.metadata["tags"]
    assert experiment.outputs[0]["text"] == "epoch 1 loss 0.3\n"


def test_student_cannot_tag_own_cells_to_skip_or_unlock(template, solution):
    solution.cells[2].metadata["tags"] = ["solution", SKIP_TAG]
    solution.cells[0].metadata["tags"] = ["solution"]
    nb = prepare(solution, template).notebook
    assert SKIP_TAG not in next(c for c in nb.cells if cell_key(c) == "square").metadata["tags"]
    assert next(c for c in nb.cells if cell_key(c) == "setup").source == template.cells[0].source


def test_deleted_duplicated_and_added_cells_warn_and_keep_order(template, solution):
    extra = nbformat.v4.new_code_cell("def helper():\n    return 1")
    square = solution.cells[2]
    solution.cells = [solution.cells[0], solution.cells[1], square, extra, dict(square), solution.cells[4]]
    prepared = prepare(solution, template)
    keys = [cell_key(c) for c in prepared.notebook.cells]
    assert keys == ["setup", "t1", "square", "", "line", "train"]
    assert prepared.notebook.cells[3].source == "def helper():\n    return 1"
    assert "cell 'square' appears 2 times in your notebook; the first copy was graded" in prepared.warnings
    assert "your cell 'line' was not found; the blank template cell was graded" in prepared.warnings


def test_cells_whose_metadata_was_lost_are_matched_by_tag_order(template, solution):
    for cell in solution.cells:
        cell.metadata.pop("dgm")
        cell.pop("id", None)
    prepared = prepare(solution, template)
    assert sources(prepared.notebook)["square"] == "def square(x):\n    return x * x"
    assert any("matched by position" in w for w in prepared.warnings)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "invalid JSON at line 1"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps({"cells": [], "nbformat": 3, "metadata": {}}).encode(), "unsupported notebook format 3"),
        (
            json.dumps(
                {"cells": [{"cell_type": "bogus"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}
            ).encode(),
            "invalid notebook",
        ),
        (b" " * (33 * 2**20), "the limit is 32 MiB"),
        (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep"),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": ' + b'{"a": ' * 900 + b"1" + b"}" * 901,
            "nested 901 levels deep",
        ),
    ],
)
def test_unusable_uploads_get_one_line_reasons(data, message):
    with pytest.raises(InvalidSubmission, match=message) as err:
        validate_notebook(data)
    assert "\n" not in str(err.value)


def test_valid_notebook_reads(solution):
    nb = read_notebook(nbformat.writes(solution).encode())
    assert len(nb.cells) == len(solution.cells)


def test_brackets_inside_strings_do_not_count_as_nesting():
    from grader.prepare import json_depth

    assert json_depth(b'{"a": [1, "[[[[{{", {"b": "\\"[["}]}') == 3
