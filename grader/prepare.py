"""Stage 1, prepare: validate the upload and build the grading notebook from the template.

Locked cells always come from the template; the student's `solution` / `theory` / `experiment` cells
are matched by `metadata.dgm.id`, then by the nbformat cell id, then by position among cells with the
same tag. Cells the student added are kept where they were. Experiment cells keep their submitted
outputs and are tagged so the runner skips them.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from warnings import catch_warnings, simplefilter

import nbformat
import numpy as np
from nbformat import NotebookNode
from nbformat.v4.rwbase import rejoin_lines
from nbformat.validator import normalize

from grader.errors import InvalidSubmission

MAX_NOTEBOOK_BYTES = 32 * 2**20
MAX_CELLS = 2000
STUDENT_TAGS = ("solution", "theory", "experiment")
SKIP_TAG = "skip-execution"  # nbclient's default skip_cells_with_tag
MAX_JSON_DEPTH = 100  # real notebooks nest about 10 deep; the parser recurses, so depth is checked first
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSERS = np.frombuffer(b"]}", dtype=np.uint8)


@dataclass
class Prepared:
    notebook: NotebookNode
    answer_sources: list[str]
    warnings: list[str] = field(default_factory=list)


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in `data`, found without parsing (a parser would recurse).

    String literals are blanked first so brackets inside them do not count. Malformed input gives some
    number; the JSON parser rejects it afterwards.
    """
    bare = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    steps = np.isin(bare, _OPENERS).astype(np.int64) - np.isin(bare, _CLOSERS).astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def read_notebook(data: bytes) -> NotebookNode:
    """Parse and validate an uploaded notebook; every problem is a one-line `InvalidSubmission`."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise InvalidSubmission(
            f"notebook is {len(data) / 2**20:.1f} MiB; the limit is {MAX_NOTEBOOK_BYTES // 2**20} MiB "
            "(clear large outputs before uploading)"
        )
    if (depth := json_depth(data)) > MAX_JSON_DEPTH:
        raise InvalidSubmission(f"not a notebook: JSON nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}")
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidSubmission(f"not a notebook: the file is not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(f"not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        raise InvalidSubmission("not a notebook: expected a JSON object with 'cells' and 'nbformat'")
    if raw.get("nbformat") != 4:
        raise InvalidSubmission(f"unsupported notebook format {raw.get('nbformat')!r}; expected nbformat 4")
    if not isinstance(raw["cells"], list) or len(raw["cells"]) > MAX_CELLS:
        raise InvalidSubmission(f"notebook must have a list of at most {MAX_CELLS} cells")
    try:
        with catch_warnings():  # normalize() adds the cell ids older notebooks lack, and warns about it
            simplefilter("ignore")
            _, raw = normalize(raw)
        nb = rejoin_lines(nbformat.from_dict(raw))  # sources on disk may be lists of lines
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise InvalidSubmission(f"invalid notebook: {exc.message.splitlines()[0][:200]}") from exc
    return nb


def validate_notebook(data: bytes) -> None:
    """Raise `InvalidSubmission` when `data` cannot be graded; the server calls this on upload."""
    read_notebook(data)


def cell_kind(cell: NotebookNode) -> str:
    """`solution`, `theory`, `experiment` (the student's cells) or `locked`."""
    tags = cell.get("metadata", {}).get("tags", [])
    return next((t for t in STUDENT_TAGS if t in tags), "locked")


def cell_key(cell: NotebookNode) -> str | None:
    dgm = cell.get("metadata", {}).get("dgm", {})
    return dgm.get("id") if isinstance(dgm, dict) and isinstance(dgm.get("id"), str) else None


def _same_source(a: NotebookNode, b: NotebookNode) -> bool:
    return "\n".join(line.rstrip() for line in a.source.strip().splitlines()) == "\n".join(
        line.rstrip() for line in b.source.strip().splitlines()
    )


def _match(template: NotebookNode, sub: NotebookNode, warnings: list[str]) -> dict[int, int]:
    """Map template cell index -> submission cell index."""
    by_key: dict[str, list[int]] = {}
    for j, cell in enumerate(sub.cells):
        key = cell_key(cell)
        if key:
            by_key.setdefault(key, []).append(j)
    matched: dict[int, int] = {}
    for i, cell in enumerate(template.cells):
        key = cell_key(cell) or f"#{i}"
        found = by_key.get(key, [])
        if len(found) > 1:
            warnings.append(f"cell '{key}' appears {len(found)} times in your notebook; the first copy was graded")
        if found:
            matched[i] = found[0]
    used = set(matched.values())
    nb_ids = {c.get("id"): j for j, c in enumerate(sub.cells) if c.get("id") and j not in used}
    for i, cell in enumerate(template.cells):
        if i not in matched and cell_kind(cell) != "locked" and cell.get("id") in nb_ids:
            matched[i] = nb_ids[cell["id"]]
            used.add(matched[i])
    # Last resort for notebooks whose metadata was lost: the k-th unmatched cell with the same tag.
    for tag in STUDENT_TAGS:
        free_t = [i for i, c in enumerate(template.cells) if cell_kind(c) == tag and i not in matched]
        free_s = [j for j, c in enumerate(sub.cells) if cell_kind(c) == tag and j not in used and not cell_key(c)]
        for i, j in zip(free_t, free_s, strict=False):
            matched[i] = j
            used.add(j)
            warnings.append(f"cell '{cell_key(template.cells[i])}' was matched by position (its id was lost)")
    return matched


def prepare(submission: NotebookNode, template: NotebookNode) -> Prepared:
    """Build the grading notebook: template's locked cells, the student's own cells."""
    warnings: list[str] = []
    matched = _match(template, submission, warnings)
    sub_to_t = {j: i for i, j in matched.items()}
    # Cells the student added follow the nearest matched cell above them.
    template_keys = {cell_key(c) for c in template.cells}
    extras: dict[int, list[NotebookNode]] = {}
    anchor = -1
    for j, cell in enumerate(submission.cells):
        if j in sub_to_t:
            anchor = sub_to_t[j]
        elif cell_key(cell) is None or cell_key(cell) not in template_keys:
            extras.setdefault(anchor, []).append(cell)

    cells: list[NotebookNode] = []
    answer_sources: list[str] = []
    for added in extras.get(-1, []):
        cells.append(_added(added))
    for i, tcell in enumerate(template.cells):
        key = cell_key(tcell) or f"#{i}"
        kind = cell_kind(tcell)
        scell = submission.cells[matched[i]] if i in matched else None
        cell = copy.deepcopy(tcell)
        if kind == "locked":
            if scell is None:
                warnings.append(f"locked cell '{key}' was deleted from your notebook; the template's version was used")
            elif not _same_source(scell, tcell):
                warnings.append(f"locked cell '{key}' was edited; the template's version was used")
        elif scell is None:
            warnings.append(f"your cell '{key}' was not found; the blank template cell was graded")
        else:
            cell.source = scell.source
            if kind == "experiment" and cell.cell_type == "code":
                cell.outputs = copy.deepcopy(scell.get("outputs", []))
                cell.execution_count = scell.get("execution_count")
            if kind == "theory":
                answer_sources.append(scell.source)
        if kind == "experiment":
            cell.metadata.setdefault("tags", []).append(SKIP_TAG)
        cells.append(cell)
        for added in extras.get(i, []):
            cells.append(_added(added))
            if added.cell_type == "markdown":
                answer_sources.append(added.source)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(template.metadata))
    return Prepared(notebook=nb, answer_sources=answer_sources, warnings=warnings)


def _added(cell: NotebookNode) -> NotebookNode:
    """A cell the student added: its source only, with metadata marking it as theirs."""
    meta = {"dgm": {"id": "", "added": True}}
    if cell.cell_type == "code":
        return nbformat.v4.new_code_cell(cell.source, metadata=meta)
    if cell.cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(cell.source, metadata=meta)
    return nbformat.v4.new_raw_cell(cell.source, metadata=meta)
