"""A trend chart as inline SVG: nightly p50 with its interval, p95, change points and settings
changes marked. No script: hover values are SVG ``<title>`` tooltips, a point links to its run's
report when one was published. Numbers are rounded to 0.1 px to keep a year of nights small."""

from __future__ import annotations

from html import escape
from typing import Any, Callable

WIDTH_PER_POINT = 3.0
HEIGHT = 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 22, 30


def _f(v: float) -> str:
    return f"{v:.1f}"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def trend(points: list[dict[str, Any]], change_points: list[dict[str, Any]], link: Callable[[str], str | None],
          title: str) -> str:
    """``points`` (oldest first) each with run_id, created, digest, p50_ms, p50_ci_ms, p95_ms."""
    shown = [p for p in points if p["p50_ms"] is not None]
    width = max(640, min(1200, PAD_L + PAD_R + WIDTH_PER_POINT * len(shown)))
    if not shown:
        return f'<p class="meta">{escape(title)}: no measured night in this window.</p>'
    values = [v for p in shown for v in (p["p50_ms"], p["p95_ms"], *(p["p50_ci_ms"] or ())) if v is not None]
    lo, hi = min(values), max(values)
    span = (hi - lo) or max(hi, 1.0) * 0.1
    lo, hi = max(0.0, lo - 0.05 * span), hi + 0.05 * span
    plot_w, plot_h = width - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    step = plot_w / max(len(shown) - 1, 1)

    def x(i: int) -> float:
        return PAD_L + (i * step if len(shown) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - (v - lo) / (hi - lo))

    out = [f'<svg class="chart trend" role="img" viewBox="0 0 {_f(width)} {HEIGHT}" width="{_f(width)}" '
           f'height="{HEIGHT}" data-points="{len(shown)}"><title>{escape(title)}</title>']
    for frac in (0, 0.5, 1):  # y grid and labels
        v = lo + frac * (hi - lo)
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{_f(width - PAD_R)}" y1="{_f(y(v))}" y2="{_f(y(v))}"/>'
                   f'<text x="{PAD_L - 4}" y="{_f(y(v) + 4)}" text-anchor="end">{_ms(v)} ms</text>')
    out.append(f'<text x="{PAD_L}" y="{HEIGHT - 8}">{escape(shown[0]["created"][:10])}</text>'
               f'<text x="{_f(width - PAD_R)}" y="{HEIGHT - 8}" text-anchor="end">{escape(shown[-1]["created"][:10])}</text>')
    index = {p["run_id"]: i for i, p in enumerate(shown)}
    labelled = -1e9
    for i in range(1, len(shown)):  # settings changes: a new series digest starts here
        if shown[i]["digest"] != shown[i - 1]["digest"]:
            at = x(i) - step / 2
            xs = _f(at)
            out.append(f'<line class="settings" x1="{xs}" x2="{xs}" y1="{PAD_T}" y2="{PAD_T + plot_h + 6}">'
                       f'<title>settings changed before {escape(shown[i]["created"][:10])}: a new series</title></line>')
            if at - labelled > 70:  # a label only where it does not overwrite the previous one
                out.append(f'<text class="settings" x="{xs}" y="{HEIGHT - 18}" text-anchor="middle">settings</text>')
                labelled = at
    band = "".join(f'M{_f(x(i))} {_f(y(p["p50_ci_ms"][0]))}V{_f(y(p["p50_ci_ms"][1]))}'
                   for i, p in enumerate(shown) if p["p50_ci_ms"])
    if band:
        out.append(f'<path class="ci" d="{band}"/>')
    p95 = " ".join(f'{_f(x(i))},{_f(y(p["p95_ms"]))}' for i, p in enumerate(shown) if p["p95_ms"] is not None)
    if p95:
        out.append(f'<polyline class="p95" points="{p95}"/>')
    out.append('<polyline class="p50" points="' + " ".join(f'{_f(x(i))},{_f(y(p["p50_ms"]))}'
                                                            for i, p in enumerate(shown)) + '"/>')
    for cp in change_points:
        if cp["run_id"] not in index:
            continue
        xs = _f(x(index[cp["run_id"]]) - step / 2)
        size = f"{cp['change'] * 100:+.0f} %" if cp["change"] is not None else "change"
        out.append(f'<line class="changepoint" data-run="{escape(cp["run_id"])}" x1="{xs}" x2="{xs}" y1="{PAD_T - 6}" '
                   f'y2="{PAD_T + plot_h}"><title>change point: p50 {_ms(cp["before_ms"])} → {_ms(cp["after_ms"])} ms '
                   f'({size}), p={cp["p_value"]:.2g}</title></line><text class="changepoint" x="{xs}" y="{PAD_T - 8}" '
                   f'text-anchor="middle">{escape(size)}</text>')
    for i, p in enumerate(shown):
        ci = p["p50_ci_ms"]
        tip = (f'{p["created"][:10]} p50 {_ms(p["p50_ms"])}' + (f' ({_ms(ci[0])}–{_ms(ci[1])})' if ci else "")
               + f' p95 {_ms(p["p95_ms"])} ms n={p["n"]}')
        dot = f'<circle cx="{_f(x(i))}" cy="{_f(y(p["p50_ms"]))}" r="2.2"><title>{escape(tip)}</title></circle>'
        href = link(p["run_id"])
        out.append(f'<a href="{escape(href)}">{dot}</a>' if href else dot)
    out.append("</svg>")
    return "".join(out)
