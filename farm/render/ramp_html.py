"""A ramp (farm/ramp.py) as one self-contained HTML page: per provider, tti p50/p95/p99 against the
concurrency level (the p95 interval as whiskers, the level-1 band shaded, the knee marked), the
error rate per level, and the table. Inline SVG, no script, nothing fetched."""

from __future__ import annotations

from html import escape
from typing import Any

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 720, 300, 64, 24, 20, 44
SERIES = (("p50_ms", "#2b6cb0"), ("p95_ms", "#c05621"), ("p99_ms", "#805ad5"))


def _x(i: int, count: int) -> float:
    """Levels are spaced evenly (they usually double), left to right."""
    return PAD_L + (W - PAD_L - PAD_R) * (i / max(count - 1, 1))


def _latency_chart(p: dict[str, Any]) -> str:
    levels = p["levels"]
    values = [lv["tti"].get(k) for lv in levels for k, _ in SERIES] + \
        [c for lv in levels for c in (lv["tti"].get("p95_ci_ms") or [])] + [p["band"].get("p95_ms")]
    top = max([v for v in values if v is not None] or [1.0]) * 1.1

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - v / top)

    parts = [f'<svg class="chart ramp" data-provider="{escape(p["provider"])}" viewBox="0 0 {W} {H}" '
             f'width="{W}" height="{H}" role="img" aria-label="tti against concurrency for {escape(p["provider"])}">']
    band = p["band"].get("p95_ms")
    if band is not None:
        parts.append(f'<rect class="band" x="{PAD_L}" y="{y(band):.1f}" width="{W - PAD_L - PAD_R}" '
                     f'height="{H - PAD_B - y(band):.1f}" fill="#e6fffa"><title>level-1 band: p95 up to '
                     f'{band:.1f} ms</title></rect>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        v = top * frac
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.0f}</text>')
    for i, lv in enumerate(levels):
        parts.append(f'<text x="{_x(i, len(levels)):.1f}" y="{H - PAD_B + 16}" text-anchor="middle" '
                     f'font-size="11">{lv["level"]}</text>')
        ci = lv["tti"].get("p95_ci_ms")
        if ci:
            x = _x(i, len(levels))
            parts.append(f'<line class="ci" x1="{x:.1f}" x2="{x:.1f}" y1="{y(ci[0]):.1f}" y2="{y(ci[1]):.1f}" '
                         f'stroke="#c05621" stroke-width="2" opacity="0.5"/>')
    parts.append(f'<text x="{(W + PAD_L) / 2:.0f}" y="{H - 6}" text-anchor="middle" font-size="12">'
                 'concurrency level (samples in flight)</text>'
                 f'<text x="14" y="{H / 2:.0f}" transform="rotate(-90 14 {H / 2:.0f})" text-anchor="middle" '
                 'font-size="12">tti ms</text>')
    for key, colour in SERIES:
        points = [(_x(i, len(levels)), y(lv["tti"][key])) for i, lv in enumerate(levels) if lv["tti"].get(key) is not None]
        if points:
            parts.append(f'<polyline class="{key[:3]}" fill="none" stroke="{colour}" stroke-width="2" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
            parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in points]
    for tag, level, colour in (("knee", p["knee"], "#2f855a"), ("degraded", p["degraded_at"], "#c53030")):
        if level is None:
            continue
        i = [lv["level"] for lv in levels].index(level)
        x = _x(i, len(levels))
        parts.append(f'<line class="{tag}" x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="{colour}" '
                     f'stroke-dasharray="5,4" stroke-width="2"/><text class="{tag}-label" x="{x + 4:.1f}" '
                     f'y="{PAD_T + 12}" font-size="12" fill="{colour}">{tag} {level}</text>')
    legend = " ".join(f'<tspan fill="{c}">■ {k[:3]}</tspan>' for k, c in SERIES)
    parts.append(f'<text x="{W - PAD_R}" y="{PAD_T + 12}" text-anchor="end" font-size="12">{legend}</text></svg>')
    return "".join(parts)


def _error_chart(p: dict[str, Any]) -> str:
    levels, h = p["levels"], 140
    parts = [f'<svg class="chart ramp-errors" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" '
             f'aria-label="error rate against concurrency for {escape(p["provider"])}">']
    inner = h - PAD_T - 30
    step = (W - PAD_L - PAD_R) / max(len(levels), 1)
    for i, lv in enumerate(levels):
        rate = lv["error_rate"] or 0.0
        x = PAD_L + step * i + step * 0.2
        parts.append(f'<rect x="{x:.1f}" y="{PAD_T + inner * (1 - rate):.1f}" width="{step * 0.6:.1f}" '
                     f'height="{max(inner * rate, 0.5):.1f}" fill="#c53030"><title>level {lv["level"]}: '
                     f'{lv["errors"]}/{lv["n"]} failed</title></rect>'
                     f'<text x="{x + step * 0.3:.1f}" y="{h - 14}" text-anchor="middle" font-size="11">{lv["level"]}: '
                     f'{rate:.0%}</text>')
    band = p["band"].get("error_rate")
    if band is not None:
        yb = PAD_T + inner * (1 - band)
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{yb:.1f}" y2="{yb:.1f}" stroke="#2f855a" '
                     f'stroke-dasharray="4,3"><title>level-1 band: error rate up to {band:.1%}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def _table(p: dict[str, Any]) -> str:
    def ms(v: Any) -> str:
        return "–" if v is None else f"{v:.1f}"

    rows = []
    for lv in p["levels"]:
        t = lv["tti"]
        ci = t.get("p95_ci_ms")
        mark = "knee" if lv["level"] == p["knee"] else "leaves the band" if lv["level"] == p["degraded_at"] else ""
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in (
            lv["level"], "?" if lv["offered"] is None else lv["offered"], lv["peak_in_flight"], ms(t.get("p50_ms")),
            ms(t.get("p95_ms")) + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""), ms(t.get("p99_ms")),
            "–" if lv["throughput_per_s"] is None else f"{lv['throughput_per_s']:.2f}",
            f"{lv['errors']}/{lv['n']}" + "".join(f" {k}={v}" for k, v in lv["errors_by_class"].items()),
            "; ".join(lv["capped"]), mark)) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("level", "offered", "peak in flight", "tti p50 ms", "p95 ms [CI]",
                                            "p99 ms", "ok/s", "errors", "capped", ""))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render(result: dict[str, Any]) -> str:
    """The ramp's JSON (RampResult.to_json) as a page."""
    body = [f"<h1>Ramp {escape(result['ramp_id'])}</h1>",
            f"<p>Levels {', '.join(map(str, result['levels']))}; {result['per_level']} samples per snippet per "
            f"level; band tolerance {result['tolerance']:.0%}. The knee is the highest level still inside the "
            "level-1 band (p95 and error rate); the next level is the first to leave it.</p>"]
    body += [f"<p class=note>{escape(n)}</p>" for n in result["notes"]]
    for p in result["providers"]:
        body += [f"<h2>{escape(p['provider'])}</h2>", f"<p class=verdict>{escape(p['verdict'])}</p>",
                 _latency_chart(p), _error_chart(p), _table(p)]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>farm ramp "
            f"{escape(result['ramp_id'])}</title><style>body{{font:14px system-ui,sans-serif;margin:24px}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
            ".note{color:#975a16}</style></head><body>" + "".join(body) + "</body></html>")
