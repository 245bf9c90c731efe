"""Effect sizes with uncertainty, and verdicts that control the false-discovery rate.

Per series, B against A:

- **ratio of medians**: up to HL_CAP values per side, exp of the Hodges–Lehmann shift of ln(B) − ln(A)
  (the median of all pairwise differences), with the Moses distribution-free interval (order statistics
  of the pairwise differences at the Mann–Whitney critical rank, normal approximation with continuity
  correction). It is the ratio of medians whenever B is A scaled by a factor, the model latency changes
  mostly follow. Above HL_CAP: the ratio of the sample medians, its standard error from each median's
  order-statistic interval, and a normal interval.
- **ratio of p95**: percentile bootstrap with a fixed seed, shown only where both runs have enough
  samples for a p95 interval of their own; informational, it carries no verdict.
- **verdict** from the interval against the threshold t (symmetric on the log scale, [1/(1+t), 1+t]):
  ``slower`` / ``faster`` only when the whole interval lies beyond it, ``equivalent`` when it lies
  inside, ``inconclusive`` otherwise (with the repetitions that would settle it), ``insufficient n``
  when there are too few samples for any interval.
- **FDR**: Benjamini–Hochberg at level ``alpha`` across the rows of one comparison. Each row's p-value
  tests "the change lies within ±t" (the two one-sided Mann–Whitney tests at the threshold shifts,
  doubled). With R rows selected among m, every interval is drawn at the FCR-adjusted level
  1 − alpha·max(R, 1)/m (Benjamini & Yekutieli 2005), so a row's interval lies beyond the threshold
  exactly when BH selects it; the verdict reads off that interval. See docs/statistics.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from farm import digits
from farm.stats import ci_ranks, min_n

# Pairwise differences grow as m·n: above this many values on either side, the ratio of sample medians.
HL_CAP = 2000
ONE_SIGMA = 0.6827
BOOTSTRAP_RESAMPLES = 400
SEED = 20240601
# A row needs this many values per side before an interval means anything at all.
MIN_SIDE = 5
# "Repetitions that would settle it" beyond this are reported as this bound ("> N").
MAX_SUGGESTED = 1_000_000
SETTLE_POWER_Z = 0.8416  # the normal quantile of 80 % power
VERDICTS = ("slower", "faster", "equivalent", "inconclusive", "insufficient n")


@dataclass(frozen=True)
class Effect:
    """B against A for one series. Ratios are B / A; intervals at ``level``."""

    n_a: int
    n_b: int
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    level: float | None = None
    p_value: float | None = None
    p95_ratio: float | None = None
    p95_ratio_ci: tuple[float, float] | None = None
    verdict: str = "insufficient n"
    settle_n: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("ratio_ci", "p95_ratio_ci"):
            out[key] = list(out[key]) if out[key] is not None else None
        return out


@dataclass(frozen=True)
class _Pairs:
    """ln(B) − ln(A) over all pairs (unsorted: order statistics come from np.partition)."""

    diffs: np.ndarray
    m: int
    n: int

    @property
    def sd_u(self) -> float:
        return math.sqrt(self.m * self.n * (self.m + self.n + 1) / 12.0)

    def interval(self, level: float) -> tuple[float, float]:
        """Moses interval for the log shift: the k-th smallest and k-th largest pairwise difference."""
        z = float(sps.norm.ppf(1 - (1 - level) / 2))
        k = int(math.floor(self.m * self.n / 2.0 - z * self.sd_u - 0.5))
        k = min(max(k, 0), (self.diffs.size - 1) // 2)
        hi = self.diffs.size - 1 - k
        part = np.partition(self.diffs, (k, hi))
        return float(part[k]), float(part[hi])

    def estimate(self) -> float:
        """The Hodges–Lehmann shift: the median pairwise difference."""
        return float(np.median(self.diffs))

    def p_beyond(self, shift: float, upper: bool) -> float:
        """One-sided p-value that the true log shift exceeds ``shift`` (upper) or is below it."""
        below = int(np.count_nonzero(self.diffs < shift))
        above = int(np.count_nonzero(self.diffs > shift))
        ties = self.diffs.size - below - above
        u = (above if upper else below) + 0.5 * ties
        z = (u - self.m * self.n / 2.0 - 0.5) / self.sd_u
        return float(sps.norm.sf(z))


@dataclass(frozen=True)
class _Medians:
    """Large samples: ln(median B) − ln(median A), its standard error from each median's
    order-statistic interval (±1 sigma ranks), normal interval and tests. O(n log n) at any n."""

    shift: float
    se: float
    m: int
    n: int

    def interval(self, level: float) -> tuple[float, float]:
        z = float(sps.norm.ppf(1 - (1 - level) / 2))
        return self.shift - z * self.se, self.shift + z * self.se

    def estimate(self) -> float:
        return self.shift

    def p_beyond(self, shift: float, upper: bool) -> float:
        z = (self.shift - shift) / self.se if self.se > 0 else (math.inf if self.shift != shift else 0.0)
        return float(sps.norm.sf(z) if upper else sps.norm.cdf(z))


def _median_se(sorted_logs: np.ndarray) -> float:
    ranks = ci_ranks(int(sorted_logs.size), 0.5, ONE_SIGMA)
    lo, hi = ranks if ranks is not None else (0, sorted_logs.size - 1)
    return float(sorted_logs[hi] - sorted_logs[lo]) / 2


def _positive_logs(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return np.log(x[x > 0])  # a zero duration (a clamped clock) has no ratio; it cannot move one either


def _pairs(a: np.ndarray, b: np.ndarray) -> "_Pairs | _Medians | None":
    la, lb = _positive_logs(a), _positive_logs(b)
    if la.size < MIN_SIDE or lb.size < MIN_SIDE:
        return None
    if la.size > HL_CAP or lb.size > HL_CAP:
        la.sort()
        lb.sort()
        se = math.hypot(_median_se(la), _median_se(lb))
        return _Medians(float(np.median(lb) - np.median(la)), se, int(la.size), int(lb.size))
    diffs = (lb[None, :] - la[:, None]).ravel()
    return _Pairs(diffs, int(la.size), int(lb.size))


def _p95_ratio(a: np.ndarray, b: np.ndarray, level: float) -> tuple[float | None, tuple[float, float] | None]:
    """p95(B) / p95(A) and its percentile-bootstrap interval; None where n is too small."""
    need = min_n(0.95, level)
    if a.size < need or b.size < need or a.size < MIN_SIDE or b.size < MIN_SIDE:
        return None, None
    rng = np.random.default_rng(SEED)
    sa, sb = (rng.choice(x, HL_CAP, replace=False) if x.size > HL_CAP else x for x in (a, b))
    pa, pb = float(np.percentile(a, 95)), float(np.percentile(b, 95))
    if pa <= 0:
        return None, None
    boot_a = np.percentile(sa[rng.integers(0, sa.size, (BOOTSTRAP_RESAMPLES, sa.size))], 95, axis=1)
    boot_b = np.percentile(sb[rng.integers(0, sb.size, (BOOTSTRAP_RESAMPLES, sb.size))], 95, axis=1)
    ok = boot_a > 0
    ratios = boot_b[ok] / boot_a[ok]
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return pb / pa, (float(lo), float(hi))


def _p_value(pairs: "_Pairs | _Medians", bound: float) -> float:
    """Two-sided p-value of "the change lies within ±threshold" (bound = ln(1 + threshold))."""
    return min(1.0, 2.0 * min(pairs.p_beyond(bound, upper=True), pairs.p_beyond(-bound, upper=False)))


def benjamini_hochberg(p_values: Sequence[float], q: float) -> int:
    """The number of hypotheses BH rejects at FDR level q (the largest k with p_(k) <= k·q/m)."""
    m = len(p_values)
    ordered = sorted(p_values)
    return max((k for k in range(1, m + 1) if ordered[k - 1] <= k * q / m), default=0)


def _settle(log_ci: tuple[float, float], estimate: float, bound: float, n: int, level: float) -> int | None:
    """Repetitions per run that would decide the verdict with 80 % probability if the estimate were the
    truth: the interval's half-width shrinks as 1/√n and must fit into the gap between estimate and
    threshold with a 0.84-sigma margin."""
    half = (log_ci[1] - log_ci[0]) / 2
    gap = abs(abs(estimate) - bound)
    if half <= 0:
        return None
    if gap < 1e-12:
        return MAX_SUGGESTED
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    factor = (z + SETTLE_POWER_Z) / z
    return min(MAX_SUGGESTED, max(n + 1, math.ceil(n * (factor * half / gap) ** 2)))


def _read(log_ci: tuple[float, float], bound: float) -> str:
    lo, hi = log_ci
    if lo > bound:
        return "slower"
    if hi < -bound:
        return "faster"
    if -bound < lo and hi < bound:
        return "equivalent"
    return "inconclusive"


def compare_many(pairs_of_samples: Sequence[tuple[np.ndarray, np.ndarray]], alpha: float, threshold: float,
                 p95: bool = True) -> list[Effect]:
    """One Effect per (A, B), verdicts controlled for FDR across all of them at level ``alpha``;
    ``p95=False`` skips the (bootstrap) p95 ratios."""
    bound = math.log1p(threshold)
    prepared = [(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) for a, b in pairs_of_samples]
    pairs = [_pairs(a, b) for a, b in prepared]
    tested = [p for p in pairs if p is not None]
    p_values = [_p_value(p, bound) for p in tested]
    m = len(tested)
    selected = benjamini_hochberg(p_values, alpha) if m else 0
    level = 1 - alpha * max(selected, 1) / max(m, 1)
    out, it = [], iter(p_values)
    for (a, b), pr in zip(prepared, pairs):
        effect = Effect(int(a.size), int(b.size))
        if pr is not None:
            estimate = pr.estimate()
            log_ci = pr.interval(level)
            verdict = _read(log_ci, bound)
            p95_value, p95_ci = _p95_ratio(a, b, level) if p95 else (None, None)
            effect = replace(effect, ratio=math.exp(estimate), ratio_ci=(math.exp(log_ci[0]), math.exp(log_ci[1])),
                             level=level, p_value=next(it), p95_ratio=p95_value, p95_ratio_ci=p95_ci, verdict=verdict,
                             settle_n=_settle(log_ci, estimate, bound, min(pr.m, pr.n), level)
                             if verdict == "inconclusive" else None)
        out.append(effect)
    return out


def compare_one(a: np.ndarray, b: np.ndarray, alpha: float, threshold: float, p95: bool = True) -> Effect:
    """A single comparison (no other rows to control for): the interval at level 1 − alpha."""
    return compare_many([(a, b)], alpha, threshold, p95)[0]


def ratio_text(effect: Effect) -> str:
    """'1.12× (1.08–1.16)' or '—'."""
    if effect.ratio is None or effect.ratio_ci is None:
        return "—"
    return digits.ratio_text(effect.ratio, *effect.ratio_ci)
