r"""Read a LaTeX answer into the Python syntax tree that plain answers parse to.

Students paste what they typed in their derivation: `\frac{1}{2}\log(4\pi)`, `2\sigma^2`,
`1 - \left(1 - \varepsilon\right)^{m}`. This reader accepts that subset of math-mode LaTeX and
nothing else (no macros, no `\input`), and returns `ast` nodes of the only kinds the builder in
`grader.theory.parse` accepts: numbers, names, `+ - * / **`, unary minus and calls of registry
functions. It never produces text to be parsed again, and every name it emits is checked again by
the builder against the rubric's symbols.

Where LaTeX is read differently from Python syntax:

- a product may be implied: `2x`, `x y`, `2\pi m`, `(a+b)(a-b)`, `m(1 - eps)`; a number never is a
  right-hand factor (`2 3`, `x 2`, `1.2.3` are refused as likely typos), nor is anything right after
  a `/` operand (`1/2m` is refused as ambiguous: `\frac{1}{2m}`, `1/(2m)` and `m/2` are not);
- a run of letters that is not itself a name is split into the rubric's symbols and the registry's
  names: with symbols a, b, c, d, `ad - bc` is a*d - b*c, while a declared `px` stays one symbol
  (the split with the fewest names wins; a tie is refused as ambiguous);
- `x_1` and `\sigma_{k}` are the symbols x_1 and sigma_k; `\log_2 x` is log base 2;
- a function without parentheses takes the implied product after it, up to the next function:
  `\log 4\pi` is log(4 pi), `\sin x \cos x` is sin(x) cos(x);
- `\frac` and `\sqrt` take a brace group or a single character, as in TeX: `\frac12` is 1/2, while
  `x^23` (like `x**23`) is x to the 23rd power.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from grader.theory.registry import (
    CONSTANT_NAMES,
    FUNCTION_NAMES,
    GREEK,
    LATEX_CONSTANTS,
    LATEX_FUNCTIONS,
    MAX_AST_DEPTH,
    Function,
    TheoryParseError,
    shorten,
    spellings,
)

TokenKind = Literal["num", "word", "cmd", "op", "open", "close", "bracket", "comma", "end"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str


_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RUN = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_COMMAND = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_SPACING = frozenset({",", ";", ":", "!", " ", "quad", "qquad"})
_OPERATORS = {"cdot": "*", "times": "*", "div": "/"}
_FRACTIONS = frozenset({"frac", "dfrac", "tfrac"})
_PLAIN_NAME = frozenset({"mathrm", "operatorname"})
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_END = _Token("end", "")


def read_latex(source: str, symbols: Iterable[str]) -> ast.expr:
    """The answer as a Python expression tree of whitelisted nodes; `TheoryParseError` if it is not math."""
    names = tuple(symbols)
    return _Reader(_tokenize(source, _vocabulary(names)), names).read()


def _vocabulary(symbols: tuple[str, ...]) -> frozenset[str]:
    """The names a run of letters may be split into: symbols (and their spellings), constants, functions.

    A subscripted symbol contributes its head (`N` of `N_k`), since `_k` is read as a subscript.
    """
    heads = {spelling.split("_")[0] for name in symbols for spelling in spellings(name)}
    return frozenset(heads | set(CONSTANT_NAMES) | set(FUNCTION_NAMES))


def _tokenize(source: str, vocabulary: frozenset[str]) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch.isspace():
            i += 1
        elif number := _NUMBER.match(source, i):
            tokens.append(_Token("num", number.group()))
            i = number.end()
        elif run := _RUN.match(source, i):
            after_subscript = bool(tokens) and tokens[-1] == _Token("op", "_")
            pieces = [run.group()] if after_subscript else _split(run.group(), vocabulary)
            tokens.extend(_Token("word", piece) for piece in pieces)
            i = run.end()
        elif command := _COMMAND.match(source, i):
            i = command.end()
            name = command.group(1)
            if name in ("left", "right"):
                i = _delimiter(source, i, name, tokens)
            elif name in _OPERATORS:
                tokens.append(_Token("op", _OPERATORS[name]))
            elif name not in _SPACING:
                tokens.append(_Token("cmd", name))
        elif source.startswith("**", i):
            tokens.append(_Token("op", "^"))
            i += 2
        elif ch in "+-*/^_":
            tokens.append(_Token("op", ch))
            i += 1
        elif ch in "({":
            tokens.append(_Token("open", ch))
            i += 1
        elif ch in ")}":
            tokens.append(_Token("close", ch))
            i += 1
        elif ch in "[]":
            tokens.append(_Token("bracket", ch))
            i += 1
        elif ch == ",":
            tokens.append(_Token("comma", ch))
            i += 1
        else:
            raise TheoryParseError(f"the character {ch!r} is not allowed in an answer")
    return tokens


def _delimiter(source: str, i: int, side: str, tokens: list[_Token]) -> int:
    """`\\left(` and `\\right)` are parentheses; `\\left[ ... \\right]` brackets too (bare ones are not)."""
    while i < len(source) and source[i].isspace():
        i += 1
    delimiter = source[i : i + 1]
    allowed = ("(", "[") if side == "left" else (")", "]")
    if delimiter not in allowed:
        raise TheoryParseError(f"\\{side}{delimiter} is not supported; use \\{side}( or \\{side}[")
    tokens.append(_Token("open" if side == "left" else "close", delimiter))
    return i + 1


def _split(run: str, vocabulary: frozenset[str]) -> list[str]:
    """`run` as the fewest names of `vocabulary` whose concatenation it is, or as itself if there are none."""
    if run in vocabulary:
        return [run]
    longest = max(map(len, vocabulary))
    # best[i]: (fewest pieces for run[:i], whether two splits have that many, where the last piece starts)
    best: list[tuple[int, bool, int] | None] = [None] * (len(run) + 1)
    best[0] = (0, False, 0)
    for end in range(1, len(run) + 1):
        for start in range(max(0, end - longest), end):
            previous = best[start]
            if previous is None or run[start:end] not in vocabulary:
                continue
            count, ambiguous = previous[0] + 1, previous[1]
            current = best[end]
            if current is None or count < current[0]:
                best[end] = (count, ambiguous, start)
            elif count == current[0]:
                best[end] = (count, True, current[2])
    final = best[-1]
    if final is None:
        return [run]  # not a product of known names: the builder refuses it by name
    if final[1]:
        raise TheoryParseError(f"{shorten(run, 30)!r} can be read as a product in more than one way; write * between")
    pieces: list[str] = []
    end = len(run)
    while end:
        entry = best[end]
        assert entry is not None, "every split position on the chosen path is reachable"
        pieces.append(run[entry[2] : end])
        end = entry[2]
    return pieces[::-1]


class _Reader:
    """Recursive descent over the tokens: sum, product (explicit or implied), signed, power, atom.

    `depth` grows with every nested group, exponent and argument, so that the recursion stays far
    from Python's limit; the builder bounds the tree again.
    """

    def __init__(self, tokens: list[_Token], symbols: tuple[str, ...]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.symbols = frozenset(symbols)

    def peek(self) -> _Token:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else _END

    def take(self) -> _Token:
        token = self.peek()
        self.pos += 1
        return token

    def at(self, kind: TokenKind, texts: str | None = None) -> bool:
        token = self.peek()
        return token.kind == kind and (texts is None or token.text in texts)

    def read(self) -> ast.expr:
        node = self.sum(0)
        if self.peek() is not _END:
            raise self.unexpected(self.peek())
        return node

    def sum(self, depth: int) -> ast.expr:
        node = self.product(depth)
        while self.at("op", "+-"):
            op: ast.operator = ast.Add() if self.take().text == "+" else ast.Sub()
            node = ast.BinOp(node, op, self.product(depth))
        return node

    def product(self, depth: int) -> ast.expr:
        node = self.signed(depth)
        divided = False
        while True:
            if self.at("op", "*/"):
                divided = self.take().text == "/"
                node = ast.BinOp(node, ast.Div() if divided else ast.Mult(), self.signed(depth))
            elif self.at("num"):
                raise TheoryParseError(f"the number {self.peek().text} needs an operator before it, such as *")
            elif divided and self.implied_factor_follows():
                # Python would read 1/2m as m/2, many students mean 1/(2m): neither guess is safe to grade.
                raise TheoryParseError("a/b c is ambiguous after '/': write (a/b)*c or a/(b*c)")
            elif self.implied_factor_follows():
                node = ast.BinOp(node, ast.Mult(), self.power(depth))
            else:
                return node

    def implied_factor_follows(self) -> bool:
        return self.at("word") or self.at("cmd") or self.at("open")

    def function_follows(self) -> bool:
        token = self.peek()
        if token.kind == "word":
            return token.text in FUNCTION_NAMES
        return token.kind == "cmd" and token.text in LATEX_FUNCTIONS and not self.declared(token.text)

    def signed(self, depth: int) -> ast.expr:
        signs = []
        while self.at("op", "+-"):
            signs.append(ast.UAdd() if self.take().text == "+" else ast.USub())
        node = self.power(depth)
        for sign in reversed(signs):  # one node per sign, as Python parses `--x`: the builder bounds the depth
            node = ast.UnaryOp(sign, node)
        return node

    def power(self, depth: int) -> ast.expr:
        base = self.atom(depth)
        if not self.at("op", "^"):
            return base
        self.take()
        return ast.BinOp(base, ast.Pow(), self.signed(depth + 1))  # right-associative, as ** is

    def atom(self, depth: int) -> ast.expr:
        if depth > MAX_AST_DEPTH:
            raise TheoryParseError(f"the expression is nested too deeply (limit {MAX_AST_DEPTH} levels)")
        token = self.take()
        if token.kind == "num":
            return _number(token.text)
        if token.kind == "open":
            return self.group(token, depth + 1)
        if token.kind == "word":
            if token.text in FUNCTION_NAMES:
                return self.call(FUNCTION_NAMES[token.text], depth)
            return ast.Name(token.text + self.subscript())
        if token.kind == "cmd":
            return self.command(token.text, depth)
        raise self.unexpected(token)

    def group(self, opening: _Token, depth: int) -> ast.expr:
        inner = self.sum(depth)
        self.close(opening)
        return inner

    def close(self, opening: _Token) -> None:
        token = self.take()
        if token.kind != "close" or token.text != _CLOSING[opening.text]:
            raise TheoryParseError(f"{opening.text!r} is not closed by {_CLOSING[opening.text]!r}")

    def command(self, name: str, depth: int) -> ast.expr:
        if name in _FRACTIONS:
            numerator = self.argument(depth + 1)
            return ast.BinOp(numerator, ast.Div(), self.argument(depth + 1))
        if name == "sqrt":
            return self.sqrt(depth)
        if name in _PLAIN_NAME:  # \mathrm{e}, \operatorname{abs}: the letters in braces are one name
            if not self.at("open", "{"):
                raise TheoryParseError(f"\\{name} takes a name in braces")
            opening = self.take()
            letters = []
            while self.at("word"):
                letters.append(self.take().text)
            self.close(opening)
            word = "".join(letters)
            if not word:
                raise TheoryParseError(f"\\{name}{{...}} must hold a name")
            return self.call(FUNCTION_NAMES[word], depth) if word in FUNCTION_NAMES else ast.Name(word)
        if self.declared(name):
            return ast.Name(name + self.subscript())
        if name in LATEX_FUNCTIONS:
            return self.call(LATEX_FUNCTIONS[name], depth)
        if name in LATEX_CONSTANTS:
            return ast.Name(LATEX_CONSTANTS[name].names[0])
        if name in GREEK:
            return ast.Name(name + self.subscript())
        raise TheoryParseError(f"the LaTeX command \\{shorten(name, 20)} is not supported")

    def declared(self, name: str) -> bool:
        """Whether a rubric symbol is spelt `name`: `\\Gamma` is then that symbol, not the gamma function."""
        return any(spelling in self.symbols for spelling in spellings(name))

    def argument(self, depth: int) -> ast.expr:
        """One TeX argument of `\\frac` or `\\sqrt`: a brace group, a command, or a single character."""
        if depth > MAX_AST_DEPTH:
            raise TheoryParseError(f"the expression is nested too deeply (limit {MAX_AST_DEPTH} levels)")
        token = self.take()
        if token.kind == "open" and token.text == "{":
            return self.group(token, depth)
        if token.kind == "cmd":
            return self.command(token.text, depth)
        first, rest = token.text[:1], token.text[1:]
        if token.kind == "word" or (token.kind == "num" and first.isdigit() and (not rest or _NUMBER.fullmatch(rest))):
            if rest:  # TeX reads one character: the rest stays in the input (`\frac12` is 1/2)
                self.pos -= 1
                self.tokens[self.pos] = _Token(token.kind, rest)
            return ast.Constant(int(first)) if first.isdigit() else ast.Name(first)
        raise TheoryParseError("\\frac and \\sqrt take their arguments in braces, as in \\frac{a}{b} and \\sqrt{x}")

    def sqrt(self, depth: int) -> ast.expr:
        if not self.at("bracket", "["):
            return ast.Call(ast.Name("sqrt"), [self.argument(depth + 1)], [])
        self.take()
        index = self.sum(depth + 1)
        if not self.at("bracket", "]"):
            raise TheoryParseError("the index of \\sqrt[n]{x} is not closed by ']'")
        self.take()
        return ast.BinOp(self.argument(depth + 1), ast.Pow(), ast.BinOp(ast.Constant(1), ast.Div(), index))

    def call(self, function: Function, depth: int) -> ast.expr:
        """A function's arguments: in parentheses or braces, else the implied product after it."""
        base = None
        if self.at("op", "_"):
            if function.name != "log":
                raise TheoryParseError(f"only log takes a subscript (its base), not {function.name}")
            self.take()
            base = self.subscript_argument(depth + 1)
        if self.at("op", "^"):
            raise TheoryParseError(f"write the power after the argument, as in ({function.name} x)^2")
        if self.at("open"):
            opening = self.take()
            args = [self.sum(depth + 1)]
            while self.at("comma"):
                self.take()
                args.append(self.sum(depth + 1))
            self.close(opening)
        else:
            args = [self.implied_product(depth + 1)]
        if base is not None:
            args.append(base)
        return ast.Call(ast.Name(function.name), args, [])

    def implied_product(self, depth: int) -> ast.expr:
        node = self.signed(depth)
        while self.implied_factor_follows() and not self.function_follows():
            node = ast.BinOp(node, ast.Mult(), self.power(depth))
        return node

    def subscript_argument(self, depth: int) -> ast.expr:
        token = self.take()
        if token.kind == "open" and token.text == "{":
            return self.group(token, depth)
        if token.kind == "num":
            return _number(token.text)
        if token.kind == "word":
            return ast.Name(token.text)
        raise TheoryParseError("write the base of log as \\log_{b} x")

    def subscript(self) -> str:
        """`_1`, `_k`, `_{12}`, `_{\\theta}` after a name: the suffix of the symbol's name, else ''."""
        if not self.at("op", "_"):
            return ""
        self.take()
        token = self.take()
        parts = [token]
        if token.kind == "open" and token.text == "{":
            parts = []
            while not self.at("close", "}") and not self.at("end"):
                parts.append(self.take())
            self.close(token)
        if not parts or not all(_name_part(part) for part in parts):
            raise TheoryParseError("a subscript may only hold letters and digits, as in x_1 or \\sigma_{k}")
        return "_" + "".join(part.text for part in parts)

    def unexpected(self, token: _Token) -> TheoryParseError:
        if token.kind == "end":
            return TheoryParseError("the answer ends where a number, a name or '(' was expected")
        if token == _Token("op", "_"):
            return TheoryParseError("a subscript must follow a name directly, as in x_1^2 (not x^2_1)")
        if token.kind == "bracket":
            return TheoryParseError("square brackets are not allowed; use parentheses or \\left[ ... \\right]")
        return TheoryParseError(f"unexpected {token.text!r} in the answer")


def _name_part(token: _Token) -> bool:
    if token.kind == "num":
        return token.text.isdigit()
    return token.kind == "word" or (token.kind == "cmd" and token.text in GREEK)


def _number(text: str) -> ast.Constant:
    """The literal of a number token, as Python reads it: `2` an int, `0.5` and `1e-3` floats."""
    return ast.Constant(float(text) if any(c in text for c in ".eE") else int(text))
