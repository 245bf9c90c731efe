"""`farm ramp`: the knee, defined in farm/ramp.py, found on sim with a configured capacity through a
real redis-server and real prefork workers (one run per level), and the ramp's HTML drawn in real
headless Chromium. The sim's truth: up to 8 of a run's sandboxes in flight, creates take CREATE_MS;
above 8, a create takes 4x as long or (probability 0.5) is refused with a 429."""

import json

import pytest

from farm.ramp import Level, find_knee, peak_overlap, wilson
from farm.ramp_runner import RampOptions, ramp_levels, ramp_table
from farm.render.ramp_html import render as render_html
from farm.snippets import Snippet
from tests.harness import Farm
from tests.chromium import CHROMIUM, headless

CREATE_MS = 150
HELLO = Snippet(name="hello", code="print('hi')\n")


def level(lv, p95, errors=0, n=20, p95_ci=None):
    return Level(level=lv, run_id=f"r{lv}", offered=16, n=n, ok=n - errors, errors=errors,
                 error_rate=errors / n, error_rate_ci=wilson(errors, n), errors_by_class={},
                 tti={"p50_ms": p95 * 0.9, "p95_ms": p95, "p99_ms": p95, "p95_ci_ms": p95_ci, "max_ms": p95},
                 throughput_per_s=1.0, peak_in_flight=lv)


def test_the_knee_is_the_last_level_inside_the_level_1_band():
    # band: p95 ≤ 100 × 1.25 = 125 ms (no interval: level 1's largest), errors ≤ Wilson upper of 0/20
    ramp = find_knee("p", [level(1, 100), level(2, 110), level(4, 120), level(8, 124), level(16, 300, 6)])
    assert ramp.band["p95_ms"] == pytest.approx(125) and ramp.band["error_rate"] == pytest.approx(0.161, abs=0.001)
    assert (ramp.knee, ramp.degraded_at) == (8, 16)
    assert [lv.in_band for lv in ramp.levels] == [None, True, True, True, False]
    # errors alone leave the band; latency alone does too; with the interval, its upper end is the base
    assert find_knee("p", [level(1, 100), level(2, 100, errors=5), level(4, 100)]).knee == 1
    assert find_knee("p", [level(1, 100, p95_ci=[90, 140]), level(2, 170), level(4, 180)]).degraded_at == 4
    flat = find_knee("p", [level(1, 100), level(2, 101)])
    assert flat.knee is None and "no knee within the levels tried" in flat.verdict


def test_wilson_and_peak_overlap():
    lo, hi = wilson(0, 20)
    assert lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(0.1611, abs=1e-4)
    assert wilson(0, 0) is None
    assert peak_overlap([(0, 10), (5, 15), (10, 20), (12, 13)]) == 3  # an end at 10 closes before a start at 10
    assert peak_overlap([]) == 0


def sim_config(tmp_path):
    # the run phase keeps each sandbox alive long enough that a level's samples overlap on a loaded machine
    return {"providers": {"sim": {"create": {"dist": "fixed", "ms": CREATE_MS}, "run": {"dist": "fixed", "ms": 1500},
                                  "seed": 5,
                                  "capacity": {"in_flight": 8, "slowdown": 4.0, "reject": 0.5,
                                               "state_dir": str(tmp_path / "in-flight")}}},
            "defaults": {"retries": 0}}


