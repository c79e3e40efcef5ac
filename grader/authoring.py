"""Authoring: the instructor's `source.ipynb` -> the student template and the solved notebook.

One notebook holds both versions, with regions marked as nbgrader and otter-grader mark them:

- code cells: `### BEGIN SOLUTION` ... `### END SOLUTION` is kept in the solved notebook only. In the
  template it becomes `# YOUR CODE` and `raise NotImplementedError` at the marker's indentation; text
  after the marker is a hint (`### BEGIN SOLUTION: the mask` -> `# YOUR CODE: the mask`).
  `### BEGIN PROMPT` ... `### END PROMPT` is the template's text only; a cell with a prompt gets no
  default stubs (put the prompt above the solution, so that running the source defines the solution last).
- markdown cells: `<!-- BEGIN SOLUTION -->` ... `<!-- END SOLUTION -->` and `<!-- BEGIN PROMPT -->` ...
  `<!-- END PROMPT -->`, the same way (no default stub).
- answer blocks: a line `item_id:` in a ```` ```answer ```` block gets the rubric's key in the solved
  notebook and stays empty in the template, so each key has one source, `rubric.yaml`.
- `from reference_solutions.MODULE import A, B  # dgm: inline` (a line of its own; it runs in Jupyter
  as it stands) is replaced by the source of `A` and `B`, so a reference model is never pasted.

Cells keep their `metadata.dgm.id` (the nbformat cell id is derived from it) and their tags; outputs,
execution counts and other metadata are dropped.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.assignment import Assignment, assignment_folder, load_assignment
from grader.errors import AssignmentError
from grader.rubric import Rubric, load_rubric
from grader.theory.answers import fill_answers

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
_MARKERS = {
    "code": ("### BEGIN {}", "### END {}"),
    "markdown": ("<!-- BEGIN {} -->", "<!-- END {} -->"),
}
_INLINE = re.compile(r"^from reference_solutions\.(?P<module>[\w.]+) import (?P<names>[\w, ]+?)\s*# dgm: inline$")


@dataclass(frozen=True)
class Notebooks:
    template: NotebookNode
    solved: NotebookNode


def build(source: NotebookNode, rubric: Rubric) -> Notebooks:
    """The student template and the solved notebook of an instructor notebook (see the module docstring)."""
    keys = {item.id: item.answer.key for item in rubric.items if item.answer is not None}
    ids = {cell.get("metadata", {}).get("dgm", {}).get("id") for cell in source.cells}
    for item in rubric.items:
        if unknown := [c for c in item.cells if c not in ids]:
            raise AssignmentError(f"rubric item {item.id}: cells {unknown} are not cells of the source notebook")
    return Notebooks(template=_notebook(source, keys, solved=False), solved=_notebook(source, keys, solved=True))


def write_notebooks(name: str | Path, assignments_dir: Path | None = None) -> Assignment:
    """Build an assignment's template and solved notebook from its `source.ipynb`, write both, load it."""
    path = assignment_folder(name, assignments_dir)
    if not (path / "rubric.yaml").exists():
        raise AssignmentError(f"unknown assignment {str(name)!r}: no {path / 'rubric.yaml'}")
    draft = Assignment(name=path.name, path=path, rubric=load_rubric(path / "rubric.yaml"))
    if not draft.source_path.exists():
        raise AssignmentError(f"{draft.name}: no {draft.source_path} to build the notebooks from")
    notebooks = build(nbformat.read(draft.source_path, as_version=4), draft.rubric)
    draft.solution_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebooks.template, draft.template_path)
    nbformat.write(notebooks.solved, draft.solution_path)
    return load_assignment(path)


def _notebook(source: NotebookNode, keys: dict[str, str], *, solved: bool) -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(kernelspec=KERNELSPEC, language_info={"name": "python"})
    if "dgm" in source.metadata:
        nb.metadata["dgm"] = source.metadata["dgm"]
    for cell in source.cells:
        cell_id = cell.get("metadata", {}).get("dgm", {}).get("id")
        if not cell_id:
            raise AssignmentError(f"source cell {cell.get('id')!r} has no metadata.dgm.id")
        try:
            text = _render(cell, keys, solved=solved)
        except (ValueError, KeyError, ImportError, AttributeError) as exc:
            raise AssignmentError(f"source cell {cell_id!r}: {exc}") from exc
        new = nbformat.v4.new_code_cell(text) if cell.cell_type == "code" else nbformat.v4.new_markdown_cell(text)
        new.id = cell_id.replace("_", "-")
        new.metadata["dgm"] = {"id": cell_id}
        if tags := cell.metadata.get("tags"):
            new.metadata["tags"] = list(tags)
        nb.cells.append(new)
    return nb


def _render(cell: NotebookNode, keys: dict[str, str], *, solved: bool) -> str:
    lines = list(_regions(cell, solved=solved))
    if cell.cell_type == "markdown":
        return fill_answers("\n".join(lines), keys) if solved else "\n".join(lines)
    return "\n".join(_inline(line) for line in lines)


def _regions(cell: NotebookNode, *, solved: bool) -> Iterator[str]:
    """The lines of one version of `cell`: solution regions for `solved`, prompts (or stubs) otherwise."""
    begin, end = _MARKERS[cell.cell_type]
    lines = cell.source.split("\n")
    has_prompt = any(line.strip() == begin.format("PROMPT") for line in lines)
    locked = not set(cell.metadata.get("tags", [])) & {"solution", "theory"}
    region: str | None = None
    indent = hint = ""
    for line in lines:
        stripped = line.strip()
        opens = next((r for r in ("SOLUTION", "PROMPT") if stripped.startswith(begin.format(r))), None)
        if opens:
            if region or locked:
                raise ValueError(f"{stripped!r} inside a region or in a locked cell")
            region, indent = opens, line[: len(line) - len(line.lstrip())]
            hint = stripped[len(begin.format(opens)) :].strip().lstrip(":").strip()
        elif region and stripped == end.format(region):
            if region == "SOLUTION" and not solved and not has_prompt and cell.cell_type == "code":
                yield f"{indent}# YOUR CODE{': ' + hint if hint else ''}"
                yield f"{indent}raise NotImplementedError"
            region = None
        elif region is None or (region == "SOLUTION") == solved:
            yield line
    if region:
        raise ValueError(f"{begin.format(region)!r} is not closed")


def _inline(line: str) -> str:
    """A `# dgm: inline` import replaced by the source of what it imports (see the module docstring)."""
    match = _INLINE.match(line)
    if match is None:
        return line
    module = importlib.import_module(f"reference_solutions.{match['module']}")
    names = [name.strip() for name in match["names"].split(",")]
    return "\n\n\n".join(inspect.getsource(getattr(module, name)).rstrip() for name in names)
