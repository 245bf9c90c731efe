"""farm.effect on synthetic lognormal samples whose truth is known (fixed seeds): the verdict rates
the issue sets as targets, the FDR control across the rows of one comparison, and the intervals."""

import math

import numpy as np
import pytest

from farm.config import Statistics
from farm.effect import benjamini_hochberg, compare_many, compare_one

DEFAULT = Statistics()

ROWS = 48


def lognormal(rng, n, sigma, ratio=1.0):
    return rng.lognormal(math.log(100 * ratio), sigma, n)


def test_aa_comparisons_of_48_rows_rarely_call_anything():
    """Target: any false slower/faster in <= 5 % of A/A comparisons of 48 rows (BH across rows)."""
    rng = np.random.default_rng(11)
    runs, bad = 40, 0
    for _ in range(runs):
        rows = [(lognormal(rng, 100, 0.2), lognormal(rng, 100, 0.2)) for _ in range(ROWS)]
        bad += any(e.verdict in ("slower", "faster") for e in compare_many(rows, DEFAULT.compare_alpha,
                                                                          DEFAULT.compare_threshold, p95=False))
    assert bad / runs <= 0.05


def test_aa_with_no_threshold_is_bh_controlled():
    """At threshold 0 every A/A row is a true null of 'no change': the family-wise error stays near alpha."""
    rng = np.random.default_rng(12)
    runs = 40
    bad = sum(any(e.verdict in ("slower", "faster") for e in compare_many(
        [(lognormal(rng, 50, 0.3), lognormal(rng, 50, 0.3)) for _ in range(ROWS)], 0.05, 0.0, p95=False))
        for _ in range(runs))
    assert bad / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)


def test_ten_percent_shift_is_called():
    """Target: a 10 % shift at n=200, sigma=0.2 is called slower in >= 90 % (default alpha and threshold).
    Measured with these seeds: 94.5 % for one row; at a 5 % threshold it would be ~61 % (docs/statistics.md)."""
    rng = np.random.default_rng(13)
    runs = 200
    hits = sum(compare_one(lognormal(rng, 200, 0.2), lognormal(rng, 200, 0.2, 1.10), DEFAULT.compare_alpha,
                           DEFAULT.compare_threshold, p95=False).verdict == "slower" for _ in range(runs))
    assert hits / runs >= 0.90


def test_ten_percent_shift_on_every_row_of_48_is_called():
    rng = np.random.default_rng(18)
    runs, hits = 4, 0
    for _ in range(runs):
        rows = [(lognormal(rng, 200, 0.2), lognormal(rng, 200, 0.2, 1.10)) for _ in range(ROWS)]
        hits += sum(e.verdict == "slower" for e in compare_many(rows, DEFAULT.compare_alpha,
                                                                DEFAULT.compare_threshold, p95=False))
    assert hits / (runs * ROWS) >= 0.90


def test_shift_among_many_rows_is_found_and_nulls_stay_quiet():
    rng = np.random.default_rng(14)
    rows = [(lognormal(rng, 400, 0.2), lognormal(rng, 400, 0.2, 1.25 if i < 4 else 1.0)) for i in range(ROWS)]
    effects = compare_many(rows, 0.05, 0.05, p95=False)
    assert [e.verdict for e in effects[:4]] == ["slower"] * 4
    assert not any(e.verdict in ("slower", "faster") for e in effects[4:])
    # the intervals widen with the number of rows (FCR-adjusted level), the same for every row
    assert len({e.level for e in effects}) == 1 and effects[0].level == pytest.approx(1 - 0.05 * 4 / ROWS)


def test_interval_covers_the_true_ratio():
    rng = np.random.default_rng(15)
    runs, covered = 300, 0
    for _ in range(runs):
        e = compare_one(lognormal(rng, 60, 0.4), lognormal(rng, 60, 0.4, 1.3), 0.05, 0.05, p95=False)
        covered += e.ratio_ci[0] <= 1.3 <= e.ratio_ci[1]
    assert covered / runs >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / runs)


def test_inconclusive_says_how_many_repetitions_would_settle_it():
    rng = np.random.default_rng(16)
    e = compare_one(lognormal(rng, 30, 0.5), lognormal(rng, 30, 0.5, 1.15), 0.05, 0.05, p95=False)
    assert e.verdict == "inconclusive" and e.settle_n > 30
    # if the estimate were the truth, that many repetitions decide in ~80 % of comparisons
    trials = 20
    settled = sum(compare_one(lognormal(rng, e.settle_n, 0.5), lognormal(rng, e.settle_n, 0.5, e.ratio), 0.05, 0.05,
                              p95=False).verdict != "inconclusive" for _ in range(trials))
    assert settled >= 12


def test_p95_ratio_only_where_n_allows():
    rng = np.random.default_rng(17)
    small = compare_one(lognormal(rng, 20, 0.2), lognormal(rng, 20, 0.2), 0.05, 0.05)
    assert small.p95_ratio is None and small.p95_ratio_ci is None and small.ratio is not None
    big = compare_one(lognormal(rng, 500, 0.2), lognormal(rng, 500, 0.2, 1.5), 0.05, 0.05)
    assert big.p95_ratio_ci[0] <= 1.5 <= big.p95_ratio_ci[1]


def test_benjamini_hochberg_counts():
    assert benjamini_hochberg([0.001, 0.008, 0.039, 0.041, 0.9], 0.05) == 2
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.04], 0.05) == 4
    assert benjamini_hochberg([], 0.05) == 0
