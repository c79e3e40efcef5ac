"""Small server-side SVG charts for the pages: no script, no CDN, and nothing the CSP has to allow.

Only numbers and escaped text go into the markup; colours are presentation attributes, not ``style``.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from server.services.stats import Summary

BAR = "#2f5bea"
BAR_FULL = "#0f7b3f"
AXIS = "#98a2b3"
TEXT = "#475467"
MEAN = "#b54708"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def histogram_svg(summary: Summary, *, label: str, width: int = 360, height: int = 140) -> Markup:
    """Bars of ``summary.bins`` with the x axis in points, the tallest count on the y axis, and the mean
    as a dashed line. Bars of full marks are green."""
    left, right, top, bottom = 28, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((b.count for b in summary.bins), default=0) or 1
    n = len(summary.bins) or 1
    bar_w = plot_w / n
    title = f"{label}: {summary.n} students"
    if summary.mean is not None and summary.median is not None:
        title += f", mean {_num(summary.mean)}, median {_num(summary.median)} of {_num(summary.max_points)}"
    parts = [
        f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{AXIS}"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{AXIS}"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10" fill="{TEXT}">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="{TEXT}">0</text>',
    ]
    for k, b in enumerate(summary.bins):
        h = plot_h * b.count / peak
        x = left + k * bar_w
        full = k == n - 1 and summary.max_points > 0
        what = f"{_num(b.lo)}–{_num(b.hi)} points: {b.count}"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="{BAR_FULL if full else BAR}"><title>{escape(what)}</title></rect>'
        )
        if b.count and bar_w >= 14:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 2:.1f}" text-anchor="middle" '
                f'font-size="9" fill="{TEXT}">{b.count}</text>'
            )
    # x labels: the bin edges, thinned to at most about 8 labels
    step = max(1, round(n / 8))
    for k in sorted({*range(0, n, step), n}):
        x = left + k * bar_w
        value = summary.bins[k].lo if k < n else summary.max_points
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" font-size="10" fill="{TEXT}">{_num(value)}</text>'
        )
    if summary.mean is not None and summary.max_points > 0:
        x = left + plot_w * min(1.0, summary.mean / summary.max_points)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{MEAN}" '
            f'stroke-dasharray="4 3"><title>mean {_num(summary.mean)}</title></line>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
