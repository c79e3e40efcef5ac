"""Theory answers: extract them from markdown, parse them safely, compare them with the key.

A student's answer is an untrusted string. It is never given to `eval`, `exec`, `sympify` or
`parse_expr`: `parse_expression` reads it with `ast.parse(mode="eval")` and builds the sympy tree
itself, unevaluated, from a short whitelist of node types, names and functions. Every step is
bounded so that a hostile answer fails fast instead of hanging the host: text length, AST size and
depth, exponent and number sizes at parse time; the comparison evaluates numbers with our own tree
walker (no code generation) and runs sympy's symbolic step in a worker process with a timeout.

Answers live in fenced blocks of a `theory` markdown cell (see docs/internals.md):

    ```answer
    t3a: 1 - (1 - eps)**m
    ```
"""

from __future__ import annotations

import ast
import atexit
import cmath
import logging
import math
import multiprocessing
import pickle
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess

import sympy

from grader.errors import AssignmentError, GraderError

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 500
MAX_AST_NODES = 300
MAX_AST_DEPTH = 40
MAX_EXPONENT = 1000.0
MAX_MAGNITUDE = 1e300
MAX_DIGITS = 5000.0
MAX_EXPANDED_TERMS = 500
MAX_CANCEL_DEGREE = 24
DEFAULT_DOMAIN = (0.1, 0.9)
N_POINTS = 16
SYMBOLIC_TIMEOUT_S = 5.0

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ANSWER_LINE = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z0-9_]*)\s*[:=]\s*(?P<value>.*?)\s*$")
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n]*?)\s*$")


class TheoryParseError(GraderError):
    """A theory answer is not an expression the grader accepts (syntax, names, size)."""


# --------------------------------------------------------------------------- extraction


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
            for line in lines:
                if not line.strip() or line.strip().startswith("#"):
                    continue
                match = _ANSWER_LINE.match(line)
                if match is None:
                    warnings.append(
                        f"theory cell {cell_no + 1}, answer block {block_no + 1}: ignored line "
                        f"{_shorten(line.strip())!r} (expected 'key: expression')"
                    )
                    continue
                key, value = match["key"], match["value"]
                if not value:
                    continue
                if key in answers:
                    warnings.append(f"answer {key} is given more than once; the last one is graded")
                answers[key] = value
    return ExtractedAnswers(answers=answers, warnings=warnings)


def _answer_blocks(source: str, warnings: list[str], cell_no: int) -> list[list[str]]:
    blocks: list[list[str]] = []
    fence: str | None = None
    indent = ""
    current: list[str] | None = None
    for line in source.splitlines():
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
            current.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
    if fence is not None and current is not None:
        warnings.append(f"theory cell {cell_no + 1}: an answer block is not closed with {fence}")
        blocks.append(current)
    return blocks


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- parsing

_FUNCTIONS: dict[str, tuple[int, int, Callable[..., sympy.Expr]]] = {
    # name: (min args, max args, builder)
    "sqrt": (1, 1, lambda a: sympy.Pow(a, sympy.Rational(1, 2), evaluate=False)),
    "exp": (1, 1, lambda a: sympy.exp(a, evaluate=False)),
    "log": (1, 2, lambda a, b=None: _log(a, b)),
    "ln": (1, 1, lambda a: sympy.log(a, evaluate=False)),
    "sin": (1, 1, lambda a: sympy.sin(a, evaluate=False)),
    "cos": (1, 1, lambda a: sympy.cos(a, evaluate=False)),
    "tan": (1, 1, lambda a: sympy.tan(a, evaluate=False)),
    "asin": (1, 1, lambda a: sympy.asin(a, evaluate=False)),
    "acos": (1, 1, lambda a: sympy.acos(a, evaluate=False)),
    "atan": (1, 1, lambda a: sympy.atan(a, evaluate=False)),
    "sinh": (1, 1, lambda a: sympy.sinh(a, evaluate=False)),
    "cosh": (1, 1, lambda a: sympy.cosh(a, evaluate=False)),
    "tanh": (1, 1, lambda a: sympy.tanh(a, evaluate=False)),
    "gamma": (1, 1, lambda a: sympy.gamma(a, evaluate=False)),
    "abs": (1, 1, lambda a: sympy.Abs(a, evaluate=False)),
    "min": (2, 8, lambda *a: sympy.Min(*a, evaluate=False)),
    "max": (2, 8, lambda *a: sympy.Max(*a, evaluate=False)),
}


