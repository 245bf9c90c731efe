"""The site's HTML pages, rendered from ``SiteData`` alone: leaderboard (index), trends, methodology.

Self-contained like the run report (farm/render/html.py): no script, no external resource, a
Content-Security-Policy that forbids any fetch, relative links only, so the site opens from
``file://`` and serves from any static host."""

from __future__ import annotations

import json
from html import escape
from typing import Any, Callable

from farm.publish import svg
from farm.publish.data import SiteData, slug
from farm.samples import phase_key

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:20px auto;max-width:1260px;
color:#222;padding:0 16px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:14px;margin:16px 0 4px}nav a{margin-right:14px}
.meta{color:#555}.stale{background:#fde8e8;border-left:4px solid #d62728;padding:8px 12px;margin:12px 0}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 10px}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th{background:#f6f6f6}td.l,th.l{text-align:left}.tie{color:#8a5a00}
svg text{font:11px system-ui,sans-serif;fill:#333}.grid{stroke:#eee}.ci{stroke:#9ecae1;stroke-width:2;fill:none}
.p50{fill:none;stroke:#1f77b4;stroke-width:1.2}.p95{fill:none;stroke:#d62728;stroke-width:1;stroke-dasharray:3 2}
circle{fill:#1f77b4}a circle{fill:#08306b}line.changepoint{stroke:#d62728;stroke-width:1.5}text.changepoint{fill:#d62728;
font-weight:600}line.settings{stroke:#7f7f7f;stroke-dasharray:4 3}text.settings{fill:#555}
figure{margin:8px 0;border:1px solid #e4e4e4;border-radius:6px;padding:6px 8px;overflow-x:auto}
figcaption{font-weight:600;font-size:13px}ul.cps{margin:2px 0 0 0;font-size:12.5px}
"""


def page(title: str, body: str, depth: int = 0) -> str:
    up = "../" * depth
    nav = (f'<nav><a href="{up}index.html">Leaderboard</a><a href="{up}trends.html">Trends</a>'
           f'<a href="{up}methodology.html">Methodology</a><a href="{up}data/index.json">Data (JSON)</a></nav>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            f'img-src data:"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)}</title><style>{CSS}</style></head><body>{nav}<h1>{escape(title)}</h1>{body}'
            f'</body></html>')


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def _ci(ci: list[float] | None) -> str:
    return f"{ci[0]:.4g}–{ci[1]:.4g}" if ci else "n too small"


def stale_banner(data: SiteData) -> str:
    if not data.stale:
        return ""
    if not data.last_run:
        return ('<p class="stale" id="stale">Stale data: no scheduled run in this window; the site is built from '
                'the runs of config.yml\'s schedules (`farm beat`).</p>')
    return (f'<p class="stale" id="stale">Stale data: the last scheduled run started {escape(data.last_run["created"])}, '
            f'more than {data.stale_after_s / 3600:g} h before this site was built ({escape(data.generated)}).</p>')


def group_slug(entry: dict[str, Any]) -> str:
    return slug(entry["provider"], entry["snippet"], entry["scenario"])


def index_page(data: SiteData) -> str:
    parts = [f'<p class="meta">Built {escape(data.generated)} from {len(data.runs)} scheduled run(s)'
             + (f' of schedule {escape(data.schedule)}' if data.schedule else "")
             + (f' since {escape(data.since)}' if data.since else "") + '. Ranked by p50 (ms) of each provider\'s '
             'latest night; providers whose p50 intervals overlap share a rank (=).</p>', stale_banner(data)]
    scenario = None
    for board in data.leaderboard:
        if board["scenario"] != scenario:
            scenario = board["scenario"]
            parts.append(f'<h2>Scenario: {escape(scenario)}</h2>')
        rows = []
        for r in board["rows"]:
            rank = "—" if r["rank"] is None else (f'={r["rank"]}' if r["tie"] else str(r["rank"]))
            p99 = _ms(r["p99_ms"]) if r["p99_needs_n"] is None else f'— (n≥{r["p99_needs_n"]})'
            success = "—" if r["success_rate"] is None else f'{r["success_rate"] * 100:.1f} %'
            trend = f'trends/{slug(r["provider"], board["snippet"], board["scenario"])}.html'
            rows.append(f'<tr class="{"tie" if r["tie"] else ""}"><td>{rank}</td><td class="l">'
                        f'<a href="{escape(trend)}">{escape(r["provider"])}</a></td><td>{_ms(r["p50_ms"])}</td>'
                        f'<td>{_ci(r["p50_ci_ms"])}</td><td>{_ms(r["p95_ms"])}</td><td>{p99}</td><td>{success}</td>'
                        f'<td>{r["n"]}</td><td class="l">{escape(r["created"][:10])}{" (stale)" if r["stale"] else ""}</td></tr>')
        parts.append(f'<h3>{escape(board["phase"])} · {escape(board["snippet"])}</h3><table class="board" '
                     f'data-phase="{escape(board["phase"])}"><thead><tr><th>rank</th><th class="l">provider</th>'
                     f'<th>p50</th><th>p50 CI</th><th>p95</th><th>p99</th><th>success</th><th>n</th>'
                     f'<th class="l">night</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    if not data.leaderboard:
        parts.append('<p class="meta">No scheduled run in this window.</p>')
    return page("Sandbox Farm benchmarks", "".join(parts))


def trends_index(data: SiteData) -> str:
    groups: dict[str, dict[str, Any]] = {}
    for s in data.series:
        g = groups.setdefault(group_slug(s), {"name": f'{s["provider"]} / {s["snippet"]} ({s["scenario"]})', "cps": 0})
        g["cps"] += len(s["change_points"])
    items = "".join(f'<li><a href="trends/{escape(k)}.html">{escape(g["name"])}</a>'
                    + (f' — {g["cps"]} change point(s)' if g["cps"] else "") + '</li>'
                    for k, g in sorted(groups.items()))
    return page("Trends", stale_banner(data) + f'<ul>{items}</ul>')


def trend_page(data: SiteData, entries: list[dict[str, Any]], link: Callable[[str], str | None]) -> str:
    """One provider × snippet × scenario: a chart per phase (every settings digest on one axis)."""
    first = entries[0]
    by_phase: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_phase.setdefault(e["phase"], []).append(e)
    parts = [stale_banner(data), '<p class="meta">Blue: nightly p50 with its interval (vertical bars); red dashes: '
             'p95; red lines: change points with the size of the p50 shift; grey dashes: settings changed (a new '
             'series). Hover a point for its values; dark points link to the run\'s report.</p>']
    for phase in sorted(by_phase, key=phase_key):
        series = sorted(by_phase[phase], key=lambda e: e["points"][0]["created"] if e["points"] else "")
        points = sorted(({**p, "digest": s["digest"]} for s in series for p in s["points"]), key=lambda p: p["created"])
        cps = [cp for s in series for cp in s["change_points"]]
        title = f'{first["provider"]}/{first["snippet"]}/{phase} ({first["scenario"]})'
        chart = svg.trend(points, cps, link, title)
        listing = "".join(f'<li>{escape(cp["created"][:10])}: p50 {_ms(cp["before_ms"])} → {_ms(cp["after_ms"])} ms '
                          f'({cp["change"] * 100:+.1f} %), p={cp["p_value"]:.2g}</li>' for cp in cps if cp["change"] is not None)
        data_links = " ".join(f'<a href="../data/series/{escape(s["slug"])}.json">data</a>' for s in series)
        parts.append(f'<figure data-phase="{escape(phase)}"><figcaption>{escape(phase)} {data_links}</figcaption>'
                     f'{chart}{f"<ul class=cps>{listing}</ul>" if listing else ""}</figure>')
    return page(f'{first["provider"]} / {first["snippet"]} ({first["scenario"]})', "".join(parts), depth=1)


def methodology_page(data: SiteData) -> str:
    m = data.methodology
    phases = "".join(f'<tr><td class="l">{escape(p)}</td><td class="l">{escape(t)}</td></tr>' for p, t in m["phases"].items())
    stats = "".join(f'<tr><td class="l">{escape(k)}</td><td class="l">{escape(str(v))}</td></tr>'
                    for k, v in m["statistics"].items())
    scheds = []
    for name, s in m["schedules"].items():
        facts = "".join(f'<tr><td class="l">{escape(p)}</td><td class="l">{escape(k)}</td><td class="l">'
                        f'{escape(", ".join(v))}</td></tr>' for p, f in sorted(s["facts"].items()) for k, v in sorted(f.items()))
        scheds.append(f'<h3>Schedule {escape(name)}: {s["runs"]} run(s)</h3><p>Providers: {escape(", ".join(s["providers"]))}; '
                      f'snippets: {escape(", ".join(s["snippets"]))}; repetitions per run: '
                      f'{escape(", ".join(map(str, s["repetitions"])))}; warm-up: {escape(", ".join(map(str, s["warmup"])))}; '
                      f'hosts: {escape(", ".join(s["hosts"]))}; {escape("; ".join(s["versions"]))}.</p>'
                      + (f'<table><thead><tr><th class="l">provider</th><th class="l">fact</th><th class="l">values seen'
                         f'</th></tr></thead><tbody>{facts}</tbody></table>' if facts else ""))
    body = (f'<p class="meta">Generated from the manifests of the {len(data.runs)} run(s) shown.</p>'
            f'<h2>What each phase times</h2><p>{escape(m["timing"])}.</p><table><tbody>{phases}</tbody></table>'
            f'<h2>Statistics</h2><table><tbody>{stats}</tbody></table><h2>Runs, hosts, SDK versions</h2>{"".join(scheds)}'
            f'<h2>Raw manifest summary (JSON)</h2><pre>{escape(json.dumps(m["schedules"], indent=1))}</pre>')
    return page("Methodology", body)
