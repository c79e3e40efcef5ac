"""Safe HTML for untrusted notebooks: a small Markdown subset and cell/output rendering.

Everything from the notebook is escaped. Only text, code, tracebacks and PNG/JPEG images are shown;
HTML, JavaScript and SVG outputs are never rendered as markup (they come from student code). Math is
not typeset: no CDN is reachable from the course machines and no registry package here ships KaTeX,
so ``$...$`` and ``$$...$$`` are shown as TeX source in ``<span class="math">`` elements, which the
stylesheet sets apart.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from html import escape
from typing import Any

from markupsafe import Markup

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SAFE_URL = re.compile(r"^(https?://|mailto:|#)", re.IGNORECASE)
_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)|(?P<dmath>\$\$.+?\$\$)|(?P<math>\$[^$\n]+?\$)"
    r"|(?P<link>\[(?P<text>[^\]\n]+)\]\((?P<url>[^)\s]+)\))"
)
_STRONG = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EM = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?!\*)|(?<![_\w])_(?!\s)(.+?)(?<!\s)_(?!\w)")
_MAX_OUTPUT_CHARS = 20_000


def _emphasis(escaped: str) -> str:
    escaped = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", escaped)
    return _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", escaped)


def inline(text: str) -> str:
    """Inline Markdown: code, math, links, strong and emphasis. Input is raw; output is safe HTML."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(_emphasis(escape(text[pos : m.start()])))
        if m.group("code"):
            out.append(f"<code>{escape(m.group('code')[1:-1])}</code>")
        elif m.group("dmath"):
            out.append(f'<span class="math display">{escape(m.group("dmath"))}</span>')
        elif m.group("math"):
            out.append(f'<span class="math">{escape(m.group("math"))}</span>')
        else:
            url, label = m.group("url"), _emphasis(escape(m.group("text")))
            if _SAFE_URL.match(url):
                out.append(f'<a href="{escape(url, quote=True)}" rel="nofollow noopener">{label}</a>')
            else:
                out.append(label)
        pos = m.end()
    out.append(_emphasis(escape(text[pos:])))
    return "".join(out)


def markdown(source: str) -> Markup:
    """Block Markdown: headings, paragraphs, fenced code, lists, quotes, rules, display math."""
    lines = source.replace("\r\n", "\n").split("\n")
    html: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            html.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            flush()
            fence, lang = stripped[:3], stripped[3:].strip()
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            cls = f' class="lang-{escape(lang, quote=True)}"' if lang else ""
            html.append(f"<pre><code{cls}>{escape(chr(10).join(body))}</code></pre>")
        elif stripped.startswith("$$") and not (len(stripped) > 4 and stripped.endswith("$$")):
            flush()
            body = [stripped]
            i += 1
            while i < len(lines) and "$$" not in lines[i]:
                body.append(lines[i])
                i += 1
            if i < len(lines):
                body.append(lines[i])
            html.append(f'<div class="math display">{escape(chr(10).join(body))}</div>')
        elif m := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush()
            level = len(m.group(1))
            html.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif re.match(r"^(\*\s*){3,}$|^(-\s*){3,}$|^(_\s*){3,}$", stripped):
            flush()
            html.append("<hr>")
        elif re.match(r"^([-*+]|\d+[.)])\s+", stripped):
            flush()
            ordered = stripped[0].isdigit()
            items = []
            while i < len(lines) and (m := re.match(r"^\s*([-*+]|\d+[.)])\s+(.*)$", lines[i])):
                items.append(f"<li>{inline(m.group(2))}</li>")
                i += 1
            tag = "ol" if ordered else "ul"
            html.append(f"<{tag}>{''.join(items)}</{tag}>")
            continue
        elif stripped.startswith(">"):
            flush()
            quote = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quote.append(lines[i].strip()[1:].lstrip())
                i += 1
            html.append(f"<blockquote>{markdown(chr(10).join(quote))}</blockquote>")
            continue
        elif not stripped:
            flush()
        else:
            para.append(stripped)
        i += 1
    flush()
    return Markup("\n".join(html))


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


def output(out: dict[str, Any]) -> str:
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
            return f'<div class="output markdown">{markdown(_text(data["text/markdown"]))}</div>'
        if "text/latex" in data:
            return f'<div class="output math display">{escape(_text(data["text/latex"]))}</div>'
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
    parts = []
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        tags = (cell.get("metadata") or {}).get("tags") or []
        tag_html = "".join(f'<span class="tag">{escape(str(t))}</span>' for t in tags if isinstance(t, str))
        source = _text(cell.get("source"))
        if kind == "markdown":
            body = f'<div class="markdown">{markdown(source)}</div>'
        elif kind == "code":
            count = cell.get("execution_count")
            prompt = f"[{count}]" if isinstance(count, int) else "[ ]"
            outs = "".join(output(o) for o in cell.get("outputs") or [] if isinstance(o, dict))
            body = (
                f'<div class="prompt">{prompt}</div><pre class="source"><code>{escape(source)}</code></pre>'
                f'<div class="outputs">{outs}</div>'
            )
        else:
            body = f'<pre class="source raw">{escape(source)}</pre>'
        parts.append(f'<section class="cell {escape(str(kind))}" id="cell-{index}">{tag_html}{body}</section>')
    return Markup("\n".join(parts))