# Complex-valued versions of the functions, used only to bound the size of constant subexpressions.
def _real_only(fn: Callable[..., float]) -> Callable[..., complex]:
    def wrapped(*args: complex) -> complex:
        if any(z.imag for z in args):
            raise TheoryParseError(f"{fn.__name__}() of a non-real number is not supported")
        return complex(fn(*(z.real for z in args)))

    return wrapped


_APPROX_FUNCTIONS: dict[str, Callable[..., complex]] = {
    "sqrt": cmath.sqrt,
    "exp": cmath.exp,
    "log": lambda a, b=None: cmath.log(a) if b is None else cmath.log(a) / cmath.log(b),
    "ln": cmath.log,
    "sin": cmath.sin,
    "cos": cmath.cos,
    "tan": cmath.tan,
    "asin": cmath.asin,
    "acos": cmath.acos,
    "atan": cmath.atan,
    "sinh": cmath.sinh,
    "cosh": cmath.cosh,
    "tanh": cmath.tanh,
    "gamma": _real_only(math.gamma),
    "abs": lambda a: complex(abs(a)),
    "min": _real_only(min),
    "max": _real_only(max),
}

_CONSTANTS: dict[str, tuple[sympy.Expr, float]] = {
    "pi": (sympy.pi, math.pi),
    "e": (sympy.E, math.e),
    "E": (sympy.E, math.e),
    "oo": (sympy.oo, math.inf),
    "inf": (sympy.oo, math.inf),
    "infty": (sympy.oo, math.inf),
}

# Spellings of the same Greek letter; a name is tried as written first, then its aliases in order.
_ALIASES: dict[str, tuple[str, ...]] = {
    "varepsilon": ("epsilon", "eps"),
    "epsilon": ("eps", "varepsilon"),
    "eps": ("epsilon", "varepsilon"),
    "varphi": ("phi",),
    "phi": ("varphi",),
    "vartheta": ("theta",),
    "theta": ("vartheta",),
    "lam": ("lmbda", "lambda_"),
}

_UNICODE = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "∞": " oo ", "π": " pi "})