def test_ramp_on_sim_with_capacity_8_finds_the_knee_at_8_and_draws_it(tmp_path):
    with Farm(tmp_path, sim_config(tmp_path)) as farm:
        farm.worker("sim", concurrency=16)
        options = RampOptions(providers=["sim"], snippets=[HELLO], levels=[1, 2, 4, 8, 16], per_level=16,
                              tolerance=0.5, seed=2)
        result = ramp_levels(farm.store, farm.scheduler, farm.config, options)
        stored = farm.store.ramp(result.ramp_id)

    (ramp,) = result.providers
    by_level = {lv.level: lv for lv in ramp.levels}
    assert (ramp.knee, ramp.degraded_at) == (8, 16), ramp_table(result)
    # every level got the slots it asked for (a peak below the level, if the pools started a task
    # late, is stated but not a cap of the workers)
    assert all(lv.offered == 16 and not any("workers offer" in c for c in lv.capped) for lv in ramp.levels)
    for lv in (1, 2, 4, 8):  # within capacity: every create took the sim's CREATE_MS, no 429
        assert by_level[lv].errors == 0 and by_level[lv].tti["p50_ms"] >= CREATE_MS
        assert by_level[lv].peak_in_flight <= lv
    high = by_level[16]
    assert high.errors_by_class.get("rate_limited", 0) > 0 or high.tti["p95_ms"] >= 4 * CREATE_MS
    assert high.peak_in_flight > 8  # the level really put more than the capacity in flight
    assert stored == json.loads(json.dumps(result.to_json()))
    text = ramp_table(result)
    assert "<- knee" in text and "knee at 8: level 16 is the first to leave the level-1 band" in text
    html = render_html(result.to_json())
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: the HTML was built but not drawn")
    drawn = draw(html, tmp_path)
    assert drawn["charts"] == 1 and drawn["lines"] == 3 and drawn["knee"] == "knee 8"
    assert drawn["points"] == 15 and drawn["bars"] == 5 and drawn["wide"]
    assert drawn["problems"] == []


def draw(html, tmp_path):
    """The page in headless Chromium: what the SVG holds once laid out, and any console problem."""
    page = tmp_path / "ramp.html"
    page.write_text(html, encoding="utf-8")
    with headless(tmp_path / "profile") as cdp:
        cdp.call("Page.navigate", url=page.as_uri())
        cdp.wait_event("Page.loadEventFired")
        found = json.loads(cdp.call("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
            charts: document.querySelectorAll('svg.chart.ramp').length,
            lines: document.querySelectorAll('svg.chart.ramp polyline').length,
            points: document.querySelectorAll('svg.chart.ramp circle').length,
            knee: (document.querySelector('svg.chart.ramp text.knee-label') || {}).textContent,
            bars: document.querySelectorAll('svg.chart.ramp-errors rect').length,
            wide: [...document.querySelectorAll('svg.chart')].every(s => s.getBBox().width > 300)})""")["result"]["value"])
    found["problems"] = cdp.problems(levels=("error",))
    return found


def test_a_level_above_what_the_workers_offer_is_run_capped_and_says_so(tmp_path):
    with Farm(tmp_path, {"providers": {"sim": {"seed": 1}}}) as farm:
        farm.worker("sim", concurrency=2)
        options = RampOptions(providers=["sim"], snippets=[HELLO], levels=[1, 4], per_level=4)
        result = ramp_levels(farm.store, farm.scheduler, farm.config, options)
    top = result.providers[0].levels[-1]
    assert top.offered == 2 and top.peak_in_flight <= 2
    assert top.capped[0] == "the workers offer 2 slot(s) for sim: level 4 ran at most 2 at once"


def test_a_declared_shared_client_pool_below_the_level_and_a_held_down_peak_are_stated():
    from farm.ramp import measure_level

    def sample(i, start_ms, total_ms):
        return {"provider": "csb", "snippet": "hello", "outcome": "ok", "warmup": False, "started_ns": start_ms * 10**6,
                "total_ns": total_ms * 10**6, "create_ns": 10**6, "ready_ns": 10**6, "rep": i}
    # eight samples, never more than two at once, although eight slots were offered
    samples = [sample(i, (i // 2) * 100, 90) for i in range(8)]
    pool = {"per_process": 16, "shared": 2, "what": "a sidecar's pool of 2"}
    lv = measure_level(8, "r", "csb", samples, offered=8, confidence=0.95, client_pool=pool)
    assert lv.peak_in_flight == 2
    assert lv.capped[0].startswith("csb's client shares a pool of 2 connection(s)")
    assert "only 2 sample(s) ran at once although 8 could: csb's client pools (a sidecar's pool of 2)" in lv.capped[1]
    per_process = measure_level(8, "r", "csb", samples, offered=8, confidence=0.95,
                                client_pool={"per_process": 16, "shared": None, "what": "x"})
    assert not any("shares a pool" in c for c in per_process.capped)  # one sample per process: 16 never binds
