"""Compare, history and the rolling baseline. Verdicts on synthetic samples with known shifts
(pure functions); runs committed to a real redis-server through the real Store (tests.harness.Farm)
for compare_runs/history/baseline, and the click commands driven in-process. No seam is faked."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from farm.cli_stats import COMMANDS
from farm.compare import baseline_flags, compare_runs, history, plan_key, sparkline
from farm.effect import compare_one
from farm.config import Statistics, parse_config
from farm.errors import FarmError

STATS = Statistics(compare_alpha=0.01, compare_threshold=0.05, baseline_runs=3)


def lognormal(seed, n, scale=1.0):
    return np.random.default_rng(seed).lognormal(np.log(100), 0.3, n) * scale


@pytest.mark.parametrize("n,scale,expected", [(300, 1.0, "inconclusive"), (2000, 1.0, "equivalent"),
                                               (300, 1.25, "slower"), (300, 0.8, "faster")])
def test_verdict_on_known_shifts(n, scale, expected):
    """n=300, sigma=0.3: the 99 % interval is about ±6.5 %, wider than the ±5 % band, so no change cannot be
    told from a small one (inconclusive); n=2000 narrows it to ±2.5 %: equivalent."""
    e = compare_one(lognormal(1, n), lognormal(2, n, scale), STATS.compare_alpha, STATS.compare_threshold)
    assert e.verdict == expected
    lo, hi = e.ratio_ci
    assert lo <= e.ratio <= hi and lo < scale * 1.03 and hi > scale * 0.97  # the true ratio is inside (±MC)
    if expected == "inconclusive":
        assert e.settle_n > n


def test_identical_samples_are_equivalent_not_changed():
    a = lognormal(3, 200)
    e = compare_one(a, a.copy(), 0.01, 0.05)
    assert e.verdict == "inconclusive" and e.ratio == pytest.approx(1.0)  # ±6 % interval at n=200: not ±5 %
    assert e.ratio_ci[0] * e.ratio_ci[1] == pytest.approx(1.0)  # symmetric on the log scale
    flat = np.full(50, 7.0)
    assert compare_one(flat, flat.copy(), 0.01, 0.05).verdict == "equivalent"  # all ties


def test_small_shift_is_equivalent_or_below_threshold():
    e = compare_one(lognormal(4, 20_000), lognormal(5, 20_000, 1.02), 0.01, 0.05)
    # above HL_CAP values per side the interval is a 2000-value subsample's: wider, never narrower
    assert e.verdict == "equivalent" and 0.95 < e.ratio_ci[0] < 1.02 < e.ratio_ci[1] < 1.05
    assert compare_one(lognormal(4, 20_000), lognormal(5, 20_000, 1.02), 0.01, 0.005).verdict == "slower"


def test_too_few_samples_say_so():
    e = compare_one(np.array([1.0, 1.1, 1.2]), np.array([5.0, 5.1, 5.2]), 0.01, 0.05)
    assert e.verdict == "insufficient n" and e.ratio is None and e.p_value is None
    assert compare_one(np.array([]), np.array([1.0]), 0.01, 0.05).verdict == "insufficient n"


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

    entries = {e["phase"]: e for e in compare_runs(st, "n0", "n4", STATS)["series"]}
    assert entries["run"]["verdict"] == "slower"
    lo, hi = entries["run"]["ratio_ci"]
    assert lo <= entries["run"]["ratio"] <= hi and lo > 1.05 and lo < 1.4 < hi * 1.05
    # create/destroy are fixed or tiny steps: no change worth calling
    assert entries["create"]["verdict"] == "equivalent" and entries["destroy"]["verdict"] == "equivalent"
    assert entries["run"]["n_a"] == entries["run"]["n_b"] == 150
    assert {"p50_a_ms", "p95_b_ms", "p95_ratio_ci", "level"} <= set(entries["run"])
    same = {e["phase"]: e["verdict"] for e in compare_runs(st, "n1", "n2", STATS)["series"]}
    assert same["run"] not in ("slower", "faster")

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


def test_changed_confinement_is_a_settings_difference_not_verdicts(farm):
    """The same plan before and after bubblewrap was installed: the workers filed different
    confinement facts, so compare reports the difference and no slower/faster verdicts."""
    st = farm.store
    make_run(st, "before", lognormal(40, 150), created_offset=1)
    make_run(st, "after", lognormal(41, 150, 0.5), created_offset=2)  # much faster, for another reason
    st.file_provider_facts("before", "local", {"confinement": "none (bubblewrap not installed)", "sandbox_host_uid": 1})
    st.file_provider_facts("after", "local", {"confinement": "bubblewrap", "sandbox_host_uid": 2})
    result = compare_runs(st, "before", "after", STATS)
    assert result["differences"] == ["provider_facts.local.confinement: none (bubblewrap not installed) → bubblewrap"]
    assert result["incomparable"] == ["local"]
    assert {e["verdict"] for e in result["series"]} == {"settings differ"}
    assert baseline_flags(st, "after", STATS) is None  # "before" has other settings: no baseline
    assert plan_key(st.manifest("before"), st.provider_facts("before")) != \
        plan_key(st.manifest("after"), st.provider_facts("after"))


def test_a_per_process_sandbox_uid_is_not_a_settings_difference(farm):
    """A farm run as root gives each worker process's sandboxes a uid of their own (UID_BASE + pid):
    two runs of the same plan differ in it, and must still compare (and pool into a baseline)."""
    st = farm.store
    make_run(st, "one", lognormal(50, 150), created_offset=1)
    make_run(st, "two", lognormal(51, 150), created_offset=2)
    for run_id, uid in (("one", 1000018125), ("two", 1000018609)):
        st.file_provider_facts(run_id, "local", {"confinement": "own-dir+uid-drop+rlimits+host-network",
                                                 "sandbox_uid": uid, "sandbox_host_uid": "per worker process"})
    result = compare_runs(st, "one", "two", STATS)
    assert result["differences"] == [] and result["incomparable"] == []
    assert plan_key(st.manifest("one"), st.provider_facts("one")) == plan_key(st.manifest("two"), st.provider_facts("two"))


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
    assert " unit " in lines[1] and "p50 A" in lines[1] and "p50 B/A (CI)" in lines[1] and "verdict" in lines[1]
    assert "each row in its own unit" in lines[0]
    run_line = next(line for line in lines if " run " in f" {line} " and line.startswith("local"))
    assert run_line.rstrip().endswith("slower") and run_line.split()[5] in ("µs", "ms", "s")
    # alpha 0.01, FCR-adjusted: intervals above 99.6 %, where a p95 interval needs 125 samples per run, not 120
    assert "— n≥125" in run_line
    as_json = json.loads(runner.invoke(_cli(), ["compare", "a", "b", "--json"]).output)
    assert as_json["alpha"] == 0.01 and any(s["verdict"] == "slower" for s in as_json["series"])

    missing = runner.invoke(_cli(), ["compare", "a", "zzz"])
    assert isinstance(missing.exception, FarmError)
    assert str(missing.exception).startswith("no run 'zzz' in this Redis; recent runs: ")

    hist = runner.invoke(_cli(), ["history", "--provider", "local", "--snippet", "hello", "--phase", "run"])
    assert hist.exit_code == 0, hist.output
    assert hist.output.startswith("local/hello/run: p50 trend ")
    assert "slower" in next(line for line in hist.output.splitlines() if line.startswith("b "))
    assert hist.output.splitlines()[-1].startswith("change points: no finished scheduled run")
    none = runner.invoke(_cli(), ["history", "--provider", "sim", "--snippet", "hello"])
    assert none.exit_code == 0 and "no run among the last 20 measured sim/hello" in none.output
    unknown = runner.invoke(_cli(), ["history", "--provider", "local", "--snippet", "nope"])
    assert isinstance(unknown.exception, FarmError) and "unknown snippet 'nope'" in str(unknown.exception)
