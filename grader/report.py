"""The report stage: a graded `Report` as JSON, as a student-facing HTML page, as Gradescope results.

Every renderer first re-validates its input as a plain `Report`, so fields that a subclass or a
caller added (answer keys, reference paths, hidden data) are dropped before anything is written:
the output holds what the `Report` model holds and nothing else. The HTML template autoescapes
everything; student-influenced text (messages, warnings) is never trusted as markup.

The picture helpers (`grid_png`, `curve_png`) draw with Pillow only and return base64 PNG, the form
`Figure.png_base64` stores and the HTML embeds as data URIs.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from grader.results import ItemResult, Report

logger = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).parent / "templates"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MAX_GRID_IMAGES = 1024
MAX_IMAGE_SIDE = 512
GRID_CELL_PX = 64  # small images are upscaled (nearest neighbour) to about this size
GRID_PADDING_PX = 2


# --------------------------------------------------------------------------- JSON, text, Gradescope


def _visible(report: Report) -> Report:
    """The report as the model defines it: extra attributes of subclasses or callers are dropped."""
    return Report.model_validate(report.model_dump())


def render_json(report: Report) -> str:
    """The machine-readable report (the JSON contract of DESIGN.md, "Command line")."""
    return _visible(report).model_dump_json(indent=2) + "\n"


def render_summary(report: Report) -> str:
    """A few lines for a terminal: the totals, one line per item, warnings, how the run ended."""
    report = _visible(report)
    lines = [
        f"{report.assignment} (profile {report.profile}): {_num(report.total)} / {_num(report.max_total)} points"
        f" (automatic {_num(report.auto_total)} / {_num(report.auto_max)}"
        + (f", {_num(report.pending_manual)} pending manual review)" if report.pending_manual else ")")
    ]
    width = max((len(item.id) for item in report.items), default=0)
    for item in report.items:
        points = f"{_num(item.points)} / {_num(item.max_points)}"
        message = item.message.splitlines()[0] if item.message else ""
        lines.append(f"  {item.status:<7} {item.id:<{width}} {points:>11}  {message}".rstrip())
    lines.extend(f"  warning: {warning}" for warning in report.warnings)
    if report.sandbox is not None:
        lines.append(f"  sandbox: {_sandbox_line(report)}")
    return "\n".join(lines)


def render_gradescope(report: Report) -> dict[str, Any]:
    """Gradescope's autograder `results.json`.

    Gradescope grades manual questions itself, so items pending manual review are left out of
    `tests` (and named in `output`); `score` and `max_score` are the automatic totals, so they are
    exactly the sums over `tests`. Gradescope knows only the statuses `passed` and `failed`.
    """
    report = _visible(report)
    tests: list[dict[str, Any]] = [
        {
            "name": f"{item.id}: {item.title}" if item.title else item.id,
            "score": item.points,
            "max_score": item.max_points,
            "output": item.message,
            "status": "passed" if item.status == "passed" else "failed",
        }
        for item in report.items
        if item.status != "pending"
    ]
    output = [f"{report.assignment} ({report.profile}): {_num(report.auto_total)} / {_num(report.auto_max)}"]
    pending = [item.id for item in report.items if item.status == "pending"]
    if pending:
        output.append(f"{_num(report.pending_manual)} points await manual review by a TA: {', '.join(pending)}")
    output.extend(f"warning: {warning}" for warning in report.warnings)
    if report.sandbox is not None:
        output.append(f"sandbox: {_sandbox_line(report)}")
    return {
        "score": round(sum(t["score"] for t in tests), 6),
        "max_score": round(sum(t["max_score"] for t in tests), 6),
        "output": "\n".join(output),
        "tests": tests,
    }


def _sandbox_line(report: Report) -> str:
    sb = report.sandbox
    assert sb is not None
    parts = [sb.backend, sb.reason if sb.exit_code is None else f"{sb.reason} (exit code {sb.exit_code})"]
    parts.append(f"{sb.duration_s:.1f} s")
    if sb.peak_memory_bytes is not None:
        parts.append(f"peak memory {_bytes(sb.peak_memory_bytes)}")
    if not sb.isolated:
        parts.append("NOT ISOLATED")
    return ", ".join(parts)


# --------------------------------------------------------------------------- HTML


@dataclass(frozen=True)
class _TaskView:
    name: str
    items: list[ItemResult]
    points: float
    max_points: float
    pending: float


@dataclass(frozen=True)
class _FigureView:
    title: str
    data_uri: str | None


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["bytes"] = _bytes
    env.filters["detail"] = _detail
    return env


def render_html(report: Report) -> str:
    """A self-contained feedback page (inline CSS, figures as data URIs) for the student."""
    report = _visible(report)
    tasks: dict[str, list[ItemResult]] = {}
    for item in report.items:
        tasks.setdefault(item.task, []).append(item)
    task_views = [
        _TaskView(
            name=report.task_titles.get(name, name) or "Other items",
            items=items,
            points=sum(i.points for i in items),
            max_points=sum(i.max_points for i in items),
            pending=sum(i.max_points for i in items if i.status == "pending"),
        )
        for name, items in tasks.items()
    ]
    figures = [_FigureView(fig.title, _png_data_uri(fig.png_base64)) for fig in report.figures]
    counts = {status: sum(i.status == status for i in report.items) for status in _STATUS_ORDER}
    return (
        _environment()
        .get_template("report.html.j2")
        .render(report=report, tasks=task_views, figures=figures, counts=counts, metric_keys=_METRIC_KEYS)
    )


_STATUS_ORDER = ("passed", "partial", "failed", "error", "pending")
# details keys the score stage sets for metric items; shown as one "value vs reference" line.
_METRIC_KEYS = ("metric", "value", "unit", "reference", "ratio")


def _png_data_uri(png_base64: str) -> str | None:
    """A data URI for a base64 PNG, or None when the text is not one (then it is not embedded)."""
    try:
        raw = base64.b64decode(png_base64, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw.startswith(_PNG_MAGIC):
        logger.warning("a report figure is not a base64 PNG; it is left out")
        return None
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def _num(value: float | None) -> str:
    """Points and metrics for people: 2.5, 13, 0.3333, 1.2e-05."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")


