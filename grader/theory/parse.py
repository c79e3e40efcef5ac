"""Parse a theory answer, plain or LaTeX, into an unevaluated sympy expression, without eval.

A student's answer is an untrusted string. It never reaches `eval`, `exec`, `sympify` or
`parse_expr`. Plain answers (`1 - (1 - eps)**m`) are read by `ast.parse(mode="eval")`, LaTeX answers
(`\\frac{1}{2}\\log(4\\pi)`) by `grader.theory.latex` into the same kind of Python syntax tree. One
builder then makes the sympy tree itself from a short whitelist of node types and the names in
`grader.theory.registry`. Every step is bounded so that a hostile answer fails fast instead of
hanging the host: text length, tree size and depth, and the exponent, digits and magnitude of every
constant subexpression, which `grader.theory.evaluate` computes as the tree is built.
"""

from __future__ import annotations

import ast
import cmath
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import sympy

from grader.theory.evaluate import evaluate
from grader.theory.latex import read_latex
from grader.theory.registry import (
    CONSTANT_NAMES,
    FUNCTION_NAMES,
    FUNCTIONS,
    MAX_ANSWER_CHARS,
    MAX_AST_DEPTH,
    MAX_AST_NODES,
    MAX_DIGITS,
    MAX_EXPONENT,
    MAX_MAGNITUDE,
    TheoryParseError,
    check_symbols,
    shorten,
    spellings,
)

_UNICODE = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "∞": " oo ", "π": " pi "})
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def parse_expression(text: str, symbols: Iterable[str]) -> sympy.Expr:
    """Parse an answer (`1 - (1 - eps)^m`, `\\frac{m}{2}\\sqrt{\\varepsilon}`) into a sympy expression.

    Accepted: numbers, the names in `symbols`, the registry's constants and functions, `+ - * / ** ^`,
    unary `+ -` and parentheses. An answer in `$...$`, or with a backslash or a brace, is read as
    LaTeX (see `grader.theory.latex`). Any other answer is read as Python syntax first and, if that is
    refused, as LaTeX, so that `2m` and `m(1 - eps)` count as products. Anything refused raises
    `TheoryParseError` naming what is not allowed.
    """
    allowed = check_symbols(symbols)
    if not isinstance(text, str):
        raise TheoryParseError(f"expected the answer as text, got {type(text).__name__}")
    if len(text) > MAX_ANSWER_CHARS:
        raise TheoryParseError(f"the answer is {len(text)} characters long; the limit is {MAX_ANSWER_CHARS}")
    source, is_latex = _normalise(text)
    if not source:
        raise TheoryParseError("the answer is empty")
    builder = _Builder(allowed)
    if is_latex:
        return builder.build_tree(read_latex(source, allowed))
    try:
        tree = _read_python(source)
    except TheoryParseError:
        # Not Python (`2m`, `x y`, `1/2m`): LaTeX reading takes implied products, or says what is wrong.
        return builder.build_tree(read_latex(source, allowed))
    try:
        return builder.build_tree(tree)
    except TheoryParseError as plain_error:
        # Python that the builder refuses: `m(1 - eps)` calls a symbol and `ab` is no name, but in
        # LaTeX both are products. Anything refused both ways is best explained in Python's terms.
        try:
            return builder.build_tree(read_latex(source, allowed))
        except TheoryParseError:
            raise plain_error from None


def _normalise(text: str) -> tuple[str, bool]:
    """The answer without pasted unicode operators or math delimiters, and whether it is LaTeX."""
    text = text.translate(_UNICODE).strip()
    for opening, closing in _MATH_DELIMITERS:
        if len(text) > len(opening) + len(closing) and text.startswith(opening) and text.endswith(closing):
            return text[len(opening) : -len(closing)].strip(), True
    return text, any(c in text for c in "\\{}")


