import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sympy

from grader.errors import AssignmentError, GraderError
from grader.theory import (
    MAX_ANSWER_CHARS,
    TheoryParseError,
    answers_equivalent,
    extract_answers,
    grade_answer,
    parse_expression,
    worker,
)

EPS_M = ["eps", "m"]


def equivalent(a: str, b: str, symbols: list[str], **kwargs: object) -> bool:
    return answers_equivalent(parse_expression(a, symbols), parse_expression(b, symbols), symbols=symbols, **kwargs)


# --------------------------------------------------------------------------- extraction


def test_extracts_answers_from_several_blocks_and_cells() -> None:
    cell1 = "Derivation: the shell has volume...\n\n```answer\nt2a: 1 - (1 - eps)**m\n```\n"
    cell2 = "Part b\n```answer\nt2b: 1\n\nt3a: s2 + h**2\n```\nand more text"
    got = extract_answers([cell1, cell2])
    assert got.answers == {"t2a": "1 - (1 - eps)**m", "t2b": "1", "t3a": "s2 + h**2"}
    assert got.warnings == []


def test_crlf_and_indented_fences() -> None:
    crlf = "Answer:\r\n\r\n```answer\r\nt1: 1 - (1 - eps)^m\r\n```\r\n"
    indented = "1. first part\n\n   ```answer\n   t2: m / 2\n   ```\n"
    assert extract_answers([crlf, indented]).answers == {"t1": "1 - (1 - eps)^m", "t2": "m / 2"}


def test_tilde_fences_and_info_string_case() -> None:
    got = extract_answers(["~~~~ Answer\nt1: 2\n~~~~"])
    assert got.answers == {"t1": "2"}


def test_ignores_answer_lines_outside_answer_fences() -> None:
    source = (
        "t1: 99 (prose, not an answer)\n"
        "````markdown\n```answer\nt1: 42\n```\n````\n"  # an example quoted inside another fence
        "```python\nt1: 43\n```\n"
        "```answer\nt1: 7\n```\n"
    )
    assert extract_answers([source]).answers == {"t1": "7"}


def test_later_duplicate_wins_with_a_warning() -> None:
    got = extract_answers(["```answer\nt1: 1\n```", "```answer\nt1: 2\n```"])
    assert got.answers == {"t1": "2"}
    assert got.warnings == ["answer t1 is given more than once; the last one is graded"]


def test_bad_lines_unclosed_blocks_and_empty_values() -> None:
    got = extract_answers(["```answer\nt1:\njust prose here\n# a comment\nt2: m\n"])
    assert got.answers == {"t2": "m"}
    assert any("ignored line 'just prose here'" in w for w in got.warnings)
    assert any("not closed" in w for w in got.warnings)


def test_no_answer_blocks() -> None:
    got = extract_answers(["# Problem 1\nNo fenced block here.", "```\nt1: 3\n```"])
    assert got.answers == {}
    assert got.warnings == []


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize(
    ("student", "key", "symbols"),
    [
        ("1-(1-eps)**m", "1 - (1 - eps)^m", EPS_M),
        ("-(1 - eps)^m + 1", "1 - (1 - eps)**m", EPS_M),
        ("(1 - eps)^2", "1 - 2*eps + eps^2", EPS_M),
        ("s2 + h**2", "h^2+s2", ["s2", "h"]),
        ("1/(1-eps)", "(1+eps)/(1-eps**2)", EPS_M),
        ("log(eps*m)", "log(eps) + ln(m)", EPS_M),
        ("sin(eps)^2 + cos(eps)^2", "1", EPS_M),
        ("exp(2*log(m))", "m^2", EPS_M),
        ("sqrt(2)/2", "1/sqrt(2)", []),
        ("0.5", "1/2", []),
        ("2.5e-1", "1/4", []),
        ("log(8, 2)", "3", []),
        ("pi**(m/2) / gamma(m/2 + 1)", "pi**(m/2) / (m/2 * gamma(m/2))", EPS_M),
        (r"1 - \left(1 - \varepsilon\right)^{m}", "1 - (1 - eps)^m", EPS_M),
        (r"\frac{m}{2} \cdot \sqrt{eps}", "m*eps**0.5/2", EPS_M),
        ("oo", "inf", []),
        ("1 − (1 − eps)^m", "1 - (1 - eps)^m", EPS_M),  # unicode minus signs pasted from a PDF
    ],
)
def test_equivalent(student: str, key: str, symbols: list[str]) -> None:
    assert equivalent(student, key, symbols)


