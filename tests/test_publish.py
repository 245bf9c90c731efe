"""`farm publish` (issue 16): a static site from real scheduled runs (local and sim through real
prefork workers, tests.harness.Farm) plus synthetic nights committed through the real Store, one of
them with a planted step. Every page is loaded in real headless Chromium (Debian's `chromium`,
DevTools protocol): no console error, no failed load, each chart has as many points as its
series' JSON, every link resolves, the planted change point is on its trend.

FARM_UPDATE_SCREENSHOTS=1 also writes docs/img/site-leaderboard.png and docs/img/site-trend.png."""

import base64
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from click.testing import CliRunner

from farm.errors import FarmError
from farm.publish import publish
from farm.publish.data import rank
from tests.test_changepoints import make_night, nights
from tests.chromium import CHROMIUM, headless
from tests.test_report_html import REPO

DAY = 86400


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from tests.harness import Farm

    with Farm(tmp_path_factory.mktemp("farm")) as farm:
        nights(farm.store, 20, step_at=12)                      # local/hello (cold): +30 % from n12
        for i in range(20):                                      # the same nights, the resume scenario, flat
            make_night(farm.store, f"w{i:02d}", 20, seed=200 + i, scenario="resume")
        farm.worker("local", concurrency=2)
        farm.worker("sim", concurrency=2)
        real = []
        for _ in range(2):                                       # two real scheduled runs
            run_id = farm.scheduler.create_run(farm.config, ["local", "sim"], farm.snippets("hello"), repetitions=6,
                                               warmup=0, concurrency=2, seed=1, label="schedule:nightly")
            farm.wait(run_id, timeout=120)
            real.append(run_id)
        yield farm, real


def test_site_files_and_data(history, tmp_path):
    farm, real = history
    result = publish(farm.store, farm.config, tmp_path / "site", reports=5)
    site = tmp_path / "site"
    index = json.loads((site / "data" / "index.json").read_text())
    assert index["site_data_version"] == 1 and index["stale"] is False and result.stale is False
    assert len(index["runs"]) == 42 and index["runs"][-1][0] == real[-1]
    assert sorted({s["scenario"] for s in index["series"]}) == ["cold", "resume"]
    assert {s["phase"] for s in index["series"]} == {"tti", "run", "total"}
    for s in index["series"]:
        data = json.loads((site / "data" / "series" / f"{s['slug']}.json").read_text())
        assert len(data["points"]) == s["points"] and data["columns"][0] == "run"
        assert all(0 <= row[0] < len(index["runs"]) for row in data["points"])
    planted = next(s for s in index["series"] if s["id"].startswith("local|hello|cold|run|")
                   and s["points"] == 20)
    assert [cp["run_id"] for cp in planted["change_points"]] == ["n12"]
    warm = [s for s in index["series"] if s["scenario"] == "resume"]
    assert warm and all(s["change_points"] == [] for s in warm)
    assert sorted(p.name for p in (site / "runs").iterdir()) == sorted(f"{r[0]}.html" for r in index["runs"][-5:])
    boards = {(b["scenario"], b["phase"], b["snippet"]): b for b in index["leaderboard"]}
    cold_tti = boards[("cold", "tti", "hello")]
    assert {r["provider"] for r in cold_tti["rows"]} == {"local", "sim"}
    assert (site / "methodology.html").read_text().count("Schedule nightly") == 1

    kept = {p.name: p.stat().st_mtime_ns for p in (site / "runs").iterdir()}
    publish(farm.store, farm.config, site, reports=5)     # a rebuild keeps the reports it has
    assert {p.name: p.stat().st_mtime_ns for p in (site / "runs").iterdir()} == kept

    stale = publish(farm.store, farm.config, tmp_path / "stale", reports=0, now=__import__("time").time() + 3 * DAY)
    assert stale.stale and json.loads((tmp_path / "stale" / "data" / "index.json").read_text())["stale"] is True
    assert 'id="stale"' in (tmp_path / "stale" / "index.html").read_text()
    assert 'id="stale"' not in (site / "index.html").read_text()


def test_ties_within_intervals_are_ties():
    rows = [{"provider": "a", "p50_ms": 10.0, "p50_ci_ms": [9.0, 11.0]},
            {"provider": "b", "p50_ms": 10.5, "p50_ci_ms": [10.8, 12.0]},   # overlaps a's interval: tie
            {"provider": "c", "p50_ms": 20.0, "p50_ci_ms": [19.0, 21.0]},
            {"provider": "d", "p50_ms": 5.0, "p50_ci_ms": None}]            # no interval: unranked
    ranked = rank(rows)
    assert [(r["provider"], r["rank"], r["tie"]) for r in ranked] == [
        ("a", 1, True), ("b", 1, True), ("c", 3, False), ("d", None, False)]