def _bytes(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _detail(value: float | str | bool | None) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _num(float(value))
    return "—" if value is None else str(value)


# --------------------------------------------------------------------------- writing


def write_reports(
    report: Report,
    *,
    json_path: Path | str | None = None,
    html_path: Path | str | None = None,
    gradescope_path: Path | str | None = None,
) -> None:
    """Write the requested renderings; each file appears whole or not at all (write, then rename)."""
    if json_path is not None:
        _write_atomic(Path(json_path), render_json(report))
    if html_path is not None:
        _write_atomic(Path(html_path), render_html(report))
    if gradescope_path is not None:
        _write_atomic(Path(gradescope_path), json.dumps(render_gradescope(report), indent=2) + "\n")


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting like a formula gets a leading quote (OWASP)."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be read (web server, TA)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %s", path)


# --------------------------------------------------------------------------- pictures


def grid_png(images: np.ndarray, nrow: int = 8) -> str:
    """A base64 PNG of a grid of images, `nrow` images per row (torchvision's `make_grid` layout).

    `images` is an (N, C, H, W) float array with C = 1 (grey) or 3 (RGB) and values in [0, 1]
    (clipped). Small images are upscaled by an integer factor with nearest neighbour so that an 8x8
    digit stays legible and pixel-exact.
    """
    if not isinstance(images, np.ndarray):
        raise ValueError(f"images: expected a numpy array (N, C, H, W), got {type(images).__name__}")
    desc = f"{tuple(images.shape)} {images.dtype}"
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images: expected shape (N, C, H, W) with C = 1 or 3, got {desc}")
    n, c, h, w = images.shape
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"images: expected at least one non-empty image, got {desc}")
    if n > MAX_GRID_IMAGES or max(h, w) > MAX_IMAGE_SIDE:
        raise ValueError(
            f"images: at most {MAX_GRID_IMAGES} images of at most {MAX_IMAGE_SIDE} pixels a side, got {desc}"
        )
    if images.dtype.kind != "f":
        raise ValueError(f"images: expected a float array with values in [0, 1], got {desc}")
    if not np.isfinite(images).all():
        raise ValueError(f"images: contains NaN or infinite values ({desc})")
    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}")

    scale = max(1, GRID_CELL_PX // max(h, w))
    pixels = np.rint(np.clip(images.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=2).repeat(scale, axis=3)  # (N, C, H*s, W*s), nearest neighbour
    cols, rows = min(nrow, n), math.ceil(n / min(nrow, n))
    ch, cw, pad = h * scale, w * scale, GRID_PADDING_PX
    grid = np.full((c, rows * (ch + pad) + pad, cols * (cw + pad) + pad), 255, dtype=np.uint8)
    for k in range(n):
        y, x = pad + (k // cols) * (ch + pad), pad + (k % cols) * (cw + pad)
        grid[:, y : y + ch, x : x + cw] = pixels[k]
    image = Image.fromarray(grid[0]) if c == 1 else Image.fromarray(grid.transpose(1, 2, 0), mode="RGB")
    return _encode_png(image)


def curve_png(values: Sequence[float], title: str, *, width: int = 560, height: int = 320) -> str:
    """A base64 PNG line plot of `values` against their index (e.g. a training-loss curve).

    Non-finite values (a diverged run) are not drawn; the line breaks there and the title says how
    many were left out.
    """
    y = np.asarray(values, dtype=np.float64).reshape(-1) if len(values) else np.empty(0)
    finite = np.isfinite(y)
    if not finite.any():
        raise ValueError(f"{title}: no finite values to plot (got {y.size} values)")
    x = np.arange(y.size)
    if y.size > 2 * width:  # one point per half pixel is as much as the picture can show
        keep = np.unique(np.linspace(0, y.size - 1, 2 * width).round().astype(int))
        x, y, finite = x[keep], y[keep], finite[keep]
    lo, hi = float(y[finite].min()), float(y[finite].max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - max(0.5, abs(lo) * 0.05), hi + max(0.5, abs(hi) * 0.05)
    n_bad = int(np.size(values) - np.isfinite(np.asarray(values, dtype=np.float64)).sum())

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(13)
    left, right, top, bottom = 72, width - 16, 34, height - 34
    label = title if not n_bad else f"{title} ({n_bad} non-finite values not drawn)"
    _text(draw, (left, 10), label, font, "la")
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    _text(draw, (left - 6, top), _num(hi), font, "ra")
    _text(draw, (left - 6, bottom), _num(lo), font, "rd")
    _text(draw, (left, bottom + 6), "0", font, "la")
    _text(draw, (right, bottom + 6), str(int(np.size(values)) - 1), font, "ra")
    _text(draw, ((left + right) / 2, bottom + 6), "step", font, "ma", fill=(90, 90, 90))

    span_x = max(1, int(x[-1]))
    px = left + 4 + (x / span_x) * (right - left - 8)
    py = bottom - 4 - (np.where(finite, y, lo) - lo) / (hi - lo) * (bottom - top - 8)
    segment: list[tuple[float, float]] = []
    for xi, yi, ok in zip(px.tolist(), py.tolist(), finite.tolist(), strict=True):
        if ok:
            segment.append((xi, yi))
            continue
        _draw_segment(draw, segment)
        segment = []
    _draw_segment(draw, segment)
    return _encode_png(image)


def scatter_png(points: np.ndarray, reference: np.ndarray, title: str, *, size: int = 420) -> str:
    """A base64 PNG scatter plot of 2-D `points` (blue) over `reference` points (grey), on the reference's
    bounding box with a margin; points outside it are drawn on its edge."""
    pts, ref = np.asarray(points, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or ref.ndim != 2 or ref.shape[1] != 2 or not len(ref):
        raise ValueError(f"{title}: expected (N, 2) points, got {pts.shape} and {ref.shape}")
    pts = pts[np.isfinite(pts).all(axis=1)]
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    margin = 0.15 * (hi - lo) + 1e-9
    lo, hi = lo - margin, hi + margin
    image = Image.new("RGB", (size, size + 24), "white")
    draw = ImageDraw.Draw(image)
    _text(draw, (8, 6), title, _font(13), "la")
    top, side = 24, size - 8

    def pixels(xy: np.ndarray) -> np.ndarray:
        unit = np.clip((xy - lo) / (hi - lo), 0.0, 1.0)
        return np.stack([4 + unit[:, 0] * side, top + 4 + (1 - unit[:, 1]) * side], axis=1)

    draw.rectangle((4, top + 4, 4 + side, top + 4 + side), outline=(160, 160, 160))
    for color, xy in (((190, 190, 190), ref), ((31, 98, 190), pts)):
        for x, y in pixels(xy).tolist():
            draw.point((x, y), fill=color)
            draw.point((x + 1, y), fill=color)
    return _encode_png(image)


def _draw_segment(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]]) -> None:
    color = (31, 98, 190)
    if len(points) == 1:
        (x, y) = points[0]
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=color)
    elif points:
        draw.line(points, fill=color, width=2, joint="curve")


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    anchor: str,
    fill: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Draw text anchored like Pillow's `anchor` (l/m/r, a/d), also with the bitmap fallback font."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    x = xy[0] - {"l": x0, "m": (x0 + x1) / 2, "r": x1}[anchor[0]]
    y = xy[1] - {"a": y0, "d": y1}[anchor[1]]
    draw.text((x, y), text, fill=fill, font=font)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _encode_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
