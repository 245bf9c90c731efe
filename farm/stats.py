"""Uncertainty and shape: quantile confidence intervals, flags, and warnings that say what to do.

Quantile intervals are distribution-free order-statistic intervals: the number of samples below
the true q-quantile is Binomial(n, q), so a pair of order statistics (X_(l), X_(u)) covers it with
probability P(l <= B < u). We pick the equal-tailed pair (each tail <= (1 - confidence) / 2); when
no such pair exists inside the sample (n too small for that quantile), the interval is None and the
row says "insufficient n" — never a made-up number. See docs/statistics.md.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Iterable

import numpy as np
from scipy import stats as sps

# CV (stdev / mean) above this is flagged: the spread is half the mean or more.
HIGH_CV = 0.5
# Shape statistics (CV, modes) from fewer samples are noise; no flags below this n.
MIN_N_SHAPE = 20
# Mode test (see modes()): density grid, deepest allowed valley, smallest mode worth a flag.
GRID = 256
MAX_VALLEY = 0.4
MIN_MODE_MASS = 0.05
MIN_MODE_COUNT = 5
# Log-scale spread below this (0.1 %) is flat enough that "two modes" would mean nothing.
MIN_LOG_SD = 1e-3
# Kernel bandwidth floor on the log scale (2 %): clusters closer than this are one duration measured
# through a clock's tick or a sleep's overshoot, not two populations.
MIN_LOG_BANDWIDTH = 0.02
# Peaks closer than this ratio are one mode (a 15 % difference is not "warm vs cold").
MIN_MODE_RATIO = 1.15


def _tail(confidence: float) -> float:
    return (1.0 - confidence) / 2.0


@lru_cache(maxsize=4096)
def ci_ranks(n: int, q: float, confidence: float) -> tuple[int, int] | None:
    """0-based order-statistic indices (lo, hi) of the equal-tailed interval, or None if n is too small."""
    if n <= 0 or not 0.0 < q < 1.0:
        return None
    tail = _tail(confidence)
    # l (1-based): the largest with P(B <= l-1) <= tail.  u: the smallest with P(B >= u) <= tail.
    k = int(sps.binom.ppf(tail, n, q))
    lo = k + 1 if sps.binom.cdf(k, n, q) <= tail else k
    hi = int(sps.binom.ppf(1.0 - tail, n, q)) + 1
    if lo < 1 or hi > n:
        return None
    return lo - 1, hi - 1


def coverage(n: int, q: float, lo: int, hi: int) -> float:
    """Exact coverage probability of the order-statistic interval [X_(lo+1), X_(hi+1)]."""
    return float(sps.binom.cdf(hi, n, q) - sps.binom.cdf(lo, n, q))


@lru_cache(maxsize=256)
def min_n(q: float, confidence: float) -> int:
    """The smallest n for which the q-quantile has a two-sided interval at this confidence."""
    tail = _tail(confidence)
    worst = max(q, 1.0 - q)  # the tail that runs out first: P(all n samples on one side) <= tail
    n = max(1, math.ceil(math.log(tail) / math.log(worst)))
    while n > 1 and worst ** (n - 1) <= tail:  # float rounding: make it the exact minimum
        n -= 1
    while worst ** n > tail:
        n += 1
    return n


def quantile_ci(sorted_values: np.ndarray, q: float, confidence: float) -> tuple[float, float] | None:
    """The interval for the q-quantile from sorted values, or None ("insufficient n")."""
    ranks = ci_ranks(int(sorted_values.size), q, confidence)
    if ranks is None:
        return None
    return float(sorted_values[ranks[0]]), float(sorted_values[ranks[1]])


def modes(values_ms: np.ndarray, weights: np.ndarray | None = None) -> list[float] | None:
    """Significant modes (ms) of a latency distribution, from a kernel density of ln(value).

    Gaussian kernel, Silverman's bandwidth (never below MIN_LOG_BANDWIDTH: a timer's tick or a
    sleep's overshoot makes clusters a fraction of a percent apart, which are one duration), on a
    256-point grid. The density is cut at its valleys into segments, one peak each; neighbouring
    segments are one mode when the valley between them is not deep (above MAX_VALLEY of the smaller
    peak) or their peaks are less than MIN_MODE_RATIO apart, and a segment holding less than
    MIN_MODE_MASS of the samples (or MIN_MODE_COUNT samples) joins its neighbour. None when
    n < MIN_N_SHAPE. ``weights`` lets a sketch pass its bins (representative value, count).
    """
    x = np.asarray(values_ms, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = x > 0  # a zero duration has no logarithm; it cannot make a mode of its own
    x, w = np.log(x[keep]), w[keep]
    n = float(w.sum())
    if n < MIN_N_SHAPE:
        return None
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < MIN_LOG_SD:
        return [float(math.exp(lo))]
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order]) / n
    mean = float(np.average(x, weights=w))
    sd = math.sqrt(float(np.average((x - mean) ** 2, weights=w)))
    iqr = float(xs[np.searchsorted(cw, 0.75)] - xs[np.searchsorted(cw, 0.25)])
    h = max(0.9 * (min(sd, iqr / 1.34) or sd) * n ** -0.2, MIN_LOG_BANDWIDTH)
    edges = np.linspace(lo - 3 * h, hi + 3 * h, GRID + 1)
    step = edges[1] - edges[0]
    hist, _ = np.histogram(x, bins=edges, weights=w)
    width = max(h / step, 1.0)
    k = np.arange(-int(4 * width) - 1, int(4 * width) + 2)
    # "full" and slice: "same" returns the longer input's length, the kernel's when it outgrows the grid
    dens = np.convolve(hist, np.exp(-0.5 * (k / width) ** 2), mode="full")[k.size // 2: k.size // 2 + GRID]
    centers = (edges[:-1] + edges[1:]) / 2
    peaks = [i for i in range(1, GRID - 1) if dens[i] > dens[i - 1] and dens[i] >= dens[i + 1]]
    if len(peaks) < 2:
        return [float(math.exp(centers[int(np.argmax(dens))]))]
    cum = np.concatenate(([0.0], np.cumsum(hist) / n))
    # Segments between valleys: [start bin, end bin, peak bin]; the first and last reach the grid's ends.
    valleys = [a + int(np.argmin(dens[a:b + 1])) for a, b in zip(peaks, peaks[1:])]
    bounds = [0, *valleys, GRID]
    segs = [[bounds[i], bounds[i + 1], p] for i, p in enumerate(peaks)]
    need = max(MIN_MODE_MASS, MIN_MODE_COUNT / n)

    def join(i: int) -> None:  # segment i and i + 1 become one, its peak the higher of the two
        a, b = segs[i], segs.pop(i + 1)
        a[1], a[2] = b[1], a[2] if dens[a[2]] >= dens[b[2]] else b[2]

    def weak(i: int) -> float:  # > 0: the boundary after segment i does not separate two modes
        a, b = segs[i], segs[i + 1]
        valley = float(dens[a[1]]) / min(dens[a[2]], dens[b[2]])
        close = centers[b[2]] - centers[a[2]] < math.log(MIN_MODE_RATIO)
        return max(valley - MAX_VALLEY, 0.0) + (1.0 if close else 0.0)

    while len(segs) > 1:
        worst = max(range(len(segs) - 1), key=weak)
        if weak(worst) > 0:
            join(worst)
            continue
        masses = [cum[e] - cum[s] for s, e, _ in segs]
        small = min(range(len(segs)), key=lambda i: masses[i])
        if masses[small] >= need:
            break
        # a thin segment joins the neighbour it is least separated from (the higher valley)
        if small == 0 or (small < len(segs) - 1 and dens[segs[small][1]] >= dens[segs[small - 1][1]]):
            join(small)
        else:
            join(small - 1)
    return [float(math.exp(centers[p])) for _, _, p in segs]


def shape_flags(n: int, mean: float | None, stdev: float | None, modes_ms: list[float] | None
                ) -> tuple[float | None, list[str]]:
    """The coefficient of variation and the flags it and the modes raise."""
    cv = stdev / mean if mean and stdev is not None and mean > 0 else None
    flags = []
    if n >= MIN_N_SHAPE and cv is not None and cv > HIGH_CV:
        flags.append("high_variance")
    if modes_ms is not None and len(modes_ms) > 1:
        flags.append("bimodal")
    return cv, flags


def warnings_for(rows: Iterable[dict[str, Any]], confidence: float) -> list[str]:
    """Actionable warnings: quantiles without an interval, high variance, bimodal series, sketches."""
    rows = [r for r in rows if r.get("n")]
    out: list[str] = []
    pct = f"{confidence * 100:g}%"
    for key in ("p50", "p90", "p95", "p99"):
        short = [r for r in rows if f"{key}_ms" in (r.get("insufficient") or [])]
        if not short:
            continue
        q = int(key[1:]) / 100
        smallest = min(r["n"] for r in short)
        need = min_n(q, confidence)
        what = "is the max" if smallest * (1 - q) < 1 else "is near the extremes"
        out.append(f"{key} from {smallest} samples {what} and has no {pct} interval "
                   f"({len(short)} series): run ≥ {need} repetitions")
    noisy = [r for r in rows if "high_variance" in r.get("flags", [])]
    if noisy:
        worst = max(noisy, key=lambda r: r["cv"])
        out.append(f"high variance in {len(noisy)} series (worst {_series(worst)}: CV {worst['cv']:.2f}"
                   f" > {HIGH_CV}): compare medians, not means, and check for noisy neighbours")
    bimodal = [r for r in rows if "bimodal" in r.get("flags", [])]
    if bimodal:
        names = ", ".join(_series(r) for r in bimodal[:4]) + (" …" if len(bimodal) > 4 else "")
        first = bimodal[0]
        where = " and ".join(f"{m:.3g} ms" for m in first["modes_ms"][:3])
        out.append(f"bimodal: {names} (e.g. modes at {where}): look at the chart; a mix of warm and cold "
                   "starts, or two regions, makes one median misleading: split or pin the cause")
    sketched = [r for r in rows if r.get("method") == "sketch"]
    if sketched:
        acc = max(r["relative_error"] for r in sketched)
        out.append(f"{len(sketched)} series above the exact limit use DDSketch quantiles: "
                   f"within ±{acc * 100:g}% of the true order statistic; their intervals include that bound")
    return out


def _series(row: dict[str, Any]) -> str:
    return f"{row['provider']}/{row['snippet']}/{row['phase']}"
