"""Markdown, math and notebook rendering: course-style sources render right, hostile ones are neutralised."""

from __future__ import annotations

import json
import time

import pytest

from server import render

COURSE_MARKDOWN = r"""## Task 2: ELBO

Show that $\mathbb{E}_{q}[\log p(x|z)] - \mathrm{KL}(q \| p) \le \log p(x)$.

1. Write the evidence as an integral
   over $z$ (this line continues the item).
   - use Jensen's inequality
   - the gap is ``KL(q(z|x) `||` p(z|x))``
2. Conclude.

$$
\log p(x) \ge \mathbb{E}_{q(z|x)}\left[\log \frac{p(x, z)}{q(z|x)}\right]
$$

| model    | NLL (bits/dim) |
|:---------|---------------:|
| PixelCNN | 3.14           |
"""


def test_course_markdown_renders_lists_code_math_and_tables() -> None:
    html = str(render.markdown(COURSE_MARKDOWN))
    assert "<h2>Task 2: ELBO</h2>" in html
    # The nested list sits inside the first item, and the continuation line stays in that item.
    assert "<ol>\n<li>Write the evidence as an integral\nover" in html
    assert "(this line continues the item).\n<ul>\n<li>use Jensen" in html
    assert "<code>KL(q(z|x) `||` p(z|x))</code>" in html
    assert '<span class="math inline"><math display="inline"><mrow><msub><mi>𝔼</mi>' in html
    assert '<div class="math block">\n<math display="block">' in html and "<mfrac>" in html
    assert "<th>NLL (bits/dim)</th>" in html and "<td>3.14</td>" in html
    assert "$" not in html
    # Spaced as TeX does: log p, not "logp"; p(x|z), not p(x | z).
    assert '<mi>log</mi><mspace width="0.1667em"></mspace><mi>p</mi>' in html
    assert '<mi>x</mi><mo stretchy="false" lspace="0" rspace="0">|</mo><mi>z</mi>' in html


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ("[x](javascript:alert(1))", "href"),
        ("[x](JaVaScRiPt:alert(1))", "href"),
        ('<img src=x onerror="alert(1)">', "<img"),
        (r"$\text{<script>alert(1)</script>}$", "alert"),
        (r"$\text{<img src=x onerror=alert(1)>}$", "onerror"),
        ("<a href='javascript:alert(1)'>x</a>", "<a "),
        ("![tracker](https://example.org/pixel.png)", "<img"),
        ("<math><mtext><style>*{display:none}</style></mtext></math>", "<style"),
    ],
)
def test_hostile_markdown_is_neutralised(source: str, forbidden: str) -> None:
    assert forbidden not in str(render.markdown(source))


def test_links_keep_safe_schemes_only_and_do_not_pass_the_referrer() -> None:
    html = str(render.markdown("[paper](https://arxiv.org/abs/1312.6114) [mail](mailto:ta@example.org)"))
    assert 'href="https://arxiv.org/abs/1312.6114"' in html and 'href="mailto:ta@example.org"' in html
    assert 'rel="nofollow noopener noreferrer"' in html


def test_unreadable_tex_is_shown_as_its_source() -> None:
    assert '<code class="math-source">\\frac{1}{</code>' in str(render.markdown(r"$\frac{1}{$"))


@pytest.mark.parametrize(
    "source",
    [
        "[" * 10_000,
        "*a" * 5_000,
        "[a](" * 2_500,
        "> " * 5_000 + "x",
        "- " * 5_000,
        "$x$ " * 2_500,
        "$" + "{" * 1999,
        "$" + "{" * 999 + "x" + "}" * 999 + "$",
    ],
)
def test_hostile_markdown_renders_in_bounded_time(source: str) -> None:
    start = time.perf_counter()
    render.markdown(source)
    assert time.perf_counter() - start < 3  # well under a second on an idle machine


def test_a_huge_markdown_cell_is_shown_as_plain_text() -> None:
    html = str(render.markdown("[" * 50_000))
    assert html.startswith('<pre class="source">') and "more characters" in html


def test_a_page_stops_parsing_markdown_past_its_budget() -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "*" + "a" * 9_000 + "*"} for _ in range(20)]
    html = str(render.notebook(json.dumps({"cells": cells}).encode()))
    assert html.count("<em>") == 11 and html.count('<pre class="source">') == 9


def test_latex_outputs_become_mathml() -> None:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": "",
                "outputs": [{"output_type": "display_data", "data": {"text/latex": "$$\\sqrt{2}$$"}, "metadata": {}}],
            }
        ]
    }
    assert '<math display="block"><mrow><msqrt>' in str(render.notebook(json.dumps(nb).encode()))
