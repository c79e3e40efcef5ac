"""Theory answers: extract them from markdown, parse them safely (plain or LaTeX), compare them with the key.

`answers` is the stage the pipeline calls; `parse` and `latex` read an answer into sympy without
eval, `evaluate` compares two answers, `worker` runs sympy's symbolic step in a time-limited process,
and `registry` is the one list of what an answer may contain.
"""

from grader.theory.answers import ExtractedAnswers, extract_answers, grade_answer
from grader.theory.evaluate import answers_equivalent
from grader.theory.parse import parse_expression
from grader.theory.registry import MAX_ANSWER_CHARS, TheoryParseError

__all__ = [
    "MAX_ANSWER_CHARS",
    "ExtractedAnswers",
    "TheoryParseError",
    "answers_equivalent",
    "extract_answers",
    "grade_answer",
    "parse_expression",
]