@pytest.mark.parametrize(
    ("student", "key", "symbols"),
    [
        ("1 - (1 - eps)^(m + 1)", "1 - (1 - eps)^m", EPS_M),
        ("(1 - eps)^m", "1 - (1 - eps)^m", EPS_M),
        ("1 - 2*eps + eps^2", "(1 + eps)^2", EPS_M),
        ("0.333", "1/3", []),
        ("1e-12", "0", []),
        ("oo", "1e300", []),
        ("-oo", "oo", []),
        ("h^2", "h^2 + s2", ["s2", "h"]),
    ],
)
def test_not_equivalent(student: str, key: str, symbols: list[str]) -> None:
    assert not equivalent(student, key, symbols)


def test_in_process_comparison_gives_the_same_answers() -> None:
    assert equivalent("1/(1 - eps)", "(1 + eps)/(1 - eps^2)", EPS_M, timeout_s=None)
    assert equivalent("s2 + h**2", "h^2+s2", ["s2", "h"], timeout_s=None)
    assert not equivalent("1 - (1 - eps)^(m + 1)", "1 - (1 - eps)^m", EPS_M, timeout_s=None)


def test_rtol_from_the_rubric_loosens_numbers() -> None:
    assert not equivalent("0.333", "1/3", [])
    assert equivalent("0.333", "1/3", [], rtol=1e-2)


def test_domain_decides_sign_dependent_identities() -> None:
    # sqrt(m^2) = m only for m > 0: the domain gives the assumption and the sample points.
    assert equivalent("sqrt(m^2)", "m", ["m"], domain={"m": (0.5, 3.0)})
    assert not equivalent("sqrt(m^2)", "m", ["m"], domain={"m": (-2.0, 2.0)})
    assert equivalent("sqrt(m^2)", "abs(m)", ["m"], domain={"m": (-2.0, 2.0)})


def test_large_expansions_fall_back_to_numbers_quickly() -> None:
    start = time.perf_counter()
    assert equivalent("(1 + m + eps)^200", "(eps + m + 1)^199 * (1 + m + eps)", EPS_M)
    assert not equivalent("(1 + m + eps)^60", "(eps + m + 1)^59", EPS_M)
    assert time.perf_counter() - start < 5


def _hang(*args: object) -> bool:
    time.sleep(60)
    return True


