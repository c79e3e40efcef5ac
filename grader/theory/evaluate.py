"""The one numeric evaluator of parsed answers, and the equivalence check built on it.

`evaluate` serves twice: the parser calls it on every constant subexpression to bound its size
before sympy sees it, and `answers_equivalent` calls it at sample points. It walks the unevaluated
tree that `grader.theory.parse` built with Python's complex arithmetic: no code generation, no
sympy evaluation (so no assumption queries that may never end), and it always returns.
"""

from __future__ import annotations

import cmath
import logging
import math
import random
from collections.abc import Iterable, Mapping
from fractions import Fraction

import sympy

from grader.errors import AssignmentError
from grader.theory import worker
from grader.theory.registry import CONSTANT_VALUES, MAX_EXPONENT, NAN, NUMERIC, check_symbols

logger = logging.getLogger(__name__)

DEFAULT_DOMAIN = (0.1, 0.9)
N_POINTS = 16


def evaluate(expr: sympy.Basic, env: Mapping[sympy.Symbol, complex]) -> complex:
    """The value of a parsed expression at a point; NaN where it is undefined or overflows.

    Infinities stay infinite, and products and powers of real numbers are computed in real
    arithmetic, so that `-oo` is minus infinity rather than complex infinity with a NaN part.
    """
    try:
        return _value(expr, env)
    except (OverflowError, ZeroDivisionError, ValueError):
        return NAN


def _value(expr: sympy.Basic, env: Mapping[sympy.Symbol, complex]) -> complex:
    if isinstance(expr, sympy.Symbol):
        return env[expr]
    if expr in CONSTANT_VALUES:
        return CONSTANT_VALUES[expr]
    if isinstance(expr, sympy.Rational):
        return complex(float(Fraction(int(expr.p), int(expr.q))))
    if isinstance(expr, sympy.Float):
        return complex(float(expr))
    args = [_value(arg, env) for arg in expr.args]
    real = all(z.imag == 0 for z in args)
    if isinstance(expr, sympy.Add):
        return sum(args, complex(0))
    if isinstance(expr, sympy.Mul):
        return complex(math.prod(z.real for z in args)) if real else math.prod(args, start=complex(1))
    if isinstance(expr, sympy.Pow):
        base, exponent = args
        n = exponent.real
        if exponent.imag == 0 and n == int(n) and abs(n) <= MAX_EXPONENT:
            # Exact integer powers, also of negative bases; real ones stay real (and infinite ones infinite).
            return complex(base.real ** int(n)) if real else base ** int(n)
        return base**exponent
    fn = NUMERIC.get(type(expr))
    if fn is None:
        return NAN  # zoo, nan, or a node the parser never builds
    return fn(*args)


def answers_equivalent(
    student: sympy.Expr,
    key: sympy.Expr,
    *,
    symbols: Iterable[str],
    rtol: float = 1e-6,
    domain: Mapping[str, tuple[float, float]] | None = None,
    n_points: int = N_POINTS,
    seed: int = 0,
    timeout_s: float | None = worker.SYMBOLIC_TIMEOUT_S,
) -> bool:
    """Whether two parsed answers denote the same function of `symbols`.

    Symbolically equal (`grader.theory.worker`: expand, then cancel, of the difference; symbols whose
    domain lies in (0, inf) are taken positive) or numerically equal: both sides evaluated at
    `n_points` seeded random points of `domain` (default `DEFAULT_DOMAIN` per symbol) agree within
    `rtol`, with infinities compared exactly (`oo` equals only `oo`). The symbolic step runs in a
    worker process killed after `timeout_s` seconds (None: in this process, for trusted expressions).
    """
    names = check_symbols(symbols)
    bounds: dict[str, tuple[float, float]] = {}
    for name in names:
        lo, hi = (domain or {}).get(name, DEFAULT_DOMAIN)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise AssignmentError(f"domain of {name} must be a finite interval lo <= hi, got {(lo, hi)}")
        bounds[name] = (float(lo), float(hi))
    extra = {str(s) for s in student.free_symbols | key.free_symbols} - set(names)
    if extra:
        raise AssignmentError(f"expressions use symbols outside {list(names)}: {sorted(extra)}")
    return worker.symbolically_equal(student, key, bounds, timeout_s=timeout_s) or _numerically_equal(
        student, key, names, bounds, rtol, n_points, seed
    )


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
        pairs.append((evaluate(student, env), evaluate(key, env)))
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
