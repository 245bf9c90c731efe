"""``farm report RUN --format html``: one self-contained HTML file, charts drawn as inline SVG.

Everything is rendered here, server side, from the results document: no script, no CDN, no
external font or image. A Content-Security-Policy forbids any fetch, so a page that tried to load
something would fail loudly in the browser (the Chromium test checks for console errors).
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any, Collection, Sequence

from farm.document import SCHEMA_VERSION, Document, Row
from farm.render.summary import outcome_counts, confidence, headline_lines, table, warnings
from farm.render.units import MISSING
from farm.render.units import short_ms as _nice_ms
from farm.samples import phase_key

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
ERROR_COLORS = {"auth": "#9467bd", "rate_limited": "#ff7f0e", "not_found": "#8c564b", "timeout": "#d62728",
                "provider_error": "#e377c2", "network": "#7f7f7f", "snippet_failed": "#bcbd22",
                "config": "#17becf"}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1240px;
color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.warn{background:#fff6e0;border-left:4px solid #f0a000;padding:8px 12px;margin:12px 0}
.warn li{margin:2px 0}.ok{color:#2a7a2a}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th{background:#f6f6f6;position:sticky;top:0}
td.l,th.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:6px 8px}figcaption{font-weight:600;font-size:13px}
svg text{font:11px system-ui,sans-serif;fill:#333}.axis{stroke:#999;stroke-width:1}.grid{stroke:#eee}
details pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}.legend{font-size:12px}
.scroll{overflow-x:auto;max-width:100%}
.sw{display:inline-block;width:12px;height:12px;margin:0 4px -2px 10px;border-radius:2px}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** e * m for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                for m in (1, 2, 5) if lo <= 10.0 ** e * m <= hi]
    base = 10 ** math.floor(math.log10(max(hi - lo, 1e-9)))
    step = next(base * m for m in (0.1, 0.2, 0.5, 1, 2, 5, 10) if (hi - lo) / (base * m) <= 7)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


class Axis:
    """Maps milliseconds to pixels, logarithmic when the values span more than 20×."""

    def __init__(self, values: Sequence[float], x0: float, x1: float, zero: bool = False) -> None:
        pos = [v for v in values if v is not None and v > 0]
        self.lo, self.hi = (min(pos), max(pos)) if pos else (0.001, 1.0)
        self.log = not zero and self.hi / self.lo > 20
        if zero:
            self.lo = 0.0  # bars: lengths must be comparable
        elif not self.log:  # a little room either side of the data
            pad = (self.hi - self.lo) * 0.04 or self.hi * 0.05
            self.lo, self.hi = max(self.lo - pad, 0.0), self.hi + pad
        if self.hi <= self.lo:
            self.hi = self.lo + 1.0
        self.x0, self.x1 = x0, x1

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            t = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return self.x0 + t * (self.x1 - self.x0)

    def svg(self, y: float, top: float, label: Any = None) -> str:
        out = [f'<line class="axis" x1="{self.x0}" y1="{y}" x2="{self.x1}" y2="{y}"/>']
        for t in _ticks(self.lo, self.hi, self.log):
            x = self(t)
            out.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}"/>'
                       f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{(label or _nice_ms)(t)}</text>')
        return "".join(out)


def cdf_chart(phase: str, series: dict[str, list[float]], probs: Sequence[float], colors: dict[str, str]) -> str:
    """One phase: the empirical CDF of every provider/snippet (quantile points from the document)."""
    w, h, left, right, top, bottom = 580, 250, 44, 570, 10, 220
    axis = Axis([v for pts in series.values() for v in pts], left, right)
    y = lambda p: bottom - p * (bottom - top)  # noqa: E731
    parts = [f'<svg class="chart cdf" data-phase="{_e(phase)}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
             f'role="img" aria-label="{_e(phase)} latency CDF">', axis.svg(bottom, top)]
    for p in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="grid" x1="{left}" y1="{y(p):.1f}" x2="{right}" y2="{y(p):.1f}"/>'
                     f'<text x="{left - 4}" y="{y(p) + 4:.1f}" text-anchor="end">{p:.0%}</text>')
    parts.append(f'<line class="grid" stroke-dasharray="3 3" x1="{left}" y1="{y(0.95):.1f}" x2="{right}" '
                 f'y2="{y(0.95):.1f}"/><text x="{right - 2}" y="{y(0.95) + 12:.1f}" text-anchor="end">p95</text>')
    mid = min(range(len(probs)), key=lambda i: abs(probs[i] - 0.5)) if probs else 0
    for name, pts in series.items():
        xy = " ".join(f"{axis(v):.1f},{y(p):.1f}" for p, v in zip(probs, pts) if v is not None)
        parts.append(f'<polyline fill="none" stroke="{colors[name]}" stroke-width="1.8" points="{xy}">'
                     f'<title>{_e(name)}: p50 {_nice_ms(pts[mid])}</title></polyline>')
    parts.append(f'<text x="{right}" y="{h - 2}" text-anchor="end">latency ({"log" if axis.log else "linear"} '
                 'scale) →</text></svg>')
    return "".join(parts)


def bar_chart(rows: list[Row], confidence: float, kind: str = "tti") -> str:
    """Horizontal bars of p50 with the p50 interval as a whisker and p95 as a tick."""
    if not rows:
        return ""
    w, left, right, bar_h = 760, 190, 740, 22
    h = 30 + bar_h * len(rows)
    axis = Axis([r.p95_ms or r.p50_ms for r in rows] + [r.p50_ms for r in rows], left, right, zero=True)
    parts = [f'<svg class="chart bars" data-kind="{kind}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
             f'role="img" aria-label="{kind} comparison">', axis.svg(h - 22, 4)]
    for i, r in enumerate(rows):
        yy = 6 + i * bar_h
        name = f"{r.provider} · {r.subject}"
        parts.append(f'<text x="{left - 6}" y="{yy + 14}" text-anchor="end">{_e(name)}</text>')
        if r.p50_ms is None:
            parts.append(f'<text x="{left + 4}" y="{yy + 14}">no successful samples</text>')
            continue
        x50 = axis(r.p50_ms)
        parts.append(f'<rect x="{left}" y="{yy + 3}" width="{max(x50 - left, 1):.1f}" height="{bar_h - 8}" '
                     f'fill="#4a90d9"><title>{_e(name)}: p50 {_nice_ms(r.p50_ms)} (n={r.n})</title></rect>')
        ci = r.p50_ci_ms
        if ci:
            a, b = axis(ci[0]), axis(ci[1])
            mid = yy + 3 + (bar_h - 8) / 2
            parts.append(f'<line stroke="#123" stroke-width="1.5" x1="{a:.1f}" y1="{mid}" x2="{b:.1f}" y2="{mid}">'
                         f'<title>p50 {confidence * 100:g}% CI {_nice_ms(ci[0])}–{_nice_ms(ci[1])}</title></line>')
        if r.p95_ms is not None:
            x95 = axis(r.p95_ms)
            parts.append(f'<line stroke="#d62728" stroke-width="2" x1="{x95:.1f}" y1="{yy + 1}" x2="{x95:.1f}" '
                         f'y2="{yy + bar_h - 3}"><title>p95 {_nice_ms(r.p95_ms)}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def error_chart(errors: dict[str, dict[str, int]]) -> str:
    """Stacked bars: failed samples per provider/snippet by error class."""
    if not errors:
        return '<p class="ok">No failed samples.</p>'
    w, left, right, bar_h = 760, 190, 740, 22
    h = 30 + bar_h * len(errors)
    axis = Axis([float(sum(c.values())) for c in errors.values()], left, right, zero=True)
    parts = [f'<svg class="chart errors" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             'aria-label="errors by class">', axis.svg(h - 22, 4, lambda t: f"{t:g}")]
    for i, (key, classes) in enumerate(errors.items()):
        yy, x = 6 + i * bar_h, float(left)
        parts.append(f'<text x="{left - 6}" y="{yy + 14}" text-anchor="end">{_e(key)}</text>')
        for cls, count in sorted(classes.items()):
            x1 = x + (axis(count) - left)
            parts.append(f'<rect x="{x:.1f}" y="{yy + 3}" width="{max(x1 - x, 1):.1f}" height="{bar_h - 8}" '
                         f'fill="{ERROR_COLORS.get(cls, "#555")}"><title>{_e(cls)}: {count}</title></rect>')
            x = x1
    parts.append("</svg>")
    legend = "".join(f'<span class="sw" style="background:{ERROR_COLORS.get(c, "#555")}"></span>{_e(c)}'
                     for c in sorted({c for v in errors.values() for c in v}))
    counts = _table_html(["provider/snippet", "class", "failed samples"],
                         [[k, c, str(n)] for k, v in errors.items() for c, n in sorted(v.items())], 2)
    return "".join(parts) + f'<div class="legend">{legend}</div>' + counts


def _messages_html(doc: Document) -> str:
    """The most frequent error message per provider/snippet and class: what to do about a count."""
    rows = [[key, cls, str(m["count"]), m["message"]] for key, classes in doc.error_messages.items()
            for cls, items in classes.items() for m in items]
    return _table_html(["provider/snippet", "class", "samples", "message"], rows, 4) if rows else ""


def _table_html(headers: list[str], rows: list[list[str]], left: int | Collection[int] = 3) -> str:
    lefts = set(range(left)) if isinstance(left, int) else set(left)
    head = "".join(f'<th class="{"l" if i in lefts else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i in lefts else ""}">{_e(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _manifest_html(doc: Document) -> str:
    m = doc.manifest
    plan = m.get("plan", {})
    facts = m.get("provider_facts", {})
    scheduler = m.get("scheduler", {})
    rows = [["run", doc.run_id], ["label", doc.status.label or MISSING], ["created", m.get("created", "")],
            ["providers", ", ".join(plan.get("providers", []))], ["snippets", ", ".join(plan.get("snippets", []))],
            ["repetitions / warm-up", f"{plan.get('repetitions')} / {plan.get('warmup')}"],
            ["seed", plan.get("seed")], ["concurrency", m.get("concurrency")],
            ["farm / python", f"{scheduler.get('farm_version')} / {scheduler.get('python')}"]]
    for name, f in sorted(facts.items()):
        versions = ", ".join(f"{k}={v}" for k, v in sorted(f.items()) if k not in ("warm", "worker"))
        rows.append([f"{name} facts", versions or MISSING])
    stats = doc.statistics
    rows.append(["statistics", ", ".join(f"{k}={stats[k]}" for k in
                                         ("confidence", "exact_limit", "sketch_relative_accuracy", "compare_alpha",
                                          "compare_threshold", "baseline_runs") if k in stats)])
    body = "".join(f'<tr><td class="l">{_e(k)}</td><td class="l">{_e(v)}</td></tr>' for k, v in rows)
    full = json.dumps(m, indent=2, default=str)
    return (f"<table>{body}</table><details><summary>full manifest (config, timeouts, settings)</summary>"
            f"<pre>{_e(full)}</pre></details>")


def _cost_html(doc: Document) -> str:
    cost = doc.cost
    if not cost:
        return "<p>No sandboxes were created.</p>"
    rows = []
    for p, c in cost["providers"].items():
        if c["run_cost"] is None:
            rows.append([p, c["sandboxes"], f"{c['sandbox_hours']:.4f}", "no price configured", MISSING])
        else:
            rows.append([p, c["sandboxes"], f"{c['sandbox_hours']:.4f}", f"{c['run_cost']:.4f} {c['currency']}",
                         f"{c['per_1000_sandboxes']:.2f} {c['currency']}"])
    return (f"<p><em>{_e(cost['label'])}</em> (sandbox lifetime = create through destroy, warm-ups and "
            "failures included).</p>" + _table_html(["provider", "sandboxes", "sandbox-hours", "this run",
                                                      "per 1,000 sandboxes"], [[str(c) for c in r] for r in rows], 1))


def _charts_html(doc: Document) -> str:
    """A CDF chart per phase, every provider/snippet in it, and their colour legend."""
    dists = doc.distributions
    names = sorted({" · ".join(k.split("/", 2)[:2]) for k in dists})
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    probs = doc.statistics.get("cdf_probs", [])
    charts = []
    for phase in sorted({r.phase for r in doc.results}, key=phase_key):
        series = {f"{k.split('/')[0]} · {k.split('/')[1]}": v for k, v in dists.items()
                  if k.split("/", 2)[2] == phase}
        if series:
            charts.append(f"<figure><figcaption>{_e(phase)}</figcaption>{cdf_chart(phase, series, probs, colors)}"
                          "</figure>")
    legend = "".join(f'<span class="sw" style="background:{c}"></span>{_e(n)}' for n, c in colors.items())
    return f"""<div class="legend">{legend}</div>