def test_a_hanging_symbolic_check_is_killed_and_numbers_decide(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The worker is forked from this process, so it runs the patched function: a stand-in for
    # sympy stuck in a minimal-polynomial computation.
    worker._WORKER.stop()
    monkeypatch.setattr(worker, "_symbolically_equal", _hang)
    monkeypatch.setattr(worker, "_process_context", lambda: multiprocessing.get_context("fork"))
    try:
        start = time.perf_counter()
        assert equivalent("(1 - eps)^2", "1 - 2*eps + eps^2", EPS_M, timeout_s=0.5)
        assert not equivalent("(1 - eps)^2", "1 - eps^2", EPS_M, timeout_s=0.5)
        assert time.perf_counter() - start < 5
        assert "overran 0.5 s" in caplog.text
    finally:
        worker._WORKER.stop()


def test_the_worker_can_be_started_ahead_and_is_then_used() -> None:
    """start_worker forks it now (before a host's grading threads run numpy); the next comparison uses it."""
    worker.stop_worker()
    worker.start_worker()
    proc = worker._WORKER._proc
    assert proc is not None and proc.is_alive()
    assert equivalent("1/(1 - eps)", "(1 + eps)/(1 - eps^2)", EPS_M)
    assert worker._WORKER._proc is proc


def test_a_host_with_threads_spawns_its_worker_rather_than_forking() -> None:
    """A fork while another thread is inside OpenBLAS hangs the host for ever: only one thread may fork."""
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        worker.stop_worker()
        worker.start_worker()
        proc = worker._WORKER._proc
        assert proc is not None and proc._start_method == "spawn"
        assert equivalent("1/(1 - eps)", "(1 + eps)/(1 - eps^2)", EPS_M)
        assert worker._WORKER._proc is proc
    finally:
        release.set()
        other.join()
        worker.stop_worker()


def test_symbolic_worker_is_reused() -> None:
    assert equivalent("1/(1 - eps)", "(1 + eps)/(1 - eps^2)", EPS_M)  # starts the worker
    proc = worker._WORKER._proc
    assert proc is not None and proc.is_alive()
    assert equivalent("(eps + m)^2", "eps^2 + 2*eps*m + m^2", EPS_M)
    assert worker._WORKER._proc is proc


_HOST = """
import sys, time
from grader.theory import answers_equivalent, parse_expression, worker
s = ["m"]
assert answers_equivalent(parse_expression("1/(1 - m)", s), parse_expression("(1 + m)/(1 - m^2)", s), symbols=s)
print(worker._WORKER._proc.pid, flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
"""


def _running(pid: int) -> bool:
    """Whether `pid` is alive; a zombie (killed, not yet reaped by an init that may never reap) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("ending", ["sigterm", "exit"])
def test_the_worker_does_not_outlive_its_host(ending: str) -> None:
    # The worker once survived a SIGTERM to the host: it held the host's end of its own pipe.
    repo = Path(__file__).resolve().parents[2]
    mode = "wait" if ending == "sigterm" else "exit"
    host = subprocess.Popen([sys.executable, "-c", _HOST, mode], cwd=repo, stdout=subprocess.PIPE, text=True)
    assert host.stdout is not None
    pid = int(host.stdout.readline())
    try:
        if ending == "sigterm":
            host.send_signal(signal.SIGTERM)
        host.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid)
    finally:
        host.kill()
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_unknown_symbols_in_expressions_are_a_rubric_error() -> None:
    with pytest.raises(AssignmentError):
        answers_equivalent(sympy.Symbol("q"), sympy.Integer(1), symbols=["m"])


# --------------------------------------------------------------------------- LaTeX and implied products


@pytest.mark.parametrize(
    ("student", "key", "symbols"),
    [
        (r"\frac{1}{2}\log(4\pi)", "log(4*pi)/2", []),
        (r"-\frac{1}{2}\log(4\pi) - \frac{x^2}{4}", "-log(4*pi)/2 - x**2/4", ["x"]),  # hw2 t_iwae_limit
        (r"$-\frac12 \ln 4\pi - \frac{x^{2}}{4}$", "-log(4*pi)/2 - x**2/4", ["x"]),
        (r"2\sigma^2", "2*sigma**2", ["sigma"]),
        (r"\frac{1}{2\sigma^2}", "1/(2*sigma**2)", ["sigma"]),
        ("2x", "2*x", ["x"]),
        ("$2x$", "2*x", ["x"]),
        ("x y", "x*y", ["x", "y"]),
        ("3K", "3*K", ["K"]),  # hw3 t3_mixture_outputs
        ("m(1 - eps)", "m - m*eps", EPS_M),
        ("(1 - eps)(1 + eps)", "1 - eps^2", EPS_M),
        (r"2 \cdot m \times eps", "2*m*eps", EPS_M),
        (r"\frac{N_k}{N}", "N_k / N", ["N_k", "N"]),  # hw2 t_em_pi
        (r"N_{k} / N", "N_k / N", ["N_k", "N"]),
        (r"\sigma_1^2 + \sigma_{2}^2", "sigma_1**2 + sigma_2**2", ["sigma_1", "sigma_2"]),
        (r"-\frac{c}{ad - bc}", "-c / (a*d - b*c)", ["a", "b", "c", "d"]),  # hw2 t_logdet
        (r"1 + hp\, wTu", "1 + hp*wTu", ["hp", "wTu"]),  # hw3 t1_planar_det
        ("1 + hpwTu", "1 + hp*wTu", ["hp", "wTu"]),
        (r"1 - \left(1 - \epsilon\right)^{m}", "1 - (1 - eps)**m", EPS_M),  # hw1 t3_shell_fraction
        (r"\exp\left(-\frac{x^2}{2}\right) / \sqrt{2\pi}", "exp(-x**2/2)/sqrt(2*pi)", ["x"]),
        (r"e^{-x^2/2}/\sqrt{2 \pi}", "exp(-x**2/2)/sqrt(2*pi)", ["x"]),
        (r"\log_2 8", "3", []),
        (r"\log_{10}(1000)", "3", []),
        (r"\sqrt[3]{m}", "m**(1/3)", EPS_M),
        (r"\frac12", "1/2", []),
        (r"\sin x \cos x", "sin(2*x)/2", ["x"]),
        (r"\Gamma\left(\frac{m}{2} + 1\right)", "m/2*gamma(m/2)", EPS_M),
        (r"\frac{\pi^{m/2}}{\Gamma(m/2 + 1)}", "pi**(m/2) / gamma(m/2 + 1)", EPS_M),
        (r"\mathrm{e}^{x}", "exp(x)", ["x"]),
        (r"\lambda e^{-\lambda x}", "lam*exp(-lam*x)", ["lam", "x"]),
        (r"\left[1 - x\right]^2", "(1 - x)**2", ["x"]),
        (r"\infty", "oo", []),
        ("2^{10}", "1024", []),
        ("x^-1", "1/x", ["x"]),
    ],
)
def test_latex_and_implied_products_match_plain_keys(student: str, key: str, symbols: list[str]) -> None:
    assert equivalent(student, key, symbols)
    assert grade_answer(student, key, answer_id="t", symbols=symbols)[0]


def test_letter_runs_split_into_declared_names_only() -> None:
    p, x, px, pg = sympy.symbols("p x px pg")
    assert parse_expression("px + pg", ["px", "pg", "p", "g", "x"]).free_symbols == {px, pg}
    assert parse_expression("$2px + pg$", ["px", "pg", "p", "g", "x"]).free_symbols == {px, pg}
    assert parse_expression("$px$", ["p", "x"]).free_symbols == {p, x}
    assert equivalent("$ad - bc$", "a*d - b*c", ["a", "b", "c", "d"])
    assert equivalent("$2\\pi m$", "2*pi*m", EPS_M)  # pi is a constant, in a run or as \pi
    with pytest.raises(TheoryParseError, match="more than one way"):
        parse_expression("$abc$", ["ab", "c", "a", "bc"])
    with pytest.raises(TheoryParseError, match="name 'xq' is not allowed; use one of: x"):
        parse_expression("$2xq$", ["x"])


def test_latex_reading_keeps_the_symbols_declared_as_commands() -> None:
    # \Gamma is the gamma function unless the rubric has a symbol Gamma.
    assert isinstance(parse_expression(r"\Gamma(2)", []), sympy.gamma)
    assert parse_expression(r"\Gamma(2)", ["Gamma"]).free_symbols == {sympy.Symbol("Gamma")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (r"\input{/etc/passwd}", r"the LaTeX command \\input is not supported"),
        (r"\frac{1}{", "the answer ends where"),
        ("$(x + 1$", "'\\(' is not closed by '\\)'"),
        (r"\frac{x}{2} = 1", "the character '=' is not allowed"),
        ("$x 2$", "the number 2 needs an operator before it"),
        ("x/2 y", "ambiguous after '/'"),
        (r"\sin^2 x", r"write the power after the argument"),
        (r"\left| x \right|", r"\\left\| is not supported"),
        ("$x[0]$", "square brackets are not allowed"),
        ("$x^2_1$", "a subscript must follow a name"),
        (r"\sigma_{t-1}", "a subscript may only hold letters and digits"),
        ("$1 +$", "the answer ends where"),
        (r"\sigma", "name 'sigma' is not allowed; use one of: x"),
        (r"\frac{1}{0}", "undefined"),
    ],
)
def test_latex_refusals_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(TheoryParseError, match=message):
        parse_expression(text, ["x"])


# --------------------------------------------------------------------------- hostile input


HOSTILE = [
    "__import__('os').system('x')",
    "os.system('rm -rf /')",
    "().__class__.__bases__[0].__subclasses__()",
    "m.__class__",
    "(lambda: 1)()",
    "[m for m in range(10**9)]",
    "{m: 1 for m in range(3)}",
    "(m for m in range(3))",
    "eps[0]",
    "f'{m}'",
    "'abc'",
    "b'abc'",
    "1j",
    "True",
    "None",
    "...",
    "m if eps else 1",
    "m < eps",
    "m and eps",
    "(m := 3)",
    "m, eps",
    "m % 2",
    "m // 2",
    "m @ eps",
    "~m",
    "not m",
    "open('/etc/passwd')",
    "exp(m, base=2)",
    "exp(*m)",
    "sqrt(m, eps)",
    "9**9**9**9",
    "2**10**10",
    "(10**200)**(10**200)",
    "10**400",
    "1e400",
    "gamma(gamma(100))",
    "gamma(sqrt(-1))",
    "((m*10**300)**1000)**1000",
    "((sqrt(-1)*10**300)**1000)**1000",
    "((10**-300)**1000)**1000",
    "(((2**1000)**1000)**1000)",
    "m**(2**1001)",
    "exp(exp(exp(10)))",
    "1/0",
    "7" * 400,
    "m" * 10_000,
    "(" * 300 + "m" + ")" * 300,
    "-" * 450 + "m",
    "+".join(["m"] * 240),
    "sin(" * 60 + "m" + ")" * 60,
    "m\x00",
    r"\input{/etc/passwd}",
    r"\frac{1}{",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_refused_fast(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(TheoryParseError) as info:
        parse_expression(text, EPS_M)
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, GraderError)
    assert info.value.args[0]


HOSTILE_LATEX = [
    r"\input{/etc/passwd}",
    r"\def\x{1}",
    r"\frac{1}{",
    r"\mathrm{__import__}",
    r"\operatorname{system}(1)",
    r"m\\",
    "$m$ + $m$",
    "{" * 240 + "m" + "}" * 240,
    r"\sqrt{" * 80 + "m" + "}" * 80,
    r"e^{" * 100 + "m" + "}" * 100,
    r"\log" * 100 + " m",
    "$" + "-" * 400 + "m$",
    "$" + "m" * 480 + "$",
    r"10^{10^{10}}",
    r"2^{10}^{10}",
    r"\exp\exp\exp 10",
    r"\Gamma(\Gamma(100))",
    r"\left(10^{300} m\right)^{1000}",
    r"\frac{1}{0}",
    r"\log 0",
    r"m\x00",
]


@pytest.mark.parametrize("text", HOSTILE_LATEX, ids=range(len(HOSTILE_LATEX)))
def test_hostile_latex_is_refused_fast(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(TheoryParseError) as info:
        parse_expression(text, EPS_M)
    assert time.perf_counter() - start < 1.0
    assert info.value.args[0]


def test_redundant_parentheses_are_harmless() -> None:
    start = time.perf_counter()
    assert parse_expression("(" * 150 + "m" + ")" * 150, EPS_M) == sympy.Symbol("m")
    assert time.perf_counter() - start < 1.0


def test_refusal_messages_name_the_problem() -> None:
    with pytest.raises(TheoryParseError, match=r"name 'os' is not allowed; use one of: eps, m"):
        parse_expression("os", EPS_M)
    with pytest.raises(TheoryParseError, match="function 'system' is not allowed"):
        parse_expression("system('ls')", EPS_M)
    with pytest.raises(TheoryParseError, match="attribute access"):
        parse_expression("__import__('os').system('x')", EPS_M)
    with pytest.raises(TheoryParseError, match="exponent"):
        parse_expression("2**10**10", EPS_M)
    with pytest.raises(TheoryParseError, match=f"limit is {MAX_ANSWER_CHARS}"):
        parse_expression("m+" * 5000 + "m", EPS_M)
    with pytest.raises(TheoryParseError, match="ambiguous"):  # not Python: LaTeX reading says why
        parse_expression("1/2m", EPS_M)
    with pytest.raises(TheoryParseError, match="the answer ends where"):
        parse_expression("2m -", EPS_M)


def test_no_string_ever_reaches_sympys_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # sympify(str) imports parse_expr at call time, so this catches every string-to-sympy path.
    import sympy.parsing.sympy_parser as sympy_parser

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"string-to-sympy conversion called with {args!r}")

    monkeypatch.setattr(sympy_parser, "parse_expr", forbidden)
    text = "1 - (1 - eps)^m + sqrt(2)/2 + log(m, 2) + 0.5 + max(eps, m)"
    assert grade_answer(text, text, answer_id="t1", symbols=EPS_M, timeout_s=None)[0]
    latex = r"1 - \left(1 - \varepsilon\right)^{m} + \frac{\sqrt{2}}{2} + \log_2 m + 0.5 + \max(\epsilon, m)"
    assert grade_answer(latex, text, answer_id="t1", symbols=EPS_M, timeout_s=None)[0]
    assert grade_answer("2m(1 - eps)", "2*m - 2*m*eps", answer_id="t1", symbols=EPS_M, timeout_s=None)[0]
    assert not grade_answer("m", text, answer_id="t1", symbols=EPS_M, timeout_s=None)[0]
    with pytest.raises(AssertionError, match="string-to-sympy"):
        sympy.sympify("m")  # the trap works


# --------------------------------------------------------------------------- grade_answer


KEY = "1 - (1 - eps)**m"


@pytest.mark.parametrize(
    ("text", "correct", "message"),
    [
        ("1 - (1 - eps)^m", True, "answer t3a is equivalent to the expected expression"),
        ("(1 - eps)^m", False, "answer t3a is not equivalent to the expected expression"),
        (None, False, "missing answer t3a"),
        ("   ", False, "missing answer t3a"),
        ("1 - (1 - x)^m", False, "could not parse answer t3a: name 'x' is not allowed; use one of: eps, m"),
    ],
)
def test_grade_answer_messages(text: str | None, correct: bool, message: str) -> None:
    ok, got = grade_answer(text, KEY, answer_id="t3a", symbols=EPS_M)
    assert ok is correct
    assert got.startswith(message)
    assert "(1 - eps)**m" not in got.replace("(1 - eps)^m", "")  # the key itself never appears


def test_grade_answer_broken_key_is_an_assignment_error() -> None:
    with pytest.raises(AssignmentError, match="key of answer t3a"):
        grade_answer("1", "1 +", answer_id="t3a", symbols=EPS_M)
