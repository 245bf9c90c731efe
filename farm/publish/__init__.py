"""``farm publish``: a static site from the farm's scheduled runs (issue 16).

    data.py    what the site shows (series, change points, leaderboard, methodology), versioned
    svg.py     a trend chart as inline SVG
    pages.py   the HTML pages

Layout of ``--out``::

    index.html                  leaderboard per scenario × phase × snippet (ties shown as ties)
    trends.html                 the list of trend pages
    trends/<p>--<s>--<sc>.html  one per provider × snippet × scenario: a chart per phase
    methodology.html            from the manifests
    runs/<run_id>.html          the newest ``reports`` runs' HTML reports (linked from their points);
                                one already in the folder is kept (a finished run's report is final)
    data/index.json             the site's data (schema: docs/site.md)
    data/series/<slug>.json     one file per series
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.config import FarmConfig
from farm.errors import FarmError
from farm.publish.data import SITE_DATA_VERSION, SiteData, build

# Phases published unless asked otherwise: what a user waits for, what the snippet costs, and the
# sandbox's whole life; a year of every phase of every series is several times larger.
DEFAULT_PHASES = ("tti", "run", "total")
SERIES_COLUMNS = ("run", "p50_ms", "p50_lo_ms", "p50_hi_ms", "p95_ms", "p95_lo_ms", "p95_hi_ms", "p99_ms", "n", "errors")


@dataclass
class Published:
    out: Path
    pages: int
    series: int
    reports: int
    bytes: int
    stale: bool


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)  # µs: far below any interval's width


def series_json(entry: dict[str, Any], run_index: dict[str, int]) -> dict[str, Any]:
    rows = []
    for p in entry["points"]:
        c50, c95 = p["p50_ci_ms"] or (None, None), p["p95_ci_ms"] or (None, None)
        rows.append([run_index[p["run_id"]], _r(p["p50_ms"]), _r(c50[0]), _r(c50[1]), _r(p["p95_ms"]), _r(c95[0]),
                     _r(c95[1]), _r(p["p99_ms"]), p["n"], p["errors"]])
    return {"site_data_version": SITE_DATA_VERSION, **{k: entry[k] for k in
            ("id", "slug", "provider", "snippet", "scenario", "phase", "digest")},
            "columns": list(SERIES_COLUMNS), "points": rows, "change_points": entry["change_points"]}


def _write(path: Path, text: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(data)
    return len(data)


def write_site(data: SiteData, out: Path, reports: dict[str, str | None]) -> Published:
    """Write the pages and data of ``data``; ``reports`` maps run ids to their HTML report (None:
    already in ``out``)."""
    from farm.publish import pages

    total, count = 0, 0
    for run_id, html in reports.items():
        total += _write(out / "runs" / f"{run_id}.html", html) if html is not None else \
            (out / "runs" / f"{run_id}.html").stat().st_size
    run_index = {run_id: i for i, run_id in enumerate(data.runs)}
    index = data.index()
    index["runs"] = [[run_id, created] for run_id, created in zip(data.runs, data.created)]
    total += _write(out / "data" / "index.json", json.dumps(index, separators=(",", ":")))
    for entry in data.series:
        total += _write(out / "data" / "series" / f"{entry['slug']}.json",
                        json.dumps(series_json(entry, run_index), separators=(",", ":")))
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in data.series:
        groups.setdefault(pages.group_slug(entry), []).append(entry)

    def link(run_id: str) -> str | None:
        return f"../runs/{run_id}.html" if run_id in reports else None

    for name, entries in groups.items():
        total += _write(out / "trends" / f"{name}.html", pages.trend_page(data, entries, link))
        count += 1
    for name, html in (("index.html", pages.index_page(data)), ("trends.html", pages.trends_index(data)),
                       ("methodology.html", pages.methodology_page(data))):
        total += _write(out / name, html)
        count += 1
    return Published(out, count + len(reports), len(data.series), len(reports), total, data.stale)


def known_change_points(data: SiteData, run_id: str) -> list[dict[str, Any]]:
    """The site's change points of the published series a run is a point of, up to that run."""
    out = []
    for entry in data.series:
        order = [p["run_id"] for p in entry["points"] if p["p50_ms"] is not None]
        if run_id in order:
            out += [cp for cp in entry["change_points"] if order.index(cp["run_id"]) <= order.index(run_id)]
    return out


def run_report(store: Any, config: FarmConfig, data: SiteData, out: Path, run_id: str) -> str | None:
    """A run's HTML report; None when ``out`` already has it (a finished run's report is rendered
    once: a nightly rebuild renders only the new night's)."""
    from farm import render as formats
    from farm.report import build as build_report

    if (out / "runs" / f"{run_id}.html").is_file():
        return None
    return formats.render(build_report(store, run_id, config, known_change_points=known_change_points(data, run_id)),
                          "html")


def publish(store: Any, config: FarmConfig, out: str | os.PathLike[str], since_s: float | None = None,
            schedule: str | None = None, stale_after_s: float = 36 * 3600, reports: int = 30,
            phases: tuple[str, ...] | None = DEFAULT_PHASES, now: float | None = None) -> Published:
    """Build the site into ``out`` (created if missing; files of a previous build are overwritten)."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise FarmError(f"cannot publish to {target}: it is a file, not a folder")
    data = build(store, config.statistics, since_s, schedule, stale_after_s, now, phases)
    html = {run_id: run_report(store, config, data, target, run_id) for run_id in data.runs[-reports:]} \
        if reports else {}
    try:
        return write_site(data, target, html)
    except OSError as exc:
        raise FarmError(f"cannot write the site to {target}: {exc.strerror or type(exc).__name__}") from None
