"""Reports from a real run (real redis-server, real prefork local workers via tests.harness.Farm):
the HTML report rendered in real headless Chromium (Debian's `chromium`) driven over the DevTools
protocol with websocket-client: charts drew, no console errors, nothing fetched. Also the
terminal/markdown/JSON renderers of the same run. No seam is faked.

FARM_UPDATE_SCREENSHOTS=1 also writes docs/img/report.png (the README's picture)."""

import base64
import json
import os
from pathlib import Path

import pytest

from farm.document import Document
from farm.render import html as html_format
from farm.render import markdown, table
from farm.report import build_document, render
from farm.snippets import parse_snippet
from tests.chromium import CHROMIUM, headless

REPO = Path(__file__).resolve().parent.parent
BOOM = '# /// farm\n# name = "boom"\n# description = "always fails"\n# ///\nraise SystemExit(4)\n'
OLD_ROW_KEYS = {"provider", "snippet", "phase", "n", "errors", "error_rate", "min_ms", "p50_ms", "p90_ms",
                "p95_ms", "p99_ms", "max_ms", "mean_ms", "stdev_ms"}


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One real run (two snippets that succeed, one that always fails), with a priced config."""
    from tests.harness import Farm

    config = {"pricing": {"local": {"per_hour": 0.36, "per_sandbox": 0.002, "currency": "EUR"}}}
    with Farm(tmp_path_factory.mktemp("farm"), config) as farm:
        farm.worker("local", concurrency=2)
        snippets = farm.snippets("hello", "primes") + [parse_snippet(BOOM, "boom.py")]
        run_id = farm.scheduler.create_run(farm.config, ["local"], snippets, repetitions=12, warmup=1,
                                           concurrency=2, seed=3, label="schedule:nightly")
        farm.wait(run_id, timeout=120)
        doc = build_document(farm.store, run_id, farm.config)
        html = render(farm.store, run_id, "html", farm.config)
        yield doc, html


def test_document_keeps_old_fields_and_adds_statistics(reported):
    doc, _ = reported
    for key in ("schema_version", "run_id", "status", "manifest", "counts", "errors_by_class", "results"):
        assert key in doc
    assert {"statistics", "warnings", "distributions", "cost", "baseline"} <= set(doc)
    row = next(r for r in doc["results"] if r["snippet"] == "hello" and r["phase"] == "run")
    assert OLD_ROW_KEYS <= set(row) and row["n"] == 12
    assert row["p50_ci_ms"][0] <= row["p50_ms"] <= row["p50_ci_ms"][1]
    assert row["p99_ci_ms"] is None and "insufficient_n:p99" in row["flags"]
    assert any("p99 from" in w and "run ≥ 368 repetitions" in w for w in doc["warnings"])
    cost = doc["cost"]
    assert cost["label"] == "estimate from configured prices"
    local = cost["providers"]["local"]
    assert local["sandboxes"] == doc["status"]["done"] == 39  # warm-ups and failures are billed too
    assert local["run_cost"] == pytest.approx(0.36 * local["sandbox_hours"] + 0.002 * 39)
    assert local["per_1000_sandboxes"] == pytest.approx(local["run_cost"] / 39 * 1000) and local["currency"] == "EUR"
    assert doc["errors_by_class"] == {"local/boom": {"snippet_failed": 12}}
    boom = [r for r in doc["results"] if r["snippet"] == "boom"]
    assert [(r["n"], r["errors"], r["p50_ms"], r["p50_ci_ms"]) for r in boom] == [(0, 12, None, None)]
    json.dumps(doc)  # the versioned format stays JSON-serialisable


def test_terminal_table_has_a_unit_per_row_and_fits_120_columns(reported):
    doc, _ = reported
    text = table.render(Document.from_json(doc))
    lines = text.splitlines()
    header = lines[1]
    for col in (" n ", " unit ", " p50 ", " p50 CI ", " p90 ", " p95 ", " p95 CI ", " p99 ", " flags"):
        assert col in header + " ", col
    body = lines[1:lines.index(next(ln for ln in lines if ln.startswith("note: ")))]
    assert max(len(ln) for ln in body) <= 120
    assert "local · hello — 0 failed" in body and "local · boom — 12 of 12 failed (100.0%)" in body
    units = {ln.split()[0]: ln.split()[2] for ln in body if ln.startswith("  ") and len(ln.split()) > 3}
    assert units["run"] in ("µs", "ms", "s") and "queue (wall)" in text
    assert "estimate from configured prices" in text and "— n≥368" in text
    md = markdown.render(Document.from_json(doc))
    assert "| local | hello | 0.0 | queue (wall) |" in md and "| p50 CI |" in md


def test_html_is_self_contained_and_escaped(reported):
    doc, html = reported
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "schedule:nightly" in html
    hostile = {**doc, "status": {**doc["status"], "label": "<img src=x onerror=alert(1)>"}}
    page = html_format.render(Document.from_json(hostile))
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page  # labels are escaped
    for section in ("Summary", "Time to interactive", "Latency distributions per phase", "Errors by class",
                    "Cost", "Run manifest", "estimate from configured prices"):
        assert section in html
    assert f">{doc['manifest']['plan']['seed']}<" in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(reported, tmp_path):
    doc, html = reported
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    with headless(tmp_path / "profile") as cdp:
        cdp.call("Page.navigate", url=page.as_uri())
        cdp.wait_event("Page.loadEventFired")
        found = json.loads(cdp.call("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
            cdf: document.querySelectorAll('svg.chart.cdf').length,
            lines: document.querySelectorAll('svg.chart.cdf polyline').length,
            tti: document.querySelectorAll('svg.chart.bars[data-kind=tti] rect').length,
            errors: document.querySelectorAll('svg.chart.errors rect').length,
            drawn: [...document.querySelectorAll('svg.chart')].every(s => s.getBBox().width > 100),
            rows: document.querySelectorAll('table tbody tr').length})""")["result"]["value"])
        metrics = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": metrics["height"], "scale": 1})
        png = base64.b64decode(shot["data"])
    assert cdp.problems() == []
    phases = {r["phase"] for r in doc["results"] if r["n"]}
    assert found["cdf"] == len(phases) and found["lines"] >= len(doc["distributions"])
    assert found["tti"] == 2 and found["errors"] == 1 and found["drawn"]
    assert found["rows"] >= len(doc["results"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (tmp_path / "report.png").write_bytes(png)
    if os.environ.get("FARM_UPDATE_SCREENSHOTS"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        (REPO / "docs" / "img" / "report.png").write_bytes(png)
