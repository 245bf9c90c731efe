"""Change points in nightly series (issue 15, item 5).

The detector (farm/changepoints.py) on synthetic series whose truth is known: a planted step is
found at its run, flat noisy series are flagged at about alpha over many seeds. Nightly series
from scheduled runs committed to a real redis-server through the real Store, the report, `farm
history`, and the webhook received by a real local HTTP server (urllib through a socket: no seam
faked)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from farm.changepoints import _q_curves, best_split, detect
from farm.config import Statistics, parse_config
from farm.errors import ConfigError, FarmError
from farm.notify import WEBHOOK_ENV, announce, check_finished
from farm.report import build
from farm.render import render
from farm.series import collect, history_change_points, run_change_points, scheduled_runs, series_digest

STATS = Statistics()


def noisy(seed, n, sigma=0.05, level=100.0):
    return level * np.exp(np.random.default_rng(seed).normal(0, sigma, n))


# --- the detector ------------------------------------------------------------------------------
def test_energy_statistic_matches_its_definition():
    x = np.random.default_rng(3).normal(size=15)
    for tau_index, tau in enumerate(range(3, 13)):
        a, b = x[:tau], x[tau:]
        m, k = a.size, b.size
        brute = m * k / x.size * (2 * np.abs(a[:, None] - b).mean() - np.abs(a[:, None] - a).sum() / (m * (m - 1))
                                  - np.abs(b[:, None] - b).sum() / (k * (k - 1)))
        assert _q_curves(x[None], 3)[0][tau_index] == pytest.approx(brute, rel=1e-12)
    assert best_split(np.r_[np.zeros(6), np.ones(9)], 3)[0] == 6


@pytest.mark.parametrize("step, n, at", [(1.30, 40, 25), (0.75, 60, 12), (1.5, 365, 300)])
def test_planted_step_is_flagged_at_its_run(step, n, at):
    """A 6σ step (sigma 5 %, ±30 %) is placed exactly, in every seed."""
    for seed in range(10):
        values = noisy(seed, n)
        values[at:] *= step
        found = detect(values, seed=seed)
        assert [cp.index for cp in found] == [at], (seed, found)
        assert found[0].p_value <= STATS.changepoint_alpha
        assert found[0].change == pytest.approx(step - 1, abs=0.05)


def test_smaller_step_is_found_within_a_run_of_its_place():
    """A 3σ step (+15 % at sigma 5 %): found in nearly every seed, within one run of its place."""
    placed = []
    for seed in range(40):
        values = noisy(1000 + seed, 40)
        values[25:] *= 1.15
        placed.append([cp.index for cp in detect(values, seed=seed)])
    near = sum(len(p) == 1 and abs(p[0] - 25) <= 1 for p in placed)
    assert near >= 36, placed


def test_two_steps_are_both_found():
    values = noisy(7, 60)
    values[20:] *= 1.4
    values[45:] /= 1.4
    assert [cp.index for cp in detect(values)] == [20, 45]


@pytest.mark.parametrize("sigma, tail", [(0.02, False), (0.3, False), (0.05, True)])
def test_flat_noisy_series_are_rarely_flagged(sigma, tail):
    """False positives over 300 seeds stay near alpha (1 %) whatever the noise level or shape:
    the permutation test is calibrated by each series' own noise. With a true rate of 1 %, 9 or
    more of 300 happens with probability < 0.1 %."""
    flagged = 0
    for seed in range(300):
        values = noisy(seed, 30, sigma)
        if tail:  # heavy tail: occasional nights twice as slow
            values[np.random.default_rng(seed + 1).random(30) < 0.1] *= 2
        flagged += bool(detect(values, seed=seed))
    assert flagged <= 8


def test_degenerate_and_bad_input():
    assert detect([5.0] * 20) == []                  # constant: no change
    assert detect([1.0, 2.0, 3.0]) == []             # too short to split
    with pytest.raises(ValueError, match="finite"):
        detect([1.0, float("nan")] * 10)
    with pytest.raises(ValueError, match="at least 99"):
        detect([1.0] * 20, alpha=0.01, permutations=50)
    with pytest.raises(ConfigError, match="changepoint_permutations 199 .* use at least 999"):
        parse_config({"statistics": {"changepoint_alpha": 0.001, "changepoint_permutations": 199}})


# --- nightly series in a real Redis ------------------------------------------------------------
def make_night(store, run_id, level_ms, seed, label="schedule:nightly", settings=None, n=30, scenario=None):
    night = int(run_id[1:]) if run_id[1:].isdigit() else 0
    manifest = {"run_id": run_id, "created": f"2026-01-{1 + night % 28:02d}T02:00:00+00:00",
                "plan": {"providers": ["local"], "snippets": ["hello"], "once": [], "repetitions": n,
                         "warmup": 0, "seed": 1},
                "provider_settings": {"local": settings or {}},
                "snippets": {"hello": {"name": "hello", "code": "print('hello')"}}}
    store.create_run(run_id, manifest, n, label=label)
    values = noisy(seed, n, 0.1, level_ms)
    for i, v in enumerate(values):
        assert store.commit(run_id, {
            "provider": "local", "snippet": "hello", "rep": i, "warmup": False, "attempt": 1, "worker": "t",
            "outcome": "ok", "create_ns": 2_000_000 + i, "ready_ns": 3_000_000, "run_ns": int(v * 1e6),
            "destroy_ns": 1_000_000, "total_ns": int(v * 1e6) + 6_000_000,
            **({"scenario": scenario} if scenario else {})}) in (1, 2)
    assert store.status(run_id).state == "finished"


def nights(store, count, step_at, step=1.3, start=0):
    """Nightly runs n<start>.. with p50 ≈ 50 ms (night-to-night noise 3 %), ×step from step_at on."""
    rng = np.random.default_rng(99)
    levels = 50 * np.exp(rng.normal(0, 0.03, start + count))
    for i in range(start, start + count):
        make_night(store, f"n{i:02d}", levels[i] * (step if i >= step_at else 1.0), seed=i)


def bullets(hook):
    """The series named by every change point the hook received, sorted (repeats kept)."""
    return sorted(line[2:].split(":")[0] for b in hook.bodies for line in b["text"].splitlines()
                  if line.startswith("• "))


class Hook:
    """A real HTTP server on localhost recording each POSTed JSON body."""

    def __init__(self, status=200):
        self.bodies, self.status = [], status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_nightly_series_change_points_in_report_history_and_webhook(farm, monkeypatch):
    st = farm.store
    nights(st, 20, step_at=12)
    make_night(st, "manual", 200, seed=5, label="")  # a manual run is no point of a nightly series
    runs = scheduled_runs(st, 100)
    assert runs == [f"n{i:02d}" for i in range(20)]

    points = run_change_points(st, "n19", STATS)
    where = {(cp["phase"], cp["run_id"]) for cp in points}
    assert ("run", "n12") in where and ("total", "n12") in where  # total contains run
    assert not any(cp["phase"] in ("create", "ready", "destroy") for cp in points)
    run_cp = next(cp for cp in points if cp["phase"] == "run")
    assert run_cp["scenario"] == "cold" and run_cp["runs"] == 20 and run_cp["index"] == 12
    assert run_cp["change"] == pytest.approx(0.3, abs=0.08)
    assert run_change_points(st, "manual", STATS) is None
    assert run_change_points(st, "n10", STATS) == []  # before the step: nothing to find yet

    doc = build(st, "n19")
    assert doc.to_json()["change_points"] == points and doc.to_json()["document_version"] >= 4
    table = render(doc, "table")
    assert "change point: local/hello/run (cold): p50 +" in table and "from run n12" in table
    assert build(st, "manual").change_points is None

    monkeypatch.setenv("REDIS_URL", farm.url)
    hist = CliRunner().invoke(_cli(), ["history", "--provider", "local", "--snippet", "hello", "--phase", "run"])
    assert hist.exit_code == 0, hist.output
    row = next(line for line in hist.output.splitlines() if line.startswith("n12 "))
    assert "▲ +" in row
    assert not any("▲" in line for line in hist.output.splitlines() if line.startswith(("n11 ", "n13 ")))
    assert "change points (E-divisive means" in hist.output

    hook = Hook()
    try:
        env = {WEBHOOK_ENV: hook.url}
        assert check_finished(st, STATS, environ={}) == 0 and not hook.bodies  # no webhook, nothing done
        assert check_finished(st, STATS, environ=env) == 2       # run and total (p50 of total holds run)
        assert bullets(hook) == ["local/hello/run (cold)", "local/hello/total (cold)"]  # each exactly once
        assert len(hook.bodies) <= 2 and all("from run n12" in b["text"] for b in hook.bodies)
        posts = len(hook.bodies)
        assert check_finished(st, STATS, environ=env) == 0       # every run checked already
        nights(st, 2, step_at=0, start=20)                        # two more nights at the new level
        assert check_finished(st, STATS, environ=env) == 0       # the same change points: not again
        assert announce(st, "n21", STATS, hook.url) == []        # nor when asked directly
        assert len(hook.bodies) == posts
        assert "secret-token" not in str(st.r.keys("*")) + json.dumps([st.r.hgetall(k) for k in st.r.keys(
            "farm:changepoints:*")])
    finally:
        hook.close()


def test_failed_webhook_is_retried_and_never_names_its_url(farm):
    st = farm.store
    nights(st, 16, step_at=8)
    hook = Hook(status=500)
    try:
        env = {WEBHOOK_ENV: hook.url}
        with pytest.raises(FarmError) as failed:
            check_finished(st, STATS, environ=env)
        assert str(failed.value) == "change-point webhook answered HTTP 500"
        assert len(hook.bodies) == 1
        refused = hook.bodies.pop()
        hook.status = 200                                         # the receiver recovers
        assert check_finished(st, STATS, environ=env) == 2       # what was refused is sent again
        assert refused in hook.bodies
        assert bullets(hook) == ["local/hello/run (cold)", "local/hello/total (cold)"]
        posts = len(hook.bodies)
        assert check_finished(st, STATS, environ=env) == 0 and len(hook.bodies) == posts
    finally:
        hook.close()
    with pytest.raises(FarmError, match="http:// or https://"):
        check_finished(st, STATS, environ={WEBHOOK_ENV: "ftp://example.invalid/x"})


def test_settings_change_starts_a_new_series_not_a_change_point(farm):
    st = farm.store
    nights(st, 10, step_at=100)
    for i in range(10, 20):  # much slower from here, but measured with other provider settings
        make_night(st, f"n{i}", 80, seed=i, settings={"image": "python:3.13"})
    a, b = st.manifest("n00"), st.manifest("n15")
    assert series_digest(a, {}, "local", "hello") != series_digest(b, {}, "local", "hello")
    series = [s for s in collect(st, scheduled_runs(st, 100), STATS).values() if s.phase == "run"]
    assert sorted(len(s.points) for s in series) == [10, 10]
    found, points = history_change_points(st, STATS, "local", "hello", "run")
    assert len(found) == 2 and points == []


def _cli():
    import click

    from farm.cli_stats import COMMANDS

    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.ensure_object(dict)
        ctx.obj["config"] = parse_config({})

    for cmd in COMMANDS:
        root.add_command(cmd)
    return root
