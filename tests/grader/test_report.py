import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grader.report import (
    curve_png,
    grid_png,
    render_gradescope,
    render_html,
    render_json,
    render_summary,
    write_reports,
)
from grader.results import Figure, ItemResult, Report, SandboxSummary

HOSTILE = "<script>alert('owned')</script>"


def decode(png_base64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(png_base64, validate=True)))
    assert image.format == "PNG"
    return image


def make_report(*, isolated: bool = True, figures: list[Figure] | None = None) -> Report:
    items = [
        ItemResult(
            id="t1",
            kind="theory",
            title="Shell fraction",
            task="Theory",
            points=1,
            max_points=1,
            status="passed",
            message="answer t1 is equivalent to the expected expression",
        ),
        ItemResult(
            id="t2",
            kind="manual",
            title="NF expressivity proof",
            task="Theory",
            points=0,
            max_points=2,
            status="pending",
        ),
        ItemResult(
            id="mask",
            kind="check",
            title="Masked convolution",
            task="PixelCNN",
            points=0.75,
            max_points=1.5,
            status="partial",
            message="4 of 8 masks match",
            details={"cases": 8},
        ),
        ItemResult(
            id="nll",
            kind="metric",
            title="Test NLL",
            task="PixelCNN",
            points=0,
            max_points=2.5,
            status="failed",
            message="nll too high",
            details={"metric": "nll", "value": 0.4321, "unit": "nats/dim", "reference": 0.0987, "ratio": 4.378},
        ),
        ItemResult(
            id="rf",
            kind="check",
            title="Receptive field",
            task="PixelCNN",
            points=0,
            max_points=1,
            status="error",
            message=f"NameError: {HOSTILE}",
        ),
    ]
    return Report(
        assignment="hw1",
        profile="ci",
        total=1.75,
        max_total=8,
        auto_total=1.75,
        auto_max=6,
        pending_manual=2,
        items=items,
        warnings=[f"cell 3 printed {HOSTILE}"],
        sandbox=SandboxSummary(
            backend="bwrap" if isolated else "none",
            reason="timeout",
            exit_code=None,
            duration_s=12.5,
            peak_memory_bytes=3 * 2**20,
            isolated=isolated,
        ),
        figures=figures if figures is not None else [],
        duration_s=13.25,
    )


# --------------------------------------------------------------------------- HTML


def test_html_shows_scores_tasks_statuses_and_messages() -> None:
    page = render_html(make_report())
    text = html.unescape(page)
    assert re.search(r'id="total">1\.75 <span>/ 8</span>', page)
    assert "1.75 / 6" in text  # automatic
    assert "2 points" in text  # pending manual
    for task in ("Theory", "PixelCNN"):
        assert f"<h2>{task}" in page
    for status in ("passed", "partial", "failed", "error", "pending"):
        assert f'<span class="badge {status}">{status}</span>' in page
    assert "4 of 8 masks match" in text
    assert "Awaiting review by a TA." in text
    assert "0.75 / 1.5" in text
    assert "nll: <strong>0.4321 nats/dim</strong>" in page
    assert "vs reference 0.0987 nats/dim (ratio 4.378)" in text
    assert "<dt>cases</dt><dd>8</dd>" in page
    assert "timeout" in text and "3.0 MiB" in text and "12.5 s" in text


def test_html_escapes_hostile_text() -> None:
    report = make_report()
    report.items[0].title = HOSTILE
    report.sandbox.backend = '"><img src=x onerror=alert(1)>'  # type: ignore[union-attr]
    page = render_html(report)
    assert "<script>" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page


def test_not_isolated_banner_only_when_the_run_was_not_isolated() -> None:
    assert 'id="not-isolated"' not in render_html(make_report(isolated=True))
    page = render_html(make_report(isolated=False))
    assert 'id="not-isolated"' in page
    assert "ran without a sandbox" in page
    no_sandbox = make_report()
    no_sandbox.sandbox = None
    assert 'id="not-isolated"' not in render_html(no_sandbox)


def test_html_embeds_figures_as_data_uris_and_skips_broken_ones() -> None:
    grid = grid_png(np.zeros((4, 1, 8, 8), dtype=np.float32), nrow=2)
    broken = base64.b64encode(b"GIF89a not a png").decode()
    page = render_html(
        make_report(figures=[Figure(title="samples", png_base64=grid), Figure(title="bad", png_base64=broken)])
    )
    assert f'src="data:image/png;base64,{grid}"' in page
    assert "(this figure could not be displayed)" in page
    assert broken not in page
    assert "<figcaption>samples</figcaption>" in page


def test_nothing_outside_the_model_is_rendered() -> None:
    data = make_report().model_dump()
    data["answer_key"] = "SECRET-KEY-1"
    data["items"][0]["reference_solution"] = "SECRET-PATH-2"
    data["sandbox"]["host_path"] = "SECRET-DIR-3"
    report = Report.model_validate(data)

    class InternalReport(Report):  # e.g. a server-side model with private fields
        oracle_seed: int = 987654321
        hidden_data: str = "SECRET-DATA-4"

    internal = InternalReport.model_validate(data)
    outputs = [
        render_html(r) + render_json(r) + json.dumps(render_gradescope(r)) + render_summary(r)
        for r in (report, internal)
    ]
    for output in outputs:
        for secret in ("SECRET", "987654321", "answer_key", "oracle_seed", "hidden_data", "host_path"):
            assert secret not in output
    assert set(json.loads(render_json(internal))) == set(Report.model_fields)