def _read_python(source: str) -> ast.expr:
    try:
        return ast.parse(source.replace("^", "**"), mode="eval").body
    except SyntaxError as exc:
        raise TheoryParseError(f"invalid syntax in {shorten(source)!r}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise TheoryParseError(f"the answer cannot be read: {type(exc).__name__}") from None


@dataclass(frozen=True)
class _Node:
    """A built subexpression with what bounds its cost.

    `approx` is the value of a constant subexpression (None once a symbol is involved) and `digits`
    an upper bound on the decimal digits of the exact numbers `sympy.expand` can produce from it.
    Both are checked before sympy sees the tree: `9**9**9**9`, `gamma(gamma(100))` and
    `((m*10**300)**1000)**1000` are refused here instead of hanging `expand` later.
    """

    expr: sympy.Expr
    approx: complex | None
    digits: float


class _Builder:
    """Builds the sympy tree from a whitelisted Python syntax tree, node by node, unevaluated."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols = {name: sympy.Symbol(name) for name in symbols}

    def build_tree(self, tree: ast.expr) -> sympy.Expr:
        n_nodes = sum(1 for _ in ast.walk(tree))
        if n_nodes > MAX_AST_NODES:
            raise TheoryParseError(f"the expression is too large ({n_nodes} syntax nodes; limit {MAX_AST_NODES})")
        return self.build(tree, depth=0).expr

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
            return self.node(sympy.Mul(sympy.S.NegativeOne, inner.expr, evaluate=False), inner.digits, inner)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise _refuse(_describe(node))

    def node(self, expr: sympy.Expr, digits: float, *children: _Node) -> _Node:
        """A node whose value, when it is a constant, is computed and bounded now."""
        if not digits <= MAX_DIGITS:
            raise TheoryParseError("the numbers in the answer grow too large")
        inputs = [child.approx for child in children if child.approx is not None]
        if len(inputs) < len(children):
            return _Node(expr, None, digits)
        value = evaluate(expr, {})
        if cmath.isnan(value):
            raise TheoryParseError("a constant in the answer is undefined or too large to compute (as 1/0, log(0))")
        if _infinite(value) and not any(_infinite(z) for z in inputs):  # oo is fine, overflowing to it is not
            raise TheoryParseError("a number in the answer is too large")
        if not _infinite(value) and abs(value) > MAX_MAGNITUDE:
            raise TheoryParseError("a number in the answer is too large")
        return _Node(expr, value, digits)

    def constant(self, value: object) -> _Node:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refuse(f"the literal {shorten(repr(value), 30)}")
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
        for candidate in spellings(name):
            if candidate in self.symbols:
                return _Node(self.symbols[candidate], None, 1.0)
        if name in CONSTANT_NAMES:
            constant = CONSTANT_NAMES[name]
            return _Node(constant.expr, constant.value, 1.0)
        if name in FUNCTION_NAMES:
            raise TheoryParseError(f"{name} is a function; call it with parentheses, e.g. {name}(x)")
        allowed = ", ".join(sorted(self.symbols)) or "(no symbols: the answer is a number)"
        raise TheoryParseError(
            f"name {shorten(name, 30)!r} is not allowed; use one of: {allowed} "
            f"(constants: pi, e, oo; functions: {_FUNCTION_LIST})"
        )

    def binop(self, node: ast.BinOp, depth: int) -> _Node:
        op = node.op
        if not isinstance(op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow):
            raise _refuse(f"the operator {_OPERATORS.get(type(op), type(op).__name__)}")
        a, b = self.build(node.left, depth + 1), self.build(node.right, depth + 1)
        digits = a.digits + b.digits
        if isinstance(op, ast.Pow) and b.approx is not None:
            if not abs(b.approx) <= MAX_EXPONENT:  # written so that NaN is refused too
                raise TheoryParseError(f"the exponent {_show(b.approx)} is too large (limit {MAX_EXPONENT:g})")
            digits = a.digits * max(1.0, abs(b.approx)) + b.digits
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
        return self.node(expr, digits, a, b)

    def call(self, node: ast.Call, depth: int) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise _refuse(_describe(node.func))
        name = node.func.id
        function = FUNCTION_NAMES.get(name)
        if function is None:
            raise TheoryParseError(f"function {shorten(name, 30)!r} is not allowed; use one of: {_FUNCTION_LIST}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise TheoryParseError(f"{name}() takes positional arguments only")
        lo, hi = function.arity
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise TheoryParseError(f"{name}() takes {want} argument(s), got {len(node.args)}")
        args = [self.build(arg, depth + 1) for arg in node.args]
        digits = sum(arg.digits for arg in args)
        x = args[0].approx
        if function.node is sympy.gamma and x is not None and cmath.isfinite(x):  # (n-1)!: ~n log10 n digits
            digits += abs(x) * math.log10(abs(x) + 2)
        return self.node(function.build(*(arg.expr for arg in args)), digits, *args)


_FUNCTION_LIST = ", ".join(f.name for f in FUNCTIONS)
_OPERATORS = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|"}
_OPERATORS |= {ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "xor"}


def _refuse(what: str) -> TheoryParseError:
    return TheoryParseError(f"{what} is not allowed in an answer; use numbers, + - * / ^, parentheses and names")


def _infinite(z: complex) -> bool:
    return math.isinf(z.real) or math.isinf(z.imag)


def _digits(n: int) -> float:
    return math.log10(abs(n) + 1) + 1


def _show(z: complex) -> str:
    return f"{z.real:g}" if z.imag == 0 else f"{z:g}"


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
