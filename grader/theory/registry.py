"""What a theory answer may contain: the one registry of functions, constants and names, and its limits.

Every part of `grader.theory` reads this module and nothing else for that: the plain and LaTeX
readers take their spellings from it, the builder its arities and sympy constructors, the evaluator
its numeric functions. A function added here is accepted, built and evaluated everywhere at once.
"""

from __future__ import annotations

import cmath
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy

from grader.errors import AssignmentError, GraderError

# Bounds that keep a hostile answer cheap: text length, syntax tree size and depth at parse time;
# exponent, magnitude and digit bounds on constant subexpressions before sympy sees them.
MAX_ANSWER_CHARS = 500
MAX_AST_NODES = 300
MAX_AST_DEPTH = 40
MAX_EXPONENT = 1000.0
MAX_MAGNITUDE = 1e300
MAX_DIGITS = 5000.0

NAN = complex(math.nan, math.nan)

_SYMBOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class TheoryParseError(GraderError):
    """A theory answer is not an expression the grader accepts (syntax, names, size)."""


def _real(fn: Callable[..., float]) -> Callable[..., complex]:
    """`fn` on real arguments; NaN (undefined) for a non-real one, as these have no complex version here."""

    def wrapped(*args: complex) -> complex:
        if any(z.imag for z in args):
            return NAN
        return complex(fn(*(z.real for z in args)))

    return wrapped


def _log(a: sympy.Expr, base: sympy.Expr | None = None) -> sympy.Expr:
    if base is None:
        return sympy.log(a, evaluate=False)
    # log_b(a) = ln a / ln b, kept as a plain quotient so that expand and the evaluator need no 2-arg log.
    return sympy.Mul(
        sympy.log(a, evaluate=False),
        sympy.Pow(sympy.log(base, evaluate=False), -1, evaluate=False),
        evaluate=False,
    )


@dataclass(frozen=True)
class Function:
    """A function an answer may call.

    `node` is the sympy class the builder makes for it and the evaluator recognises, with `numeric`
    its value on complex numbers; `sqrt` has none, being built as a power. `latex` lists the LaTeX
    commands (without the backslash) that name it; `\\sqrt`, with its optional index, is LaTeX syntax.
    """

    name: str
    node: type[sympy.Basic] | None
    numeric: Callable[..., complex] | None
    arity: tuple[int, int] = (1, 1)
    aliases: tuple[str, ...] = ()
    latex: tuple[str, ...] = ()
    make: Callable[..., sympy.Expr] | None = None

    def build(self, *args: sympy.Expr) -> sympy.Expr:
        """The unevaluated sympy expression of a call with these (already built) arguments."""
        if self.make is not None:
            return self.make(*args)
        assert self.node is not None, f"{self.name} needs a node class or a builder"
        return self.node(*args, evaluate=False)


def _trig(name: str, node: type[sympy.Basic], numeric: Callable[[complex], complex]) -> Function:
    return Function(name, node, numeric, latex=(name,))


def _arc(name: str, node: type[sympy.Basic], numeric: Callable[[complex], complex]) -> Function:
    arc = "arc" + name[1:]  # asin: also arcsin, \arcsin
    return Function(name, node, numeric, aliases=(arc,), latex=(arc,))


FUNCTIONS: tuple[Function, ...] = (
    Function("sqrt", None, None, make=lambda a: sympy.Pow(a, sympy.Rational(1, 2), evaluate=False)),
    Function("exp", sympy.exp, cmath.exp, latex=("exp",)),
    Function("log", sympy.log, cmath.log, arity=(1, 2), aliases=("ln",), latex=("log", "ln"), make=_log),
    _trig("sin", sympy.sin, cmath.sin),
    _trig("cos", sympy.cos, cmath.cos),
    _trig("tan", sympy.tan, cmath.tan),
    _arc("asin", sympy.asin, cmath.asin),
    _arc("acos", sympy.acos, cmath.acos),
    _arc("atan", sympy.atan, cmath.atan),
    _trig("sinh", sympy.sinh, cmath.sinh),
    _trig("cosh", sympy.cosh, cmath.cosh),
    _trig("tanh", sympy.tanh, cmath.tanh),
    Function("gamma", sympy.gamma, _real(math.gamma), latex=("Gamma",)),
    Function("abs", sympy.Abs, lambda z: complex(abs(z))),
    Function("min", sympy.Min, _real(min), arity=(2, 8), latex=("min",)),
    Function("max", sympy.Max, _real(max), arity=(2, 8), latex=("max",)),
)

# Every plain spelling (`log`, `ln`, `arcsin`) and every LaTeX command (`\Gamma`) to its function.
FUNCTION_NAMES: dict[str, Function] = {name: f for f in FUNCTIONS for name in (f.name, *f.aliases)}
LATEX_FUNCTIONS: dict[str, Function] = {command: f for f in FUNCTIONS for command in f.latex}
# The evaluator's table: the sympy node a function is built as, to its numeric value.
NUMERIC: dict[type[sympy.Basic], Callable[..., complex]] = {
    f.node: f.numeric for f in FUNCTIONS if f.node is not None and f.numeric is not None
}


@dataclass(frozen=True)
class Constant:
    """A named constant; `value` is what the evaluator uses for `expr`. LaTeX writes e as a letter."""

    names: tuple[str, ...]
    expr: sympy.Expr
    value: complex
    latex: tuple[str, ...] = ()


CONSTANTS: tuple[Constant, ...] = (
    Constant(("pi",), sympy.pi, complex(math.pi), latex=("pi",)),
    Constant(("e", "E"), sympy.E, complex(math.e)),
    Constant(("oo", "inf", "infty"), sympy.oo, complex(math.inf), latex=("infty",)),
)
CONSTANT_NAMES: dict[str, Constant] = {name: c for c in CONSTANTS for name in c.names}
LATEX_CONSTANTS: dict[str, Constant] = {command: c for c in CONSTANTS for command in c.latex}
CONSTANT_VALUES: dict[sympy.Basic, complex] = {c.expr: c.value for c in CONSTANTS}

# LaTeX letter commands read as names (`\sigma_1` is the symbol sigma_1); `\pi` and `\infty` are constants,
# and `\gamma` is left out: `gamma` is the function, which no symbol may be called.
GREEK = frozenset(
    (
        *("alpha", "beta", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta"),
        *("iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "varrho", "sigma", "tau", "upsilon", "phi"),
        *("varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi"),
        "Omega",
    )
)

# Spellings of one letter: a name is looked up as written first, then as the others of its group in order.
_SPELLINGS = (
    ("epsilon", "eps", "varepsilon"),
    ("phi", "varphi"),
    ("theta", "vartheta"),
    ("rho", "varrho"),
    ("lambda", "lam", "lmbda", "lambda_"),  # `lambda` is a Python keyword: plain answers use another spelling
)
_ALIASES: dict[str, tuple[str, ...]] = {
    name: (name, *(other for other in group if other != name)) for group in _SPELLINGS for name in group
}


def spellings(name: str) -> tuple[str, ...]:
    """The names `name` may stand for, in the order they are tried against the rubric's symbols."""
    return _ALIASES.get(name, (name,))


def check_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    """The rubric's symbol names, deduplicated; a name that is not an identifier or names a function is refused."""
    if isinstance(symbols, str):
        raise TypeError("symbols must be an iterable of names, not one string")
    names = tuple(dict.fromkeys(symbols))
    for name in names:
        if not _SYMBOL_NAME.fullmatch(name) or name in FUNCTION_NAMES:
            raise AssignmentError(f"{name!r} cannot be an answer symbol")
    return names


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters for a message, so that a long answer is not echoed back whole."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
