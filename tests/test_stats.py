"""Statistics on synthetic data, no seam faked: exact quantiles against numpy, order-statistic
intervals against scipy and by simulated coverage, warnings, and the variance/bimodality flags.
Pure functions fed arrays and sample dicts; every random draw is seeded."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from farm.aggregate import QUANTILES, aggregate, exact_stats
from farm.config import Statistics
from farm.stats import ci_ranks, coverage, min_n, modes, quantile_ci, warnings_for

RNG = np.random.default_rng(20240607)
DISTRIBUTIONS = {
    "lognormal": lambda n: RNG.lognormal(np.log(80e6), 0.6, n),
    "exponential": lambda n: 30e6 + RNG.exponential(5e6, n),
    "normal": lambda n: np.abs(RNG.normal(200e6, 20e6, n)),
    "pareto": lambda n: 10e6 * (1 + RNG.pareto(2.0, n)),
    "ties": lambda n: RNG.integers(1, 5, n) * 1e6,  # heavy ties: four distinct values
}


def samples(values_ns, provider="p", snippet="s", phase="run_ns"):
    return [{"provider": provider, "snippet": snippet, "rep": i, "warmup": False, "outcome": "ok",
             phase: int(v)} for i, v in enumerate(values_ns)]


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1, 2, 3, 10, 99, 1_000, 100_000, 1_000_000])
def test_exact_quantiles_match_numpy(dist, n):
    values = DISTRIBUTIONS[dist](n).astype(np.int64)
    stats, cdf = exact_stats(values, 0.95)
    ms = values / 1e6
    expected = np.percentile(ms, QUANTILES)
    for q, want in zip(QUANTILES, expected):
        assert stats[f"p{q}_ms"] == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert stats["min_ms"] == ms.min() and stats["max_ms"] == ms.max()
    assert stats["mean_ms"] == pytest.approx(ms.mean(), rel=1e-12)
    assert (stats["stdev_ms"] is None) == (n == 1)
    assert cdf[0] == ms.min() and cdf[-1] == ms.max() and cdf == sorted(cdf)


@pytest.mark.parametrize("n", [1, 5, 1000, 20_000])
def test_aggregate_rows_match_numpy_and_keep_failures_out(n):
    values = DISTRIBUTIONS["lognormal"](n).astype(np.int64)
    data = samples(values)
    data.append({"provider": "p", "snippet": "s", "rep": n, "warmup": False, "outcome": "error",
                 "error_class": "timeout", "run_ns": None})
    data.append({"provider": "p", "snippet": "s", "rep": 0, "warmup": True, "outcome": "ok", "run_ns": 1})
    (row,) = [r for r in aggregate(data, Statistics(exact_limit=100_000)).rows if r.phase == "run"]
    assert row.n == n and row.errors == 1 and row.method == "exact" and row.relative_error is None
    for q in QUANTILES:
        assert getattr(row, f"p{q}_ms") == pytest.approx(np.percentile(values / 1e6, q), rel=1e-12)
    assert row.min_ms == values.min() / 1e6  # the warm-up's 1 ns never counts


@pytest.mark.parametrize("n", [6, 10, 40, 72, 100, 367, 368, 1000, 5000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_interval_matches_scipy_quantile_test(n, q):
    x = np.sort(RNG.lognormal(0, 1, n))
    ci = sps.quantile_test(x, p=q).confidence_interval(0.95)
    mine = quantile_ci(x, q, 0.95)
    if math.isnan(ci.low) or math.isnan(ci.high):
        assert mine is None  # insufficient n: no made-up bound
    else:
        assert mine == (ci.low, ci.high)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99, 0.999])
def test_min_n_is_the_exact_threshold(q, confidence):
    need = min_n(q, confidence)
    assert ci_ranks(need, q, confidence) is not None
    assert ci_ranks(need - 1, q, confidence) is None
    lo, hi = ci_ranks(need + 50, q, confidence)
    assert coverage(need + 50, q, lo, hi) >= confidence


def test_min_n_known_values():
    assert [min_n(q, 0.95) for q in (0.5, 0.9, 0.95, 0.99)] == [6, 36, 72, 368]


@pytest.mark.parametrize("n,q", [(30, 0.5), (200, 0.5), (200, 0.9), (400, 0.99), (1000, 0.95)])
def test_interval_coverage_close_to_nominal(n, q):
    trials = 4000
    rng = np.random.default_rng(n * 1000 + int(q * 1000))
    sigma = 0.7
    truth = math.exp(sigma * sps.norm.ppf(q))  # lognormal(0, sigma) quantile
    draws = np.sort(rng.lognormal(0, sigma, (trials, n)), axis=1)
    lo, hi = ci_ranks(n, q, 0.95)
    covered = np.mean((draws[:, lo] <= truth) & (truth <= draws[:, hi]))
    exact = coverage(n, q, lo, hi)  # discrete intervals cover at least the nominal level
    se = math.sqrt(exact * (1 - exact) / trials)
    assert exact >= 0.95
    assert abs(covered - exact) < 4 * se + 1e-3, (covered, exact)
    assert covered > 0.94


def test_insufficient_n_is_none_with_flag_and_actionable_warning():
    values = DISTRIBUTIONS["lognormal"](40).astype(np.int64)
    agg = aggregate(samples(values))
    (row,) = [r for r in agg.rows if r.phase == "run"]
    assert row.p99_ci_ms is None and row.p95_ci_ms is None and row.p50_ci_ms is not None
    assert row.p99_ms is not None  # the point estimate is real data; only its interval is missing
    assert "insufficient_n:p99" in row.flags and "p99_ms" in row.insufficient
    text = warnings_for([row.to_dict()], 0.95)
    assert any(w.startswith("p99 from 40 samples is the max") and "run ≥ 368 repetitions" in w for w in text)
    assert any(w.startswith("p95 from 40 samples") and "run ≥ 72 repetitions" in w for w in text)
    assert not any(w.startswith("p50") for w in text)


def test_high_variance_flag():
    wide = aggregate(samples(RNG.exponential(50e6, 500))).rows[0]
    narrow = aggregate(samples(RNG.normal(100e6, 5e6, 500))).rows[0]
    assert "high_variance" in wide.flags and wide.cv == pytest.approx(1.0, abs=0.2)
    assert "high_variance" not in narrow.flags and narrow.cv < 0.1
    few = aggregate(samples(RNG.exponential(50e6, 10))).rows[0]
    assert "high_variance" not in few.flags  # shape flags need n >= 20


def test_bimodal_flag_finds_two_modes_and_spares_skewed_unimodal():
    cold = RNG.lognormal(np.log(2000), 0.1, 100)
    warm = RNG.lognormal(np.log(300), 0.1, 400)
    mixed = aggregate(samples(np.concatenate([warm, cold]) * 1e6)).rows[0]
    assert "bimodal" in mixed.flags
    assert len(mixed.modes_ms) == 2
    assert mixed.modes_ms[0] == pytest.approx(300, rel=0.1) and mixed.modes_ms[1] == pytest.approx(2000, rel=0.1)
    text = warnings_for([mixed.to_dict()], 0.95)
    assert any(w.startswith("bimodal: p/s/run") for w in text)
    for dist in ("lognormal", "exponential", "normal"):
        row = aggregate(samples(DISTRIBUTIONS[dist](2000))).rows[0]
        assert "bimodal" not in row.flags, dist


def test_modes_false_positive_rate_is_low_on_unimodal_latency():
    rng = np.random.default_rng(5)
    flagged = sum(len(modes(40 + rng.exponential(5, 100))) > 1 for _ in range(200))
    assert flagged <= 10  # <= 5 % on a shifted exponential, the classic latency shape
    assert modes(np.array([5.0] * 19)) is None  # too few samples to say anything


# Ground truth for the mode test: what a fixed sleep looks like through real clocks, noisy unimodal
# latency, and true mixtures. n=100 is a typical run; every draw seeded.
def _fixed_20ms(rng, n):
    return {
        "sleep overshoot": 20 + rng.exponential(0.05, n),
        "timer ticks": 20.05 + 0.05 * rng.geometric(0.6, n),
        "two ticks": np.where(rng.random(n) < 0.3, 20.12, 20.06) + rng.normal(0, 0.002, n),
        "rare hiccups": np.where(rng.random(n) < 0.01, 20 + rng.uniform(1, 30, n), 20.06 + rng.exponential(0.02, n)),
        "jitter ±1%": 20 * rng.lognormal(0, 0.01, n),
    }


def _unimodal_noisy(rng, n):
    return {"lognormal σ0.5": rng.lognormal(4, 0.5, n), "gamma": rng.gamma(2, 10, n),
            "shifted exponential": 50 + rng.exponential(10, n), "pareto": 10 * (1 + rng.pareto(2.5, n)),
            "normal": rng.normal(50, 5, n)}


def _bimodal(rng, n):
    def mix(p, a, b, s):
        return np.where(rng.random(n) < p, rng.lognormal(np.log(b), s, n), rng.lognormal(np.log(a), s, n))
    return {"90/10 warm/cold ×5": mix(0.1, 50, 250, 0.2), "50/50 ×2": mix(0.5, 50, 100, 0.1),
            "70/30 ×1.5": mix(0.3, 100, 150, 0.05), "80/20 ×10": mix(0.2, 50, 500, 0.3)}


def _flag_rates(make, n, reps=40, seed=11):
    rng = np.random.default_rng(seed)
    rates: dict[str, float] = {}
    for _ in range(reps):
        for name, values in make(rng, n).items():
            rates[name] = rates.get(name, 0.0) + (len(modes(values)) > 1) / reps
    return rates


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_a_fixed_phase_is_never_bimodal(n):
    assert _flag_rates(_fixed_20ms, n) == {name: 0.0 for name in _fixed_20ms(np.random.default_rng(0), 1)}


def test_noisy_unimodal_is_rarely_and_mixtures_almost_always_bimodal():
    noisy = _flag_rates(_unimodal_noisy, 100)
    assert max(noisy.values()) <= 0.05, noisy
    mixed = _flag_rates(_bimodal, 100)
    assert min(mixed.values()) >= 0.95, mixed


def test_fixed_20ms_row_through_aggregate_and_sketch_has_no_bimodal_flag():
    from farm.sketch import LatencySketch

    values = _fixed_20ms(np.random.default_rng(3), 500)["timer ticks"]
    row = aggregate(samples(values * 1e6)).rows[0]
    assert "bimodal" not in row.flags and len(row.modes_ms) == 1
    assert row.modes_ms[0] == pytest.approx(20.1, rel=0.01)
    sketch = LatencySketch(0.01)
    sketch.add_many(values)
    assert len(sketch.modes()) == 1
