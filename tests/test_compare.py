"""Compare, history and the rolling baseline. Verdicts on synthetic samples with known shifts
(pure functions); runs committed to a real redis-server through the real Store (farm.testing.Farm)
for compare_runs/history/baseline, and the click commands driven in-process. No seam is faked."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from farm.cli_stats import COMMANDS
from farm.compare import baseline_flags, compare_runs, history, min_p_value, plan_key, sparkline, verdict
from farm.config import Statistics, parse_config
from farm.errors import FarmError

STATS = Statistics(compare_alpha=0.01, compare_threshold=0.05, baseline_runs=3)


def lognormal(seed, n, scale=1.0):
    return np.random.default_rng(seed).lognormal(np.log(100), 0.3, n) * scale


@pytest.mark.parametrize("scale,expected", [(1.0, "no change"), (1.25, "slower"), (0.8, "faster")])
def test_verdict_on_known_shifts(scale, expected):
    v = verdict(lognormal(1, 300), lognormal(2, 300, scale), STATS.compare_alpha, STATS.compare_threshold)
    assert v["verdict"] == expected
    if expected != "no change":
        assert v["p_value"] < 1e-6 and v["p50_change"] == pytest.approx(scale - 1, abs=0.06)


def test_identical_samples_are_no_change():
    a = lognormal(3, 200)
    v = verdict(a, a.copy(), 0.01, 0.05)
    assert v["verdict"] == "no change" and v["p_value"] == pytest.approx(1.0) and v["p50_change"] == 0
    flat = np.full(50, 7.0)
    assert verdict(flat, flat.copy(), 0.01, 0.05)["verdict"] == "no change"  # all ties


def test_significant_but_small_shift_is_no_change():
    v = verdict(lognormal(4, 20_000), lognormal(5, 20_000, 1.02), 0.01, 0.05)
    assert v["p_value"] < 0.01 and v["verdict"] == "no change"  # below the 5 % threshold
    assert verdict(lognormal(4, 20_000), lognormal(5, 20_000, 1.02), 0.01, 0.01)["verdict"] == "slower"


def test_false_alarm_rate_on_identical_distributions_is_at_most_alpha():
    rng = np.random.default_rng(9)
    alarms = sum(verdict(rng.lognormal(0, 0.5, 60), rng.lognormal(0, 0.5, 60), 0.05, 0.0)["verdict"] != "no change"
                 for _ in range(400))
    assert alarms / 400 <= 0.05 + 3 * (0.05 * 0.95 / 400) ** 0.5


def test_too_few_samples_say_so():
    assert min_p_value(3, 3) == pytest.approx(0.1)
    v = verdict(np.array([1.0, 1.1, 1.2]), np.array([5.0, 5.1, 5.2]), 0.01, 0.05)
    assert v["verdict"] == "insufficient n" and v["p_value"] is None
    assert verdict(np.array([]), np.array([1.0]), 0.01, 0.05)["verdict"] == "insufficient n"


# --- runs in a real Redis ----------------------------------------------------------------------
def make_run(store, run_id, values_run_ms, snippets=("hello",), label="", created_offset=0):
    manifest = {"run_id": run_id, "created": f"2024-01-01T00:00:{created_offset:02d}+00:00",
                "plan": {"providers": ["local"], "snippets": list(snippets), "once": [], "repetitions": len(values_run_ms),
                         "warmup": 0, "seed": 1},
                "snippets": {s: {"name": s, "code": f"print('{s}')"} for s in snippets}}
    store.create_run(run_id, manifest, len(values_run_ms) * len(snippets), label=label)
    for snippet in snippets:
        for i, v in enumerate(values_run_ms):
            assert store.commit(run_id, {
                "provider": "local", "snippet": snippet, "rep": i, "warmup": False, "attempt": 1, "worker": "t",
                "outcome": "ok", "create_ns": 2_000_000 + i, "ready_ns": 3_000_000 + 7 * i, "run_ns": int(v * 1e6),
                "destroy_ns": 1_000_000, "total_ns": int(v * 1e6) + 6_000_000}) in (1, 2)
    assert store.status(run_id).state == "finished"


def test_compare_runs_history_and_baseline(farm):
    st = farm.store
    for i in range(4):  # four nightly runs of the same plan, stable
        make_run(st, f"n{i}", lognormal(10 + i, 150), label="schedule:nightly", created_offset=i)
    make_run(st, "other", lognormal(20, 150, 3.0), snippets=("hello", "primes"))  # another plan
    make_run(st, "n4", lognormal(30, 150, 1.4), label="schedule:nightly", created_offset=5)  # regression

    entries = {e["phase"]: e for e in compare_runs(st, "n0", "n4", STATS)}
    med = [np.median(np.floor(lognormal(s, 150, k) * 1e6) / 1e6) for s, k in ((10, 1.0), (30, 1.4))]
    assert entries["run"]["verdict"] == "slower"
    assert entries["run"]["p50_change"] == pytest.approx(med[1] / med[0] - 1, rel=1e-6)
    assert entries["create"]["verdict"] == "no change" and entries["destroy"]["verdict"] == "no change"
    assert entries["run"]["n_a"] == entries["run"]["n_b"] == 150
    assert {"p50_a_ms", "p95_b_ms", "p99_change"} <= set(entries["run"])
    same = {e["phase"]: e["verdict"] for e in compare_runs(st, "n1", "n2", STATS)}
    assert same["run"] == "no change"

    base = baseline_flags(st, "n4", STATS)
    assert base["runs"] == ["n3", "n2", "n1"]  # the previous baseline_runs of the same plan, not "other"
    assert any(f.startswith("local/hello/run: slower than the baseline of 3 run(s)") for f in base["flags"])
    assert not any("/create:" in f for f in base["flags"])
    assert baseline_flags(st, "n0", STATS) is None  # nothing before the first run
    assert plan_key(st.manifest("n0")) != plan_key(st.manifest("other"))

    hist = history(st, "local", "hello", "run", STATS, limit=20)
    assert [h["run_id"] for h in hist] == ["n0", "n1", "n2", "n3", "other", "n4"]
    assert hist[0]["label"] == "schedule:nightly" and hist[0]["vs_previous"] is None
    assert hist[-1]["vs_previous"] == "faster"  # n4 (1.4×) after "other" (3×)
    assert all(h["n"] == 150 and h["p50_ci_ms"][0] <= h["p50_ms"] <= h["p50_ci_ms"][1] for h in hist)
    assert history(st, "local", "nope", "run", STATS) == []


def test_sparkline_keeps_gaps():
    assert sparkline([1, None, 8]) == "▁ █"
    assert sparkline([None]) == ""


def _cli():
    import click

    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.ensure_object(dict)
        ctx.obj["config"] = parse_config({"statistics": {"compare_alpha": 0.01, "compare_threshold": 0.05}})

    for cmd in COMMANDS:
        root.add_command(cmd)
    return root


def test_compare_and_history_commands(farm, monkeypatch):
    make_run(farm.store, "a", lognormal(1, 120))
    make_run(farm.store, "b", lognormal(2, 120, 1.3), created_offset=1)
    monkeypatch.setenv("REDIS_URL", farm.url)
    runner = CliRunner()
    out = runner.invoke(_cli(), ["compare", "a", "b"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "p50 A [ms]" in lines[1] and "Δp50" in lines[1] and "verdict" in lines[1]
    run_line = next(line for line in lines if " run " in f" {line} " and line.startswith("local"))
    assert run_line.rstrip().endswith("slower")
    as_json = json.loads(runner.invoke(_cli(), ["compare", "a", "b", "--json"]).output)
    assert as_json["alpha"] == 0.01 and any(s["verdict"] == "slower" for s in as_json["series"])

    missing = runner.invoke(_cli(), ["compare", "a", "zzz"])
    assert isinstance(missing.exception, FarmError)
    assert str(missing.exception).startswith("no run 'zzz' in this Redis; recent runs: ")

    hist = runner.invoke(_cli(), ["history", "--provider", "local", "--snippet", "hello", "--phase", "run"])
    assert hist.exit_code == 0, hist.output
    assert hist.output.startswith("local/hello/run: p50 trend ")
    assert "slower" in hist.output.splitlines()[-1]
    none = runner.invoke(_cli(), ["history", "--provider", "local", "--snippet", "nope"])
    assert none.exit_code == 0 and "no run among the last 20 measured local/nope" in none.output