<div class="charts">{''.join(charts) or '<p>No successful samples.</p>'}</div>"""


def _warnings_html(doc: Document) -> str:
    warn = warnings(doc)
    if not warn:
        return '<p class="ok">No warnings.</p>'
    return '<div class="warn"><strong>Warnings</strong><ul>' + "".join(f"<li>{_e(w)}</li>" for w in warn) + "</ul></div>"


def _headline_html(doc: Document) -> str:
    lines = headline_lines(doc)
    return ('<ul class="headline">' + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>") if lines else ""


def _baseline_html(doc: Document) -> str:
    base = doc.baseline
    if not base:
        return ""
    return (f"<h2>Rolling baseline</h2><p>Compared with {len(base['runs'])} previous run(s) of the same "
            f"plan: {_e(', '.join(base['runs']))}.</p>" +
            ("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in base["flags"]) + "</ul>" if base["flags"]
             else '<p class="ok">No significant change against the baseline.</p>'))


def render(doc: Document, columns: Sequence[str] | None = None) -> str:
    """The whole report as one HTML string."""
    st = doc.status
    conf = confidence(doc)
    tti = [r for r in doc.results if r.phase == "tti"]
    summary = table(doc, columns)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox Farm run {_e(doc.run_id)}</title><style>{CSS}</style></head>
<body>
<h1>Sandbox Farm run <code>{_e(doc.run_id)}</code></h1>
<p class="meta">{_e(st.state)} · {_e(outcome_counts(st))} of {st.planned} planned
{(' · label ' + _e(st.label)) if st.label else ''} · schema v{SCHEMA_VERSION}</p>
{_warnings_html(doc)}
<h2>Summary</h2>
<p class="meta">{"<br>".join(_e(line) for line in summary.notes)}</p>
{_headline_html(doc)}
{_table_html(summary.headers, summary.rows, summary.left)}
<h2>Time to interactive</h2>
<p class="meta">create (or warm claim) + first successful execution: bar = p50, black whisker = its interval,
red tick = p95.</p>
{bar_chart(tti, conf) or '<p>No time-to-interactive measured.</p>'}
<h2>Latency distributions per phase</h2>
{_charts_html(doc)}
<h2>Errors by class</h2>
{error_chart(doc.errors_by_class)}
{_messages_html(doc)}
{_baseline_html(doc)}
<h2>Cost</h2>
{_cost_html(doc)}
<h2>Run manifest</h2>
{_manifest_html(doc)}
</body></html>
"""
