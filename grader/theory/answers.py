"""The theory stage: find the answers in a notebook's markdown, and grade each against its key.

Answers live in fenced blocks of a `theory` markdown cell (see docs/internals.md):

    ```answer
    t3a: 1 - (1 - eps)**m
    ```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from grader.errors import AssignmentError
from grader.theory.evaluate import answers_equivalent
from grader.theory.parse import parse_expression
from grader.theory.registry import TheoryParseError, check_symbols, shorten
from grader.theory.worker import SYMBOLIC_TIMEOUT_S

_ANSWER_LINE = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z0-9_]*)\s*[:=]\s*(?P<value>.*?)\s*$")
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n]*?)\s*$")


@dataclass(frozen=True)
class ExtractedAnswers:
    """The answers found in a notebook's markdown, and what looked wrong on the way."""

    answers: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def extract_answers(markdown_sources: Iterable[str]) -> ExtractedAnswers:
    """Collect `key: expression` lines from every ```` ```answer ```` fence, in order.

    Fences follow CommonMark: backticks or tildes, three or more, closed by a fence of the same
    character at least as long. Answer-looking lines inside any other fence (```` ```python ````,
    a ```` ````markdown ```` block quoting an example) are ignored. A key given twice keeps its
    last value, with a warning; an empty value counts as not answered.
    """
    answers: dict[str, str] = {}
    warnings: list[str] = []
    for cell_no, source in enumerate(markdown_sources):
        for block_no, lines in enumerate(_answer_blocks(source, warnings, cell_no)):
            for _, line in lines:
                if not line.strip() or line.strip().startswith("#"):
                    continue
                match = _ANSWER_LINE.match(line)
                if match is None:
                    warnings.append(
                        f"theory cell {cell_no + 1}, answer block {block_no + 1}: ignored line "
                        f"{shorten(line.strip())!r} (expected 'key: expression')"
                    )
                    continue
                key, value = match["key"], match["value"]
                if not value:
                    continue
                if key in answers:
                    warnings.append(f"answer {key} is given more than once; the last one is graded")
                answers[key] = value
    return ExtractedAnswers(answers=answers, warnings=warnings)


def fill_answers(source: str, values: Mapping[str, str]) -> str:
    """`source` with every unanswered `key:` line of its answer blocks completed as `key: values[key]`.

    Raises `KeyError` for a key that `values` lacks and `ValueError` for a line that already has an
    answer (keys are written once, in the rubric; `dgm-grader assign` fills the solved notebook's).
    """
    lines = source.splitlines(keepends=True)
    for block in _answer_blocks(source, [], 0):
        for line_no, text in block:
            match = _ANSWER_LINE.match(text)
            if match is None:
                continue
            if match["value"]:
                raise ValueError(f"answer {match['key']} has a value ({match['value']!r}); write only 'key:'")
            line = lines[line_no]
            ending = line[len(line.rstrip("\r\n")) :]
            lines[line_no] = f"{line.rstrip()[:-1].rstrip()}: {values[match['key']]}{ending}"
    return "".join(lines)


def _answer_blocks(source: str, warnings: list[str], cell_no: int) -> list[list[tuple[int, str]]]:
    """The lines of each answer block, as (line number in `source`, text without the fence's indent)."""
    blocks: list[list[tuple[int, str]]] = []
    fence: str | None = None
    indent = ""
    current: list[tuple[int, str]] | None = None
    for line_no, line in enumerate(source.splitlines()):
        if fence is None:
            match = _FENCE_OPEN.match(line)
            if match is None:
                continue
            fence, indent = match["fence"], match["indent"]
            info = match["info"].split()
            current = [] if info and info[0].lower() == "answer" else None
            continue
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            if current is not None:
                blocks.append(current)
            fence, current = None, None
            continue
        if current is not None:
            current.append((line_no, line[len(indent) :] if line.startswith(indent) else line.lstrip()))
    if fence is not None and current is not None:
        warnings.append(f"theory cell {cell_no + 1}: an answer block is not closed with {fence}")
        blocks.append(current)
    return blocks


def grade_answer(
    text: str | None,
    key: str,
    *,
    answer_id: str,
    symbols: Iterable[str],
    rtol: float = 1e-6,
    domain: Mapping[str, tuple[float, float]] | None = None,
    timeout_s: float | None = SYMBOLIC_TIMEOUT_S,
) -> tuple[bool, str]:
    """Grade one answer: `(correct, message for the student)`. The message never shows the key.

    A key that does not parse is a broken rubric and raises `AssignmentError`. `timeout_s` bounds
    the symbolic comparison (see `answers_equivalent`).
    """
    names = check_symbols(symbols)
    try:
        key_expr = parse_expression(key, names)
    except TheoryParseError as exc:
        raise AssignmentError(f"the key of answer {answer_id} does not parse: {exc}") from exc
    if text is None or not text.strip():
        return False, f"missing answer {answer_id}"
    try:
        student_expr = parse_expression(text, names)
    except TheoryParseError as exc:
        return False, f"could not parse answer {answer_id}: {exc}"
    if answers_equivalent(student_expr, key_expr, symbols=names, rtol=rtol, domain=domain, timeout_s=timeout_s):
        return True, f"answer {answer_id} is equivalent to the expected expression"
    return False, f"answer {answer_id} is not equivalent to the expected expression"