_GREEK = (
    *("alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta"),
    *("iota", "kappa", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi"),
    *("omega", "Gamma", "Delta", "Theta", "Lambda", "Sigma", "Phi", "Psi", "Omega"),
)

_LATEX_WORDS = {
    "cdot": "*",
    "times": "*",
    "div": "/",
    "left": "",
    "right": "",
    "infty": " oo ",
    "pi": " pi ",
    ",": " ",
    ";": " ",
    "!": "",
    " ": " ",
    "quad": " ",
    **{f: f" {f}" for f in ("exp", "log", "ln", "sin", "cos", "tan", "sinh", "cosh", "tanh")},
    **{f"arc{f}": f" a{f}" for f in ("sin", "cos", "tan")},
    "lambda": " lam ",  # `lambda` is a Python keyword
    **{g: f" {g} " for g in _GREEK},
}


def parse_expression(text: str, symbols: Iterable[str]) -> sympy.Expr:
    """Parse a plain-math answer (`1 - (1 - eps)^m`, `sqrt(2)/2`) into a sympy expression.

    Accepted: int and float literals, the names in `symbols`, the constants pi, e/E and oo/inf, the
    functions in `_FUNCTIONS` (positional arguments only), `+ - * / ** ^` and unary `+ -`. A few LaTeX
    forms are translated first (`\\frac{a}{b}`, `\\sqrt{x}`, `\\cdot`, `\\left(`, Greek letters as
    names, braces as parentheses). Anything else raises `TheoryParseError` naming what was refused.
    """
    allowed = _check_symbols(symbols)
    if not isinstance(text, str):
        raise TheoryParseError(f"expected the answer as text, got {type(text).__name__}")
    if len(text) > MAX_ANSWER_CHARS:
        raise TheoryParseError(f"the answer is {len(text)} characters long; the limit is {MAX_ANSWER_CHARS}")
    source = _normalise(text)
    if not source.strip():
        raise TheoryParseError("the answer is empty")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        hint = " (write products explicitly, e.g. 2*m)" if re.search(r"\d\s*[A-Za-z(]", source) else ""
        raise TheoryParseError(f"invalid syntax in {_shorten(text.strip())!r}: {exc.msg}{hint}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise TheoryParseError(f"the answer cannot be read: {type(exc).__name__}") from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_AST_NODES:
        raise TheoryParseError(f"the expression is too large ({n_nodes} syntax nodes; limit {MAX_AST_NODES})")
    return _Builder(allowed).build(tree.body, depth=0).expr


def _check_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    if isinstance(symbols, str):
        raise TypeError("symbols must be an iterable of names, not one string")
    names = tuple(dict.fromkeys(symbols))
    for name in names:
        if not _KEY.fullmatch(name) or name in _FUNCTIONS:
            raise AssignmentError(f"{name!r} cannot be an answer symbol")
    return names


def _normalise(text: str) -> str:
    text = text.translate(_UNICODE).strip()
    for fence in ("$$", "$"):
        if len(text) > 2 * len(fence) and text.startswith(fence) and text.endswith(fence):
            text = text[len(fence) : -len(fence)]
            break
    if "\\" in text or "{" in text:
        text = _latex_to_python(text)
    return text.replace("^", "**")


def _latex_to_python(text: str) -> str:
    r"""Translate the LaTeX a student is likely to paste: \frac, \sqrt, \cdot, braces, Greek names."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            word_match = re.match(r"[A-Za-z]+|.", text[i + 1 :])
            word = word_match.group(0) if word_match else ""
            i += 1 + len(word)
            if word in ("frac", "dfrac", "tfrac"):
                num, i = _latex_group(text, i)
                den, i = _latex_group(text, i)
                out.append(f"(({_latex_to_python(num)})/({_latex_to_python(den)}))")
            elif word == "sqrt":
                root = None
                if text[i:].lstrip().startswith("["):
                    i = text.index("[", i)
                    close = text.find("]", i)
                    if close < 0:
                        raise TheoryParseError("unclosed [ after \\sqrt")
                    root, i = text[i + 1 : close], close + 1
                arg, i = _latex_group(text, i)
                arg = _latex_to_python(arg)
                out.append(f"sqrt({arg})" if root is None else f"(({arg})**(1/({_latex_to_python(root)})))")
            elif word in _LATEX_WORDS:
                out.append(_LATEX_WORDS[word])
            else:
                raise TheoryParseError(f"the LaTeX command \\{word} is not supported; write plain math")
        elif ch == "{":
            out.append("(")
            i += 1
        elif ch == "}":
            out.append(")")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _latex_group(text: str, i: int) -> tuple[str, int]:
    """Read one LaTeX argument at `text[i:]`: a balanced `{...}` group or a single character."""
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        raise TheoryParseError("a LaTeX command is missing its argument")
    if text[i] != "{":
        return text[i], i + 1
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j], j + 1
    raise TheoryParseError("unbalanced braces in the LaTeX answer")


def _log(a: sympy.Expr, base: sympy.Expr | None) -> sympy.Expr:
    if base is None:
        return sympy.log(a, evaluate=False)
    # log_b(a) = ln a / ln b, kept as a plain quotient so that expand and _evaluate need no 2-arg log.
    return sympy.Mul(
        sympy.log(a, evaluate=False),
        sympy.Pow(sympy.log(base, evaluate=False), -1, evaluate=False),
        evaluate=False,
    )


@dataclass(frozen=True)
class _Node:
    """A built subexpression with what bounds its cost.

    `approx` is the complex value of a constant subexpression (None once a symbol is involved) and
    `digits` an upper bound on the decimal digits of the exact numbers `sympy.expand` can produce
    from it. Both are checked before sympy sees the tree: `9**9**9**9`, `gamma(gamma(100))` and
    `((m*10**300)**1000)**1000` are refused here instead of hanging `expand` later.
    """

    expr: sympy.Expr
    approx: complex | None
    digits: float


class _Builder:
    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols = {name: sympy.Symbol(name) for name in symbols}

    def refuse(self, what: str) -> TheoryParseError:
        return TheoryParseError(f"{what} is not allowed in an answer; use numbers, + - * / ^, parentheses and names")

    def build(self, node: ast.AST, depth: int) -> _Node:
        if depth > MAX_AST_DEPTH:
            raise TheoryParseError(f"the expression is nested too deeply (limit {MAX_AST_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            return self.constant(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            inner = self.build(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return inner
            expr = sympy.Mul(sympy.S.NegativeOne, inner.expr, evaluate=False)
            return _Node(expr, None if inner.approx is None else -inner.approx, inner.digits)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.refuse(_describe(node))

    def constant(self, value: object) -> _Node:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.refuse(f"the literal {_shorten(repr(value), 30)}")
        # abs() first: math.isfinite(10**400) would raise OverflowError converting to float.
        if abs(value) > MAX_MAGNITUDE or not math.isfinite(value):
            raise TheoryParseError("a number in the answer is too large")
        if isinstance(value, int):
            return _Node(sympy.Integer(value), complex(value), _digits(value))
        # A decimal literal means its decimal value: 0.1 is 1/10, so `0.5` and `1/2` are the same answer.
        frac = Fraction(repr(value))
        expr = sympy.Rational(frac.numerator, frac.denominator)
        return _Node(expr, complex(value), _digits(frac.numerator) + _digits(frac.denominator))

    def name(self, name: str) -> _Node:
        for candidate in (name, *_ALIASES.get(name, ())):
            if candidate in self.symbols:
                return _Node(self.symbols[candidate], None, 1.0)
        if name in _CONSTANTS:
            expr, value = _CONSTANTS[name]
            return _Node(expr, complex(value), 1.0)
        if name in _FUNCTIONS:
            raise TheoryParseError(f"{name} is a function; call it with parentheses, e.g. {name}(x)")
        allowed = ", ".join(sorted(self.symbols)) or "(no symbols: the answer is a number)"
        raise TheoryParseError(
            f"name {_shorten(name, 30)!r} is not allowed; use one of: {allowed} "
            f"(constants: pi, e, oo; functions: {', '.join(_FUNCTIONS)})"
        )

    def binop(self, node: ast.BinOp, depth: int) -> _Node:
        op = node.op
        if not isinstance(op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow):
            raise self.refuse(f"the operator {_OPERATORS.get(type(op), type(op).__name__)}")
        a, b = self.build(node.left, depth + 1), self.build(node.right, depth + 1)
        digits = a.digits + b.digits
        if isinstance(op, ast.Pow) and b.approx is not None:
            if not abs(b.approx) <= MAX_EXPONENT:  # written so that NaN is refused too
                raise TheoryParseError(f"the exponent {_show(b.approx)} is too large (limit {MAX_EXPONENT:g})")
            digits = a.digits * max(1.0, abs(b.approx)) + b.digits
        if not digits <= MAX_DIGITS:
            raise TheoryParseError("the numbers in the answer grow too large")
        approx = None if a.approx is None or b.approx is None else _approx_binop(op, a.approx, b.approx)
        one = sympy.S.NegativeOne
        if isinstance(op, ast.Add):
            expr = sympy.Add(a.expr, b.expr, evaluate=False)
        elif isinstance(op, ast.Sub):
            expr = sympy.Add(a.expr, sympy.Mul(one, b.expr, evaluate=False), evaluate=False)
        elif isinstance(op, ast.Mult):
            expr = sympy.Mul(a.expr, b.expr, evaluate=False)
        elif isinstance(op, ast.Div):
            expr = sympy.Mul(a.expr, sympy.Pow(b.expr, one, evaluate=False), evaluate=False)
        else:
            expr = sympy.Pow(a.expr, b.expr, evaluate=False)
        return _Node(expr, approx, digits)

    def call(self, node: ast.Call, depth: int) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(_describe(node.func))
        name = node.func.id
        if name not in _FUNCTIONS:
            raise TheoryParseError(
                f"function {_shorten(name, 30)!r} is not allowed; use one of: {', '.join(_FUNCTIONS)}"
            )
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise TheoryParseError(f"{name}() takes positional arguments only")
        lo, hi, make = _FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise TheoryParseError(f"{name}() takes {want} argument(s), got {len(node.args)}")
        args = [self.build(arg, depth + 1) for arg in node.args]
        approx = None
        if all(arg.approx is not None for arg in args):
            approx = _approx_call(name, [arg.approx for arg in args])  # type: ignore[misc]
        digits = sum(arg.digits for arg in args)
        if name == "gamma" and approx is not None and cmath.isfinite(approx):  # (n-1)!: ~n log10 n digits
            digits += abs(approx) * math.log10(abs(approx) + 2)
        if not digits <= MAX_DIGITS:
            raise TheoryParseError("the numbers in the answer grow too large")
        return _Node(make(*(arg.expr for arg in args)), approx, digits)


_OPERATORS = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|"}
_OPERATORS |= {ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "xor"}


def _digits(n: int) -> float:
    return math.log10(abs(n) + 1) + 1


def _show(z: complex) -> str:
    return f"{z.real:g}" if z.imag == 0 else f"{z:g}"


def _approx_binop(op: ast.operator, a: complex, b: complex) -> complex:
    try:
        if isinstance(op, ast.Add):
            value = a + b
        elif isinstance(op, ast.Sub):
            value = a - b
        elif isinstance(op, ast.Mult):
            value = a * b
        elif isinstance(op, ast.Div):
            value = a / b
        else:
            value = a**b
    except ZeroDivisionError:
        raise TheoryParseError("the answer divides by zero") from None
    except OverflowError:
        raise TheoryParseError("a number in the answer is too large") from None
    return _bounded(value, a, b)


def _approx_call(name: str, args: list[complex]) -> complex:
    try:
        value = _APPROX_FUNCTIONS[name](*args)
    except OverflowError:
        raise TheoryParseError(f"{name}() of a number this large is too large") from None
    except (ValueError, ZeroDivisionError):  # a pole or outside the domain: log(0), gamma(0)
        return complex(math.nan, math.nan)
    return _bounded(value, *args)


def _bounded(value: complex, *inputs: complex) -> complex:
    def infinite(z: complex) -> bool:
        return math.isinf(z.real) or math.isinf(z.imag)

    if infinite(value) and not any(infinite(z) for z in inputs):
        raise TheoryParseError("a number in the answer is too large")
    if not infinite(value) and abs(value) > MAX_MAGNITUDE:
        raise TheoryParseError("a number in the answer is too large")
    return value


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access (.)",
        ast.Subscript: "indexing ([])",
        ast.Lambda: "lambda",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.JoinedStr: "an f-string",
        ast.Compare: "a comparison",
        ast.BoolOp: "and/or",
        ast.IfExp: "if/else",
        ast.NamedExpr: "assignment (:=)",
        ast.Tuple: "a tuple (a comma outside a function call)",
        ast.List: "a list",
        ast.Dict: "a dict",
        ast.Set: "a set",
        ast.Starred: "*",
        ast.UnaryOp: "the operator ~ / not",
    }
    for kind, text in kinds.items():
        if isinstance(node, kind):
            return text
    return f"{type(node).__name__}"


# --------------------------------------------------------------------------- comparison


def answers_equivalent(
    student: sympy.Expr,
    key: sympy.Expr,
    *,
    symbols: Iterable[str],
    rtol: float = 1e-6,
    domain: Mapping[str, tuple[float, float]] | None = None,
    n_points: int = N_POINTS,
    seed: int = 0,
    timeout_s: float | None = SYMBOLIC_TIMEOUT_S,
) -> bool:
    """Whether two parsed answers denote the same function of `symbols`.

    Symbolically equal (expand, then cancel, of the difference; symbols whose domain lies in
    (0, inf) are taken positive) or numerically equal: both sides evaluated at `n_points` seeded
    random points of `domain` (default `DEFAULT_DOMAIN` per symbol) agree within `rtol`, with
    infinities compared exactly (`oo` equals only `oo`).

    sympy evaluates while it simplifies and cannot be interrupted, and a crafted constant (nested
    radicals that cancel, `3**(1e-300)`) can send its assumption system into minimal-polynomial
    computations that never end. So the symbolic step runs in a worker process killed after
    `timeout_s` seconds (None: in this process, for trusted expressions), and the numerical step
    walks the unevaluated tree with Python's complex arithmetic (`_evaluate`), which always ends.
    """
    names = _check_symbols(symbols)
    bounds: dict[str, tuple[float, float]] = {}
    for name in names:
        lo, hi = (domain or {}).get(name, DEFAULT_DOMAIN)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise AssignmentError(f"domain of {name} must be a finite interval lo <= hi, got {(lo, hi)}")
        bounds[name] = (float(lo), float(hi))
    extra = {str(s) for s in student.free_symbols | key.free_symbols} - set(names)
    if extra:
        raise AssignmentError(f"expressions use symbols outside {list(names)}: {sorted(extra)}")

    symbolic: bool | None
    if not _worth_a_symbolic_check(student, key):
        symbolic = False
    elif timeout_s is None:
        symbolic = _symbolically_equal(student, key, bounds)
    else:
        symbolic = _WORKER.call((student, key, bounds), timeout_s)
    return bool(symbolic) or _numerically_equal(student, key, names, bounds, rtol, n_points, seed)


def _symbolically_equal(student: sympy.Expr, key: sympy.Expr, bounds: Mapping[str, tuple[float, float]]) -> bool:
    """`expand`, then `cancel` if there are denominators, of the difference; False when unsure.

    Both steps are gated by size estimates as well (a large expansion, or a rational function of
    high degree, whose polynomial gcds are slow, is left to the numerical check).
    """
    infinities = (sympy.oo, -sympy.oo, sympy.zoo, sympy.nan)
    if student.has(*infinities) or key.has(*infinities):
        return False  # compared exactly by the numerical check
    diff = sympy.Add(student, sympy.Mul(sympy.S.NegativeOne, key, evaluate=False), evaluate=False)
    if _expanded_terms(diff) > MAX_EXPANDED_TERMS:
        logger.debug("skipping the symbolic check: expansion too large")
        return False
    typed = {
        sympy.Symbol(name): sympy.Symbol(name, positive=True) if lo > 0 else sympy.Symbol(name, real=True)
        for name, (lo, _) in bounds.items()
    }
    try:
        expanded = sympy.expand(diff.xreplace(typed))
        if expanded == 0:
            return True
        powers = [p for p in expanded.atoms(sympy.Pow) if p.exp.is_Integer]
        if not any(p.exp < 0 for p in powers):
            return False  # a polynomial in its generators: expand is already canonical
        if max(abs(int(p.exp)) for p in powers) > MAX_CANCEL_DEGREE or sympy.count_ops(expanded) > 200:
            return False
        return bool(sympy.cancel(sympy.together(expanded)) == 0)
    except (sympy.PolynomialError, TypeError, ValueError, RecursionError, ZeroDivisionError) as exc:
        logger.debug("symbolic check gave up: %s", exc)
        return False


def _worth_a_symbolic_check(student: sympy.Expr, key: sympy.Expr) -> bool:
    """Cheap checks on the unevaluated trees, so that hopeless cases do not wait for the timeout."""
    diff = sympy.Add(student, sympy.Mul(sympy.S.NegativeOne, key, evaluate=False), evaluate=False)
    if _expanded_terms(diff) > MAX_EXPANDED_TERMS:
        return False
    # Huge exact constants (from 1e300 or 10**-300) make sympy's evaluation crawl; numbers do fine.
    return all(max(abs(int(r.p)), int(r.q)) < 10**30 for r in diff.atoms(sympy.Rational))


def _expanded_terms(expr: sympy.Basic) -> float:
    """An upper estimate of the size of `sympy.expand(expr)`: its terms, weighed by exponent size."""
    if expr.is_Atom:
        return 1.0
    if isinstance(expr, sympy.Add):
        return sum(_expanded_terms(arg) for arg in expr.args)
    if isinstance(expr, sympy.Mul):
        return math.prod(_expanded_terms(arg) for arg in expr.args)
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        k = _expanded_terms(base)
        inner = max(k, _expanded_terms(exponent))
        if exponent.is_Integer and k > 1:
            # (t_1 + ... + t_k)^n has C(n + k - 1, n) monomials; in logs, since both can be large.
            n = abs(int(exponent))
            if n > MAX_EXPONENT or not math.isfinite(k):
                return math.inf
            log_terms = math.lgamma(n + k) - math.lgamma(n + 1) - math.lgamma(k)
            # Coefficients grow with n too (binomials of n digits): weigh the terms by that.
            return max(inner, math.exp(min(log_terms, 700.0)) * (1 + n / 8))
        return inner
    # Functions are atoms for the outer expansion; expand(deep=True) still expands their arguments.
    return max((_expanded_terms(arg) for arg in expr.args), default=1.0)


def _numerically_equal(
    student: sympy.Expr,
    key: sympy.Expr,
    names: tuple[str, ...],
    bounds: Mapping[str, tuple[float, float]],
    rtol: float,
    n_points: int,
    seed: int,
) -> bool:
    rng = random.Random(seed)
    variables = [sympy.Symbol(name) for name in names]
    pairs = []
    for _ in range(n_points if variables else 1):
        env = {v: complex(rng.uniform(*bounds[v.name])) for v in variables}
        pairs.append((_evaluate(student, env), _evaluate(key, env)))
    finite = [(g, w) for g, w in pairs if cmath.isfinite(g) and cmath.isfinite(w)]
    for g, w in pairs:
        if (g, w) in finite or (cmath.isnan(g) and cmath.isnan(w)):
            continue  # undefined on both sides at this point (a pole, an overflow): no evidence
        if g != w:
            return False  # one side infinite or undefined where the other is not, or another infinity
    if not finite:
        # Only infinities left: equal if they matched exactly at a point where both were defined.
        return any(not cmath.isnan(g) for g, _ in pairs) and not variables
    if len(finite) < max(1, len(pairs) // 2):
        logger.debug("numeric check: only %d of %d points are finite", len(finite), len(pairs))
        return False
    floor = 1e-9 * max(abs(w) for _, w in finite)  # so that values at a zero of the key compare sensibly
    return all(abs(g - w) <= rtol * max(abs(g), abs(w), floor) for g, w in finite)


_NAN = complex(math.nan, math.nan)


def _real_function(fn: Callable[..., float]) -> Callable[..., complex]:
    def wrapped(*args: complex) -> complex:
        if any(z.imag for z in args):
            return _NAN
        return complex(fn(*(z.real for z in args)))

    return wrapped


_EVAL_FUNCTIONS: dict[type, Callable[..., complex]] = {
    sympy.exp: cmath.exp,
    sympy.log: cmath.log,
    sympy.sin: cmath.sin,
    sympy.cos: cmath.cos,
    sympy.tan: cmath.tan,
    sympy.asin: cmath.asin,
    sympy.acos: cmath.acos,
    sympy.atan: cmath.atan,
    sympy.sinh: cmath.sinh,
    sympy.cosh: cmath.cosh,
    sympy.tanh: cmath.tanh,
    sympy.gamma: _real_function(math.gamma),
    sympy.Abs: lambda z: complex(abs(z)),
    sympy.Min: _real_function(min),
    sympy.Max: _real_function(max),
}


def _evaluate(expr: sympy.Basic, env: Mapping[sympy.Symbol, complex]) -> complex:
    """The value of a parsed expression at a point, with Python complex arithmetic.

    Walks the tree that `parse_expression` built (no code generation, no sympy evaluation, so no
    assumption queries); overflow, poles and domain errors give NaN. Infinities stay infinite.
    """
    try:
        return _eval_node(expr, env)
    except (OverflowError, ZeroDivisionError, ValueError):
        return _NAN


def _eval_node(expr: sympy.Basic, env: Mapping[sympy.Symbol, complex]) -> complex:
    if isinstance(expr, sympy.Symbol):
        return env[expr]
    if expr is sympy.S.Infinity:
        return complex(math.inf, 0)
    if expr is sympy.S.NegativeInfinity:
        return complex(-math.inf, 0)
    if expr is sympy.S.Pi:
        return complex(math.pi)
    if expr is sympy.S.Exp1:
        return complex(math.e)
    if isinstance(expr, sympy.Rational):
        return complex(float(Fraction(int(expr.p), int(expr.q))))
    if isinstance(expr, sympy.Float):
        return complex(float(expr))
    args = [_eval_node(arg, env) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        return sum(args, complex(0))
    if isinstance(expr, sympy.Mul):
        return math.prod(args, start=complex(1))
    if isinstance(expr, sympy.Pow):
        base, exponent = args
        if exponent.imag == 0 and exponent.real == int(exponent.real) and abs(exponent.real) <= MAX_EXPONENT:
            return base ** int(exponent.real)  # exact integer powers, also of negative bases
        return base**exponent
    fn = _EVAL_FUNCTIONS.get(type(expr))
    if fn is None:
        return _NAN  # zoo, nan, or a node this parser never builds
    return fn(*args)


class _SymbolicWorker:
    """A long-lived child process that runs `_symbolically_equal`, killed when it overruns.

    One per host process, forked on first use and reused, so its sympy caches stay warm; a call
    that overruns its timeout kills it, and the next call starts a fresh one. Calls from several
    threads are serialised.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def call(self, args: tuple[object, ...], timeout_s: float) -> bool | None:
        with self._lock:
            try:
                conn = self._connection()
                conn.send_bytes(pickle.dumps(args))
                if conn.poll(timeout_s):
                    return bool(conn.recv())
                logger.warning("symbolic comparison overran %.1f s; its process is killed", timeout_s)
            except (OSError, EOFError, ValueError, AssertionError) as exc:
                # AssertionError: multiprocessing refuses children of daemonic processes.
                logger.warning("symbolic comparison process failed: %s", exc)
            self._stop()
            return None

    def _connection(self) -> Connection:
        if self._proc is None or not self._proc.is_alive() or self._conn is None:
            self._stop()
            ctx = _process_context()
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child,), name="dgm-theory-sympy", daemon=False)
            proc.start()
            child.close()
            self._proc, self._conn = proc, parent
        return self._conn

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None


def _worker_main(conn: Connection) -> None:
    # Exits when the parent goes away (EOF on the pipe), so an orphaned worker never lingers.
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            # Unpickling rebuilds (and so evaluates) the expressions: it belongs inside the guard.
            student, key, bounds = pickle.loads(message)
            result = _symbolically_equal(student, key, bounds)
        except Exception:  # any failure only means "no symbolic answer" (no logging: see fork note)
            result = False
        conn.send(result)


def _process_context() -> ForkContext | SpawnContext:
    # fork: the worker starts in milliseconds with sympy already imported, and the host's
    # __main__ is not re-imported (spawn and forkserver run an unguarded script's top level again).
    # If another thread held a lock at fork time the worker may hang; the timeout covers that too.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


_WORKER = _SymbolicWorker()
atexit.register(_WORKER._stop)


# --------------------------------------------------------------------------- grading


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
    names = _check_symbols(symbols)
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
