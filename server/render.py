"""Safe HTML for untrusted notebooks: Markdown with math, and cell/output rendering.

Markdown is CommonMark (markdown-it-py) with tables and ``$...$`` / ``$$...$$`` math (mdit-py-plugins'
dollarmath); the math is converted to MathML on the server (latex2mathml), which browsers render natively,
so no script or CDN is needed. Raw HTML in the source is escaped, and the result goes through nh3 (the
Ammonia sanitizer) with an allow-list of HTML and MathML, because TeX such as ``\\text{<b>}`` comes out
of the converter as markup. Only text, code, tracebacks and PNG/JPEG images are shown from outputs; HTML,
JavaScript and SVG outputs are never rendered as markup (they come from student code).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from html import escape
from typing import Any

import nh3
from latex2mathml.converter import convert as latex_to_mathml
from markdown_it import MarkdownIt
from markupsafe import Markup
from mdit_py_plugins.dollarmath import dollarmath_plugin

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MAX_OUTPUT_CHARS = 20_000
# CommonMark parsing is superlinear on hostile input (20,000 "[" take about half a second), so a longer
# source, and every markdown cell after a page's budget, is shown as plain text: nothing is lost, time is bounded.
_MAX_MARKDOWN_CHARS = 10_000
_MAX_PAGE_MARKDOWN_CHARS = 100_000
_MAX_MATH_CHARS = 2_000
_MAX_NESTING = 20

_MATHML_TAGS = {
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "mstyle", "mpadded",
    "mphantom", "menclose", "merror", "mfrac", "msqrt", "mroot", "msub", "msup", "msubsup", "munder", "mover",
    "munderover", "mmultiscripts", "mprescripts", "none", "mtable", "mtr", "mtd",
}  # fmt: skip
_MATHML_ATTRIBUTES = {
    "display", "mathvariant", "stretchy", "fence", "separator", "accent", "accentunder", "lspace", "rspace",
    "linethickness", "columnalign", "columnspacing", "columnlines", "rowalign", "rowspacing", "rowlines",
    "displaystyle", "scriptlevel", "width", "height", "depth", "minsize", "maxsize", "movablelimits",
    "notation", "encoding", "form", "largeop", "symmetric", "mathsize", "frame", "framespacing",
}  # fmt: skip
_HTML_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span", "div",
}  # fmt: skip
_CLEANER = nh3.Cleaner(
    tags=_HTML_TAGS | _MATHML_TAGS,
    attributes={
        "a": {"href", "title"},
        "ol": {"start"},
        "code": {"class"},
        "span": {"class"},
        "div": {"class"},
        **{tag: _MATHML_ATTRIBUTES for tag in _MATHML_TAGS},
    },
    url_schemes={"http", "https", "mailto"},
    link_rel="nofollow noopener noreferrer",
)


# Two places where latex2mathml's output does not space like TeX. ``\\log p`` comes out as
# ``<mi>log</mi><mi>p</mi>``, which browsers set as "logp" (TeX puts a thin space after a function name); and
# "|" as an operator with space around it, while in TeX it is an ordinary symbol: p(x|z), not p(x | z).
_FUNCTION_THEN_SYMBOL = re.compile(
    r"(<mi>(?:arg|cos|cosh|cot|deg|det|dim|exp|ker|lg|ln|log|Pr|sin|sinh|tan|tanh)</mi>)(?=<mi|<mn|<msub><mi|<msup><mi)"
)
_BAR = '<mo stretchy="false">&#x0007C;</mo>'


def _math(tex: str, options: dict[str, Any]) -> str:
    """TeX to MathML; what the converter cannot read (or is too long) is shown as escaped TeX source."""
    display = bool(options.get("display_mode"))
    if len(tex) <= _MAX_MATH_CHARS:
        try:
            mathml = latex_to_mathml(tex, display="block" if display else "inline")
            mathml = _FUNCTION_THEN_SYMBOL.sub(r'\1<mspace width="0.1667em"></mspace>', mathml)
            return mathml.replace(_BAR, '<mo stretchy="false" lspace="0" rspace="0">|</mo>')
        except Exception as exc:  # the converter raises many kinds of errors on malformed TeX
            logger.debug("TeX not converted (%s): %.80s", exc.__class__.__name__, tex)
    return f'<code class="math-source">{escape(tex)}</code>'


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": _MAX_NESTING}).enable(["table", "strikethrough"])
    md.disable("image")  # a remote image would let a notebook make every viewer's browser fetch a URL
    dollarmath_plugin(md, allow_labels=False, double_inline=True, renderer=_math)
    return md


_MD = _parser()


def _sanitize(html: str) -> Markup:
    """Allow-listed HTML and MathML; scripts, event handlers, styles and ``javascript:`` URLs removed.

    Style attributes go too (the pages' CSP would refuse them anyway), so table columns are not aligned."""
    return Markup(_CLEANER.clean(html))


class _Budget:
    """Markdown characters a page may still parse; past it, markdown is shown as plain text."""

    def __init__(self) -> None:
        self.left = _MAX_PAGE_MARKDOWN_CHARS

    def markdown(self, source: str) -> Markup:
        if len(source) > self.left:
            return _plain(source)
        self.left -= len(source)
        return markdown(source)


def _plain(source: str) -> Markup:
    return Markup(f'<pre class="source">{escape(_text(source))}</pre>')


def markdown(source: str) -> Markup:
    """CommonMark with tables and math, as sanitised HTML; a very long source is shown as plain text."""
    if len(source) > _MAX_MARKDOWN_CHARS:
        return _plain(source)
    return _sanitize(_MD.render(source))


def _latex(source: str) -> Markup:
    """A ``text/latex`` output (usually ``$$...$$``) as MathML."""
    tex = source.strip().removeprefix("$$").removesuffix("$$").strip("$").strip()
    return _sanitize(_math(tex, {"display_mode": True}))


def _text(value: Any) -> str:
    text = "".join(value) if isinstance(value, list) else str(value or "")
    if len(text) > _MAX_OUTPUT_CHARS:
        text = text[:_MAX_OUTPUT_CHARS] + f"\n... [{len(text) - _MAX_OUTPUT_CHARS} more characters]"
    return text


def _image(data: Any, mime: str) -> str | None:
    raw = "".join(data) if isinstance(data, list) else str(data)
    raw = "".join(raw.split())
    try:
        base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    return f'<img class="output-image" alt="output image" src="data:{mime};base64,{raw}">'


def _output(out: dict[str, Any], budget: _Budget) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        cls = "stderr" if out.get("name") == "stderr" else "stdout"
        return f'<pre class="output {cls}">{escape(_ANSI.sub("", _text(out.get("text"))))}</pre>'
    if kind == "error":
        tb = "\n".join(out.get("traceback") or [f"{out.get('ename')}: {out.get('evalue')}"])
        return f'<pre class="output error">{escape(_ANSI.sub("", _text(tb)))}</pre>'
    if kind in ("execute_result", "display_data"):
        data = out.get("data") or {}
        for mime in ("image/png", "image/jpeg"):
            if mime in data and (img := _image(data[mime], mime)):
                return img
        if "text/markdown" in data:
            return f'<div class="output markdown">{budget.markdown(_text(data["text/markdown"]))}</div>'
        if "text/latex" in data:
            return f'<div class="output math">{_latex(_text(data["text/latex"]))}</div>'
        if "text/plain" in data:
            return f'<pre class="output">{escape(_text(data["text/plain"]))}</pre>'
        kinds = ", ".join(sorted(data)) or "no data"
        return f'<p class="output muted">[output not shown: {escape(kinds)}]</p>'
    return ""


def notebook(data: bytes) -> Markup:
    """The notebook as HTML: markdown cells rendered, code cells with their (escaped) outputs."""
    try:
        nb = json.loads(data)
        cells = nb.get("cells", [])
    except (ValueError, AttributeError):
        return Markup('<p class="error">The stored file is not a readable notebook.</p>')
    return notebook_cells(cells if isinstance(cells, list) else [])


def notebook_cells(cells: list[Any]) -> Markup:
    """Notebook cells (as nbformat JSON) as HTML; each keeps its index in the list as its anchor."""
    parts = []
    budget = _Budget()
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        tags = (cell.get("metadata") or {}).get("tags") or []
        tag_html = "".join(f'<span class="tag">{escape(str(t))}</span>' for t in tags if isinstance(t, str))
        source = _text(cell.get("source"))
        if kind == "markdown":
            body = f'<div class="markdown">{budget.markdown(source)}</div>'
        elif kind == "code":
            count = cell.get("execution_count")
            prompt = f"[{count}]" if isinstance(count, int) else "[ ]"
            outs = "".join(_output(o, budget) for o in cell.get("outputs") or [] if isinstance(o, dict))
            body = (
                f'<div class="prompt">{prompt}</div><pre class="source"><code>{escape(source)}</code></pre>'
                f'<div class="outputs">{outs}</div>'
            )
        else:
            body = f'<pre class="source raw">{escape(source)}</pre>'
        parts.append(f'<section class="cell {escape(str(kind))}" id="cell-{index}">{tag_html}{body}</section>')
    return Markup("\n".join(parts))
