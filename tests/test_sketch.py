"""Sketches: DDSketch quantiles within the stated relative error, merging, the wire format, and the
worker-flush / aggregator-merge path against a real redis-server (tests.harness.Farm). Worker
processes are real forked processes (and, end to end, real Celery workers); nothing is faked."""

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from farm import sketch
from farm.aggregate import QUANTILES, aggregate, aggregate_run, sketch_stats
from farm.config import Statistics
from farm.manifest import Manifest
from farm.sketch import LatencySketch
from farm.stats import ci_ranks
from farm.store import Store
from workers import sketches

RNG = np.random.default_rng(11)
DISTS = {
    "lognormal": lambda n: RNG.lognormal(np.log(150), 0.8, n),
    "shifted-exp": lambda n: 40 + RNG.exponential(8, n),
    "bimodal": lambda n: np.where(RNG.random(n) < 0.8, RNG.normal(300, 20, n), RNG.normal(2000, 100, n)),
    "wide": lambda n: 10 ** RNG.uniform(-2, 5, n),  # 10 µs .. 100 s
}


def lower_quantile(sorted_ms, q):
    return sorted_ms[int(np.floor(q * (sorted_ms.size - 1)))]


@pytest.mark.parametrize("alpha", [0.01, 0.05])
@pytest.mark.parametrize("dist", sorted(DISTS))
@pytest.mark.parametrize("n", [1, 7, 1000, 1_000_000])
def test_sketch_quantiles_within_stated_relative_error(dist, n, alpha):
    x = np.abs(DISTS[dist](n))
    sk = LatencySketch(alpha)
    sk.add_many(x)
    xs = np.sort(x)
    for q in (0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1):
        want = lower_quantile(xs, q)
        got = sk.quantile(q)
        assert abs(got - want) <= alpha * want * (1 + 1e-9), (q, got, want)
    for rank in (0, n // 3, n - 1):
        assert abs(sk.value_at_rank(rank) - xs[rank]) <= alpha * xs[rank] * (1 + 1e-9)
    assert sk.n == n and sk.min == xs[0] and sk.max == xs[-1]
    assert sk.mean == pytest.approx(x.mean(), rel=1e-9)


def test_merge_equals_one_sketch_and_round_trips():
    x = DISTS["lognormal"](50_000)
    whole = LatencySketch(0.01)
    whole.add_many(x)
    parts = [LatencySketch.from_json(_sk(chunk).to_json()) for chunk in np.array_split(x, 7)]
    merged = LatencySketch(0.01)
    for p in parts:
        merged.merge(p)
    assert merged.bins == whole.bins and merged.n == whole.n
    assert merged.stdev == pytest.approx(np.std(x, ddof=1), rel=1e-9)
    assert [merged.quantile(q) for q in (0.5, 0.99)] == [whole.quantile(q) for q in (0.5, 0.99)]
    again = LatencySketch.from_json(merged.to_json())
    assert again.to_json() == merged.to_json()
    with pytest.raises(ValueError, match="relative accuracy"):
        merged.merge(LatencySketch(0.02))
    assert set(json.loads(merged.to_json())) == {"f", "alpha", "n", "zero", "min", "max", "mean", "m2", "lo", "bins"}


def _sk(values):
    sk = LatencySketch(0.01)
    sk.add_many(values)
    return sk


def test_aggregate_switches_to_sketch_past_the_exact_limit_without_holding_everything():
    x = (DISTS["shifted-exp"](20_000) * 1e6).astype(np.int64)
    data = ({"provider": "p", "snippet": "s", "warmup": False, "outcome": "ok", "run_ns": int(v)} for v in x)
    (row,) = aggregate(data, Statistics(exact_limit=1000)).rows
    xs = np.sort(x / 1e6)
    assert row.method == "sketch" and row.relative_error == 0.01 and row.sketch_source == "stream"
    assert row.n == x.size and row.min_ms == xs[0] and row.max_ms == xs[-1]
    for q in QUANTILES:
        want = lower_quantile(xs, q / 100)
        assert abs(getattr(row, f"p{q}_ms") - want) <= 0.01 * want * (1 + 1e-9)
    lo, hi = row.p50_ci_ms
    assert lo <= row.p50_ms <= hi
    for q in QUANTILES:  # every sketched interval holds the exact order-statistic one, and is not a point
        ranks = ci_ranks(xs.size, q / 100, 0.95)
        lo, hi = getattr(row, f"p{q}_ci_ms")
        assert lo <= xs[ranks[0]] and xs[ranks[1]] <= hi and hi > lo, q


# --- honest intervals: rank uncertainty and the sketch's bin width, never narrower -------------
TIGHT = {  # narrow distributions are where the old interval (one bin's representative) collapsed
    "normal-100": lambda rng, n: rng.normal(100, 1.0, n),
    "lognormal": lambda rng, n: rng.lognormal(np.log(150), 0.8, n),
    "fixed-5ms": lambda rng, n: 5 + rng.exponential(0.01, n),
}


@pytest.mark.parametrize("dist", sorted(TIGHT))
@pytest.mark.parametrize("alpha", [0.01, 0.002])
def test_sketch_interval_holds_the_exact_interval_at_a_million_samples(dist, alpha):
    """Ground truth: the exact order-statistic interval of the same 10^6 values lies inside the
    sketched one, which has width, and is at most one bin wider at each end (not a useless band)."""
    rng = np.random.default_rng([sorted(TIGHT).index(dist), int(alpha * 1000)])
    x = TIGHT[dist](rng, 1_000_000)
    sk = LatencySketch(alpha)
    sk.add_many(x)
    xs = np.sort(x)
    stats, _ = sketch_stats(sk, 0.95)
    for q in QUANTILES:
        l, u = ci_ranks(xs.size, q / 100, 0.95)
        lo, hi = stats[f"p{q}_ci_ms"]
        assert lo <= xs[l] and xs[u] <= hi, (q, lo, hi, xs[l], xs[u])
        assert hi > lo
        gamma = (1 + alpha) / (1 - alpha)
        assert lo >= xs[l] / gamma * (1 - 1e-6) and hi <= xs[u] * gamma * (1 + 1e-6), (q, lo, hi)
        assert lo <= stats[f"p{q}_ms"] <= hi


def test_sketch_interval_covers_the_true_quantile_at_its_level():
    """Coverage by simulation against a known distribution: lognormal(mu, sigma) has its q-quantile
    at exp(mu + sigma * z_q). 400 sketched series of 20,000 values; the 95 % intervals must cover
    at least 95 % less three standard errors (the exact intervals alone cover >= 95 %)."""
    from scipy.stats import norm

    rng = np.random.default_rng(2026)
    mu, sigma, reps = np.log(100), 0.05, 400  # narrow: a bin (±1 %) is wider than the rank interval
    truth = {q: float(np.exp(mu + sigma * norm.ppf(q / 100))) for q in (50, 95)}
    covered = {q: 0 for q in truth}
    for _ in range(reps):
        sk = LatencySketch(0.01)
        sk.add_many(rng.lognormal(mu, sigma, 20_000))
        stats, _ = sketch_stats(sk, 0.95)
        for q, true in truth.items():
            lo, hi = stats[f"p{q}_ci_ms"]
            covered[q] += lo <= true <= hi
    floor = 0.95 - 3 * np.sqrt(0.95 * 0.05 / reps)
    for q, count in covered.items():
        assert count / reps >= floor, (q, count / reps)


# --- the worker path: after_commit + flush in real processes, merged by the aggregator --------
def _manifest(reps, exact_limit=100):
    return Manifest(run_id="r", plan={"providers": ["p"], "snippets": ["s"], "repetitions": reps, "warmup": 0,
                                      "seed": 1, "total": reps, "measured": reps},
                    concurrency=1, window=4, max_attempts=3, timeouts={}, task_soft_limit_s=60,
                    task_hard_limit_s=70, statistics={"exact_limit": exact_limit, "sketch_relative_accuracy": 0.01})


def _record(i, value_ms):
    return {"provider": "p", "snippet": "s", "rep": i, "warmup": False, "attempt": 1, "worker": "w",
            "outcome": "ok", "create_ns": 1_000_000, "ready_ns": 2_000_000, "run_ns": int(value_ms * 1e6),
            "destroy_ns": 500_000, "total_ns": int(value_ms * 1e6) + 3_500_000}


def _worker(url, run_id, manifest, items):
    store = Store.from_url(url)
    for i, v in items:
        rec = _record(i, v)
        result = store.commit(run_id, rec)
        sketches.after_commit(store, run_id, manifest, rec, result)
        # A redelivered duplicate: commit drops it (0) and after_commit must not count it.
        sketches.after_commit(store, run_id, manifest, rec, store.commit(run_id, rec))
    sketches.flush(store)  # the shutdown flush: nothing left to write, must not double count


def test_worker_sketches_merge_and_a_short_writer_triggers_a_rebuild(farm):
    values = DISTS["lognormal"](600)
    manifest = _manifest(len(values))
    farm.store.create_run("r", manifest.to_dict(), len(values))
    ctx = multiprocessing.get_context("fork")
    chunks = np.array_split(np.arange(len(values)), 3)
    procs = [ctx.Process(target=_worker, args=(farm.url, "r", manifest, [(int(i), values[i]) for i in c]))
             for c in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    fields = farm.store.r.hkeys(sketch.sketches_key("r"))
    writers = {f.rsplit("|", 1)[1] for f in fields}
    assert len(writers) == 3 and {f.split("|")[2] for f in fields} >= {"create", "ready", "tti", "run", "total"}
    for text in farm.store.r.hvals(sketch.sketches_key("r")):
        assert set(json.loads(text)) == {"f", "alpha", "n", "zero", "min", "max", "mean", "m2", "lo", "bins"}

    stats = Statistics(exact_limit=100)
    rows = {r.phase: r for r in aggregate_run(farm.store, "r", stats).rows}
    xs = np.sort(values)
    run = rows["run"]
    assert run.method == "sketch" and run.sketch_source == "workers" and run.n == 600
    assert abs(run.p50_ms - lower_quantile(xs, 0.5)) <= 0.01 * lower_quantile(xs, 0.5) * (1 + 1e-9)
    assert rows["tti"].n == 600 and rows["tti"].p50_ms == pytest.approx(3.0, rel=0.01)

    # A writer that died before flushing: its field is gone, counts disagree, the series is rebuilt.
    farm.store.r.hdel(sketch.sketches_key("r"), *[f for f in fields if f.endswith(sorted(writers)[0])])
    agg = aggregate_run(farm.store, "r", stats)
    rebuilt = {r.phase: r for r in agg.rows}["run"]
    assert rebuilt.sketch_source == "rebuilt" and rebuilt.n == 600
    assert abs(rebuilt.p99_ms - lower_quantile(xs, 0.99)) <= 0.01 * lower_quantile(xs, 0.99) * (1 + 1e-9)
    assert any("rebuilt from the stream" in note for note in agg.sketch_notes)


def test_small_runs_write_no_sketches(farm):
    manifest = _manifest(50, exact_limit=100)
    farm.store.create_run("small", manifest.to_dict(), 50)
    rec = _record(0, 12.0)
    sketches.after_commit(farm.store, "small", manifest, rec, farm.store.commit("small", rec))
    assert not farm.store.r.exists(sketch.sketches_key("small"))


HOOKED = "sketches.after_commit" in (Path(__file__).parent.parent / "workers" / "app.py").read_text() and \
    "statistics=" in (Path(__file__).parent.parent / "farm" / "manifest.py").read_text()


@pytest.mark.skipif(not HOOKED, reason="workers/app.py does not call workers.sketches.after_commit yet, or the "
                    "manifest lacks statistics (lead: apply the issue-7 hook)")
def test_real_workers_flush_sketches_the_aggregator_uses(tmp_path):
    from tests.harness import Farm

    with Farm(tmp_path, {"statistics": {"exact_limit": 100}}) as farm:
        farm.worker("local", concurrency=2)
        run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=102)
        farm.wait(run_id, timeout=120)
        rows = {r.phase: r for r in aggregate_run(farm.store, run_id, farm.config.statistics).rows}
        assert rows["run"].method == "sketch" and rows["run"].sketch_source == "workers"
        assert rows["run"].n == 102 == rows["total"].n
        exact = np.sort([s["run_ns"] / 1e6 for s in farm.store.iter_samples(run_id) if not s["warmup"]])
        assert abs(rows["run"].p50_ms - lower_quantile(exact, 0.5)) <= 0.01 * lower_quantile(exact, 0.5) * 1.000001


def test_run_without_worker_sketches_is_sketched_from_the_stream_in_one_pass(farm):
    values = DISTS["shifted-exp"](300)
    farm.store.create_run("bare", _manifest(300).to_dict(), 300)
    for i, v in enumerate(values):
        farm.store.commit("bare", _record(i, v))  # no after_commit: as if workers had no hook
    agg = aggregate_run(farm.store, "bare", Statistics(exact_limit=100))
    run = {r.phase: r for r in agg.rows}["run"]
    assert run.method == "sketch" and run.sketch_source == "stream" and run.n == 300
    assert agg.sketch_notes == []
    exact = {r.phase: r for r in aggregate_run(farm.store, "bare", Statistics(exact_limit=1000)).rows}["run"]
    assert exact.method == "exact" and exact.p50_ms == pytest.approx(np.percentile(np.floor(values * 1e6) / 1e6, 50))
