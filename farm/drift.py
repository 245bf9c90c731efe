"""Within-run drift: does a series trend over the order its samples started in?

Comparisons and intervals assume the samples of one run are independent draws from one
distribution. Load from other processes, a warming cache or a throttling API break that: the
values trend with time. Per series (provider, snippet, measured phase) we test Spearman's rank
correlation of value against start time, Bonferroni-corrected across the series of the run, and
warn only when the trend is also material: the median of the last third differs from the first
third's by at least the comparison threshold.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from scipy import stats as sps

from farm.aggregate import batch_values
from farm.samples import NUMBERS, PHASES, Batch

MIN_N = 30  # fewer samples than this cannot show a trend worth a warning
CAP = 20_000  # values kept per series: the first CAP in stream order, enough for any trend


def trend(order: np.ndarray, values: np.ndarray) -> tuple[float, float, float] | None:
    """(Spearman rho, p-value, last-third / first-third median ratio) or None when n is too small."""
    if values.size < MIN_N:
        return None
    idx = np.argsort(order, kind="stable")
    v = values[idx].astype(np.float64)
    if np.all(v == v[0]):
        return 0.0, 1.0, 1.0
    rho, p = sps.spearmanr(np.arange(v.size), v)
    third = v.size // 3
    first, last = float(np.median(v[:third])), float(np.median(v[-third:]))
    ratio = last / first if first > 0 else math.inf
    return float(rho), float(p), ratio


def collect(batches: Iterable[Batch]) -> dict[tuple[str, str, str], tuple[list[int], list[int]]]:
    """(start times, ns values) per measured series, successful measured samples only."""
    start_col = NUMBERS.index("started_ns")
    out: dict[tuple[str, str, str], tuple[list[int], list[int]]] = {}
    for batch in batches:
        for (provider, snippet, *_), _count, rows in batch_values(batch):
            if rows is None:
                continue
            numbers = batch.numbers[rows]
            for j, phase in enumerate(PHASES, start=1):
                keep = numbers[:, j] >= 0
                if not keep.any():
                    continue
                starts, values = out.setdefault((provider, snippet, phase), ([], []))
                room = CAP - len(values)
                if room > 0:
                    starts.extend(numbers[keep, start_col][:room].tolist())
                    values.extend(numbers[keep, j][:room].tolist())
    return out


def warnings(series: dict[tuple[str, str, str], tuple[list[int], list[int]]], alpha: float, threshold: float,
             label: str = "") -> list[str]:
    """One line per series that drifts both significantly (Bonferroni) and materially."""
    found = []
    tested = {k: t for k, (s, v) in series.items() if (t := trend(np.asarray(s), np.asarray(v))) is not None}
    m = max(len(tested), 1)
    for key, (rho, p, ratio) in sorted(tested.items()):
        if p * m < alpha and abs(math.log(ratio)) >= math.log1p(threshold):
            where = f" in {label}" if label else ""
            found.append(f"drift{where}: {'/'.join(key)} {'rises' if ratio > 1 else 'falls'} "
                         f"{ratio:.3g}× from the first to the last third of the run (Spearman ρ={rho:+.2f}, "
                         f"p={p:.1g}): samples are not independent; check host load and concurrency")
    return found


def drift_warnings(store: Any, run_ids: Iterable[str], stats: Any) -> list[str]:
    """Drift warnings for stored runs (``stats``: farm.config.Statistics)."""
    out: list[str] = []
    for run_id in run_ids:
        out += warnings(collect(store.iter_batches(run_id)), stats.compare_alpha, stats.compare_threshold, run_id)
    return out