def test_publish_command_bad_input(history, tmp_path, monkeypatch):
    from tests.test_changepoints import _cli

    farm, _ = history
    monkeypatch.setenv("REDIS_URL", farm.url)
    from farm.cli_publish import publish_cmd

    cli = _cli()
    cli.add_command(publish_cmd)
    runner = CliRunner()
    bad = runner.invoke(cli, ["publish", "--out", str(tmp_path / "s"), "--since", "ninety"])
    assert isinstance(bad.exception, FarmError) and "--since 'ninety'" in str(bad.exception)
    bad = runner.invoke(cli, ["publish", "--out", str(tmp_path / "s"), "--phases", "tti,bogus"])
    assert isinstance(bad.exception, FarmError) and "--phases" in str(bad.exception)
    (tmp_path / "file").write_text("x")
    bad = runner.invoke(cli, ["publish", "--out", str(tmp_path / "file")])
    assert isinstance(bad.exception, FarmError) and "is a file" in str(bad.exception)
    ok = runner.invoke(cli, ["publish", "--out", str(tmp_path / "s"), "--reports", "0"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("wrote ") and " series to " in ok.output


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_every_page_loads_in_headless_chromium(history, tmp_path):
    farm, _ = history
    publish(farm.store, farm.config, tmp_path / "site", reports=5)
    site = tmp_path / "site"
    pages = sorted(site.rglob("*.html"))
    found, shots = {}, {}
    with headless(tmp_path / "profile") as cdp:
        for page in pages:
            cdp.events.clear()
            cdp.call("Page.navigate", url=page.as_uri())
            cdp.wait_event("Page.loadEventFired")
            found[page] = json.loads(cdp.call("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
                links: [...document.querySelectorAll('a[href]')].map(a => new URL(a.getAttribute('href'), document.baseURI).href),
                charts: [...document.querySelectorAll('figure[data-phase]')].map(f => ({
                    phase: f.dataset.phase, circles: f.querySelectorAll('svg.trend circle').length,
                    declared: Number(f.querySelector('svg.trend').dataset.points),
                    data: [...f.querySelectorAll('figcaption a')].map(a => new URL(a.getAttribute('href'), document.baseURI).href),
                    changepoints: [...f.querySelectorAll('line.changepoint')].map(l => l.dataset.run),
                    settings: f.querySelectorAll('line.settings').length,
                    drawn: f.querySelector('svg.trend').getBBox().width > 100})),
                boards: document.querySelectorAll('table.board').length})""")["result"]["value"])
            problems = cdp.problems()
            assert problems == [], (page, problems)
            if page.name in ("index.html", "local--hello--cold.html"):
                height = cdp.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
                shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                clip={"x": 0, "y": 0, "width": 1280, "height": min(height, 2400), "scale": 1})
                shots[page.name] = base64.b64decode(shot["data"])

    for page, seen in found.items():
        for href in seen["links"]:  # every link resolves to a file of the site
            url = urlparse(href)
            assert url.scheme == "file" and Path(unquote(url.path)).is_file(), (page, href)
        for chart in seen["charts"]:
            points = sum(sum(row[1] is not None for row in json.loads(Path(unquote(urlparse(d).path)).read_text())["points"])
                         for d in chart["data"])
            assert chart["circles"] == chart["declared"] == points > 0 and chart["drawn"], (page, chart)
    assert found[site / "index.html"]["boards"] >= 6
    trend = found[site / "trends" / "local--hello--cold.html"]
    run_chart = next(c for c in trend["charts"] if c["phase"] == "run")
    assert run_chart["changepoints"] == ["n12"]          # the planted step, on its trend
    assert run_chart["settings"] == 1                    # synthetic nights → the two real runs (one series)
    assert not any(c["changepoints"] for c in found[site / "trends" / "local--hello--resume.html"]["charts"])
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000 for png in shots.values())
    if os.environ.get("FARM_UPDATE_SCREENSHOTS"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        (REPO / "docs" / "img" / "site-leaderboard.png").write_bytes(shots["index.html"])
        (REPO / "docs" / "img" / "site-trend.png").write_bytes(shots["local--hello--cold.html"])


def test_publish_schedule_rebuilds_the_site_once_per_period(history, tmp_path):
    """A `kind: publish` schedule fired by beat's own fire(): the site is written; the same period
    does not fire twice; a publish schedule without `out`, or with gates, is a config error."""
    from farm.beat import fire
    from farm.config import parse_config
    from farm.errors import ConfigError

    farm, _ = history
    config = parse_config({"schedules": {"site": {"kind": "publish", "cron": "30 4 * * *", "out": str(tmp_path / "www"),
                                                  "source": "nightly", "reports": 2, "stale_after_h": 48}}})
    fired = fire(farm.store, farm.scheduler, config, "site", now=1_900_000_000.0)
    assert fired.published and fired.run_id is None
    index = json.loads((tmp_path / "www" / "data" / "index.json").read_text())
    assert index["schedule"] == "nightly" and index["stale_after_s"] == 48 * 3600 and len(index["runs"]) == 42
    assert len(list((tmp_path / "www" / "runs").iterdir())) == 2
    assert fire(farm.store, farm.scheduler, config, "site", now=1_900_000_010.0).skipped  # same minute
    with pytest.raises(ConfigError, match="kind: publish needs out"):
        parse_config({"schedules": {"site": {"kind": "publish", "cron": "30 4 * * *"}}})
    with pytest.raises(ConfigError, match="a publish has no results to gate"):
        parse_config({"schedules": {"site": {"kind": "publish", "cron": "30 4 * * *", "out": "x",
                                             "fail_on": ["error-rate>5%"]}}})
