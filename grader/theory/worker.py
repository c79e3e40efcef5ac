"""The symbolic half of the equivalence check, run in a time-limited worker process.

sympy evaluates while it simplifies and cannot be interrupted, and a crafted constant (nested
radicals that cancel, `3**(1e-300)`) can send its assumption system into minimal-polynomial
computations that never end. So `symbolically_equal` first refuses what size estimates say is
hopeless, then runs `expand` / `cancel` in a child process that is killed when it overruns.

The child is forked once and reused (its sympy caches stay warm). It must never outlive the host,
which earlier it did when the host was killed by SIGTERM: the fork had inherited the host's end of
the pipe, so it never saw end-of-file. Now the child closes that end, asks Linux to SIGKILL it when
its parent dies (`PR_SET_PDEATHSIG`), and is a daemon process, which multiprocessing terminates at
the host's normal exit. Its owners (the server's lifespan, the CLI) stop it explicitly on the way
out through `grader.children.stop_children`, which calls `stop_worker`.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess

import sympy

from grader.theory.registry import MAX_EXPONENT

logger = logging.getLogger(__name__)

SYMBOLIC_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 60.0  # a spawned worker imports sympy first: seconds on a busy machine
MAX_EXPANDED_TERMS = 500
MAX_CANCEL_DEGREE = 24
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

Bounds = Mapping[str, tuple[float, float]]


def symbolically_equal(student: sympy.Expr, key: sympy.Expr, bounds: Bounds, *, timeout_s: float | None) -> bool:
    """Whether sympy proves `student - key` zero within `timeout_s` seconds; False when unsure.

    `timeout_s=None` runs the step in this process, for trusted expressions only.
    """
    if not _worth_a_symbolic_check(student, key):
        return False
    if timeout_s is None:
        return _symbolically_equal(student, key, bounds)
    return bool(_WORKER.call((student, key, bounds), timeout_s))


def start_worker() -> None:
    """Start the worker process now, from this thread, if none runs.

    A host about to grade in several threads calls this first, so that the worker is forked (fast) while
    the host still has one thread; started later, it is spawned (see `_process_context`).
    """
    _WORKER.start()


def stop_worker() -> None:
    """Kill the worker process if one runs (the next comparison starts a new one)."""
    _WORKER.stop()


def _difference(student: sympy.Expr, key: sympy.Expr) -> sympy.Expr:
    return sympy.Add(student, sympy.Mul(sympy.S.NegativeOne, key, evaluate=False), evaluate=False)


def _worth_a_symbolic_check(student: sympy.Expr, key: sympy.Expr) -> bool:
    """Cheap checks on the unevaluated trees, so that hopeless cases do not wait for the timeout."""
    diff = _difference(student, key)
    if _expanded_terms(diff) > MAX_EXPANDED_TERMS:
        return False
    # Huge exact constants (from 1e300 or 10**-300) make sympy's evaluation crawl; numbers do fine.
    return all(max(abs(int(r.p)), int(r.q)) < 10**30 for r in diff.atoms(sympy.Rational))


def _symbolically_equal(student: sympy.Expr, key: sympy.Expr, bounds: Bounds) -> bool:
    """`expand`, then `cancel` if there are denominators, of the difference; False when unsure.

    Both steps are gated by size estimates as well (a large expansion, or a rational function of
    high degree, whose polynomial gcds are slow, is left to the numerical check).
    """
    infinities = (sympy.oo, -sympy.oo, sympy.zoo, sympy.nan)
    if student.has(*infinities) or key.has(*infinities):
        return False  # compared exactly by the numerical check
    diff = _difference(student, key)
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


class _SymbolicWorker:
    """A long-lived child process that runs `_symbolically_equal`, killed when it overruns.

    One per host process, started on first use and reused; a call that overruns its timeout kills
    it, and the next call starts a fresh one. Calls from several threads are serialised.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def call(self, args: tuple[object, ...], timeout_s: float) -> bool | None:
        """The worker's answer, or None if it overran `timeout_s` or failed (it is then stopped)."""
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
            self.stop()
            return None

    def start(self) -> None:
        with self._lock:
            try:
                self._connection()
            except OSError as exc:  # the first comparison tries again
                logger.warning("symbolic comparison process did not start: %s", exc)

    def stop(self) -> None:
        """Kill the worker (if any) and wait for it; the next call starts a new one."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def _connection(self) -> Connection:
        if self._proc is None or not self._proc.is_alive() or self._conn is None:
            self.stop()
            ctx = _process_context()
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(theirs, ours, os.getpid()), name="dgm-theory-sympy", daemon=True
            )
            proc.start()
            theirs.close()
            self._proc, self._conn = proc, ours
            if not ours.poll(STARTUP_TIMEOUT_S):
                raise OSError(f"no sign of life within {STARTUP_TIMEOUT_S:.0f} s")
            ours.recv()  # the worker's "ready": call timeouts count from here
        return self._conn


def _worker_main(conn: Connection, host_end: Connection, host_pid: int) -> None:
    # A fork inherits the host's end of the pipe; holding it open would hide the host's exit (no EOF).
    host_end.close()
    _die_with_parent(host_pid)
    # The host's handlers were inherited too (a server's SIGTERM handler only sets a flag): restore the
    # default so that terminate() works, and leave Ctrl-C in a terminal to the host.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(True)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the host closed the pipe or exited
        try:
            # Unpickling rebuilds (and so evaluates) the expressions: it belongs inside the guard.
            student, key, bounds = pickle.loads(message)
            result = _symbolically_equal(student, key, bounds)
        except Exception:  # any failure only means "no symbolic answer" (no logging: see the fork note)
            result = False
        conn.send(result)


def _die_with_parent(host_pid: int) -> None:
    """Have Linux SIGKILL this process when its parent dies, however the parent dies.

    The signal is tied to the parent *thread* that started the worker: if that thread ends first,
    the worker is killed early and the next call starts another. Elsewhere the closed pipe suffices.
    """
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != host_pid:  # the host died before the request took effect
        os._exit(0)


def _process_context() -> ForkContext | SpawnContext:
    # fork: the worker starts in milliseconds with sympy already imported, and the host's __main__ is not
    # re-imported (spawn runs an unguarded script's top level again). But only a host with one thread may
    # fork: a fork while another thread is inside an OpenBLAS call hangs the host for ever (OpenBLAS's
    # at-fork handler waits for its own threads). A worker restarted while grading threads run is spawned.
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


_WORKER = _SymbolicWorker()