# --------------------------------------------------------------------------- JSON, Gradescope, summary, files


def test_json_round_trips() -> None:
    report = make_report()
    assert Report.model_validate_json(render_json(report)) == report


def test_gradescope_sums_and_statuses() -> None:
    out = render_gradescope(make_report())
    tests = out["tests"]
    assert [t["name"] for t in tests] == [
        "t1: Shell fraction",
        "mask: Masked convolution",
        "nll: Test NLL",
        "rf: Receptive field",
    ]
    assert out["score"] == pytest.approx(sum(t["score"] for t in tests)) == pytest.approx(1.75)
    assert out["max_score"] == pytest.approx(sum(t["max_score"] for t in tests)) == pytest.approx(6)
    assert [t["status"] for t in tests] == ["passed", "failed", "failed", "failed"]
    assert "2 points await manual review by a TA: t2" in out["output"]
    assert json.loads(json.dumps(out)) == out
    assert set(tests[0]) == {"name", "score", "max_score", "output", "status"}


def test_summary_lists_totals_and_items() -> None:
    summary = render_summary(make_report(isolated=False))
    assert summary.splitlines()[0] == "hw1 (profile ci): 1.75 / 8 points (automatic 1.75 / 6, 2 pending manual review)"
    assert re.search(r"partial +mask +0\.75 / 1\.5  4 of 8 masks match", summary)
    assert "NOT ISOLATED" in summary


def test_write_reports(tmp_path: Path) -> None:
    report = make_report()
    json_path, html_path, gs_path = tmp_path / "a" / "r.json", tmp_path / "b" / "r.html", tmp_path / "gs.json"
    write_reports(report, json_path=json_path, html_path=html_path, gradescope_path=gs_path)
    assert Report.model_validate_json(json_path.read_text(encoding="utf-8")) == report
    assert html_path.read_text(encoding="utf-8") == render_html(report)
    assert json.loads(gs_path.read_text(encoding="utf-8"))["score"] == pytest.approx(1.75)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["gs.json", "r.html", "r.json"]
    write_reports(report)  # nothing asked, nothing written


# --------------------------------------------------------------------------- pictures


def test_grid_png_layout_and_nearest_neighbour_upscaling() -> None:
    images = np.zeros((10, 1, 8, 8), dtype=np.float32)
    images[3, 0, 2, 5] = 1.0  # one bright pixel in the 4th image
    image = decode(grid_png(images, nrow=4))
    # 8x8 is upscaled x8 to 64 px; 4 columns, 3 rows, 2 px padding.
    assert image.size == (4 * 66 + 2, 3 * 66 + 2)
    assert image.mode == "L"
    pixels = np.asarray(image)
    x0, y0 = 2 + 3 * 66, 2  # top-left corner of image 3
    block = pixels[y0 + 2 * 8 : y0 + 3 * 8, x0 + 5 * 8 : x0 + 6 * 8]
    assert (block == 255).all()
    assert pixels[y0 : y0 + 64, x0 : x0 + 64].sum() == 255 * 64
    assert (pixels[:2, :] == 255).all()  # padding


def test_grid_png_rgb_and_clipping() -> None:
    images = np.full((2, 3, 32, 32), 2.0)
    images[:, 1] = -1.0
    image = decode(grid_png(images))
    assert image.mode == "RGB"
    assert image.size == (2 * 66 + 2, 66 + 2)
    assert tuple(np.asarray(image)[10, 10]) == (255, 0, 255)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((4, 8, 8), dtype=np.float32), r"expected shape \(N, C, H, W\).*got \(4, 8, 8\) float32"),
        (np.zeros((4, 2, 8, 8), dtype=np.float32), "C = 1 or 3"),
        (np.zeros((0, 1, 8, 8), dtype=np.float32), "at least one"),
        (np.zeros((4, 1, 8, 8), dtype=np.uint8), "expected a float array"),
        (np.full((4, 1, 8, 8), np.nan), "NaN"),
        (np.zeros((2, 1, 1000, 8)), "at most"),
        ([[[[0.5]]]], "numpy array"),
    ],
)
def test_grid_png_rejects_bad_input(images: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grid_png(images)


def test_curve_png() -> None:
    losses = [3.0 / (1 + i) for i in range(200)]
    image = decode(curve_png(losses, "training loss"))
    assert image.size == (560, 320)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80)
    assert blue.sum() > 300  # the curve is drawn
    assert decode(curve_png([1.0, float("nan"), 2.0, float("inf"), 1.5], "diverged")).size == (560, 320)
    assert decode(curve_png([2.0], "one value")).size == (560, 320)
    assert decode(curve_png(list(np.linspace(1, 0, 100_000)), "long run")).size == (560, 320)
    with pytest.raises(ValueError, match="no finite values"):
        curve_png([float("nan")], "nothing")
    with pytest.raises(ValueError, match="no finite values"):
        curve_png([], "empty")
