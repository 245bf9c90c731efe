"""Run-to-run comparison, history across runs, and a rolling baseline for scheduled runs.

A difference is called "faster" or "slower" only when it is both significant (two-sided
Mann–Whitney U, p < compare_alpha) and large (|change in p50| >= compare_threshold); everything
else is "no change", or "insufficient n" when the sample sizes cannot reach p < alpha at all.
The test sees at most ``exact_limit`` values per series: a seeded uniform reservoir sample when a
series is larger, so memory stays bounded at any scale.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats as sps

from farm.aggregate import Aggregate, Series, aggregate_run, batch_values
from farm.config import Statistics
from farm.document import Row
from farm.samples import SEP, Batch, phase_key

CHANGE_QUANTILES = (50, 95, 99)
VERDICTS = ("faster", "slower", "no change", "insufficient n")


def min_p_value(m: int, n: int) -> float:
    """The smallest two-sided p-value Mann–Whitney U can give for sample sizes m and n."""
    if m == 0 or n == 0:
        return 1.0
    if m + n > 60:  # 2 / C(m+n, m) is far below any sensible alpha; skip the huge binomial
        return 0.0
    return min(1.0, 2.0 / math.comb(m + n, m))


def verdict(a_ms: np.ndarray, b_ms: np.ndarray, alpha: float, threshold: float) -> dict[str, Any]:
    """Mann–Whitney U of B against A, the relative change in p50, and the verdict."""
    m, n = int(a_ms.size), int(b_ms.size)
    out: dict[str, Any] = {"n_a": m, "n_b": n, "p_value": None, "p50_change": None, "verdict": "insufficient n"}
    if m == 0 or n == 0 or min_p_value(m, n) >= alpha:
        return out
    med_a, med_b = float(np.median(a_ms)), float(np.median(b_ms))
    out["p50_change"] = (med_b - med_a) / med_a if med_a > 0 else None
    res = sps.mannwhitneyu(b_ms, a_ms, alternative="two-sided", method="asymptotic" if m + n > 200 else "auto")
    p = float(res.pvalue) if np.isfinite(res.pvalue) else 1.0  # all values tied: no evidence of change
    out["p_value"] = p
    change = out["p50_change"]
    # The direction must agree between U (P(B > A) vs 1/2) and the medians, or it is no clear change.
    dominance = float(res.statistic) / (m * n) - 0.5
    if p < alpha and change is not None and abs(change) >= threshold and dominance * change > 0:
        out["verdict"] = "slower" if change > 0 else "faster"
    else:
        out["verdict"] = "no change"
    return out


class Reservoir:
    """Up to ``cap`` values per series, a uniform sample of all seen (Algorithm R), seeded."""

    def __init__(self, cap: int, seed: int = 7) -> None:
        self.cap = cap
        self.rng = random.Random(seed)
        self.values: dict[Series, list[float]] = {}
        self.seen: dict[Series, int] = {}

    def add(self, key: Series, value: float) -> None:
        seen = self.seen.get(key, 0)
        self.seen[key] = seen + 1
        bucket = self.values.setdefault(key, [])
        if seen < self.cap:
            bucket.append(value)
        else:
            j = self.rng.randrange(seen + 1)
            if j < self.cap:
                bucket[j] = value

    def feed_batches(self, batches: Iterable[Batch]) -> "Reservoir":
        """The same, from column batches (the stream's fast path)."""
        for batch in batches:
            self.add_batch(batch)
        return self

    def add_batch(self, batch: Batch) -> None:
        for (provider, snippet, *_), _count, rows in batch_values(batch):
            if rows is not None:
                for phase, values in batch.phases(rows):
                    key = (provider, snippet, phase)
                    for ns in values.tolist():
                        self.add(key, ns / 1e6)

    def array(self, key: Series) -> np.ndarray:
        return np.asarray(self.values.get(key, []), dtype=np.float64)


@dataclass
class RunData:
    run_id: str
    agg: Aggregate
    sample: Reservoir

    def rows(self) -> dict[Series, Row]:
        return {(r.provider, r.snippet, r.phase): r for r in self.agg.rows}


def load_run(store: Any, run_id: str, stats: Statistics, only: tuple[str, str] | None = None) -> RunData:
    """Aggregate a run and keep a bounded sample of it for tests; ``only`` = (provider, snippet)."""
    prefix = f"{only[0]}{SEP}{only[1]}{SEP}" if only else ""

    def batches() -> Iterable[Batch]:
        for batch in store.iter_batches(run_id):
            yield batch.where(np.array([g.startswith(prefix) for g in batch.groups], dtype=bool)) \
                if prefix else batch

    agg = aggregate_run(store, run_id, stats, batches)
    return RunData(run_id, agg, Reservoir(stats.exact_limit).feed_batches(batches()))


def _change(a: float | None, b: float | None) -> float | None:
    return (b - a) / a if a is not None and b is not None and a > 0 else None


def compare_data(a: RunData, b: RunData, stats: Statistics) -> list[dict[str, Any]]:
    """One entry per series present in both runs: p50/p95/p99 of each, their changes, the verdict."""
    rows_a, rows_b = a.rows(), b.rows()
    out = []
    for key in sorted(set(rows_a) & set(rows_b), key=lambda k: (k[0], k[1], phase_key(k[2]))):
        ra, rb = rows_a[key], rows_b[key]
        v = verdict(a.sample.array(key), b.sample.array(key), stats.compare_alpha, stats.compare_threshold)
        entry: dict[str, Any] = {"provider": key[0], "snippet": key[1], "phase": key[2], **v,
                                 "n_a": ra.n, "n_b": rb.n}
        for q in CHANGE_QUANTILES:
            va, vb = getattr(ra, f"p{q}_ms"), getattr(rb, f"p{q}_ms")
            entry[f"p{q}_a_ms"], entry[f"p{q}_b_ms"], entry[f"p{q}_change"] = va, vb, _change(va, vb)
        out.append(entry)
    return out


def compare_runs(store: Any, run_a: str, run_b: str, stats: Statistics) -> list[dict[str, Any]]:
    """``farm compare RUN_A RUN_B``: B measured against A."""
    return compare_data(load_run(store, run_a, stats), load_run(store, run_b, stats), stats)


# --- history and rolling baseline ------------------------------------------------------------
def plan_key(manifest: dict[str, Any]) -> str:
    """Runs with equal keys measured the same thing: providers, snippets and the snippets' code."""
    plan = manifest["plan"]
    codes = {name: s.get("digest") or hashlib.sha256(s.get("code", "").encode()).hexdigest()
             for name, s in manifest.get("snippets", {}).items()}
    ident = [sorted(plan["providers"]), sorted(plan["snippets"]), sorted(codes.items())]
    return hashlib.sha256(repr(ident).encode()).hexdigest()[:16]


def previous_runs(store: Any, run_id: str, count: int, scan: int = 500) -> list[str]:
    """The ``count`` most recent finished runs created before ``run_id`` with the same plan."""
    me = store.status(run_id)
    key = plan_key(store.manifest(run_id))
    found = []
    for other in store.recent_runs(scan):  # newest first
        if other == run_id:
            continue
        try:
            st = store.status(other)
            if st.state != "finished" or st.created_ns >= me.created_ns:
                continue
            if plan_key(store.manifest(other)) == key:
                found.append(other)
        except KeyError:
            continue
        if len(found) >= count:
            break
    return found


def baseline_flags(store: Any, run_id: str, stats: Statistics, current: RunData | None = None
                   ) -> dict[str, Any] | None:
    """Compare a run with the pooled previous ``baseline_runs`` runs of its plan; None without any."""
    runs = previous_runs(store, run_id, stats.baseline_runs)
    if not runs:
        return None
    pooled = Reservoir(stats.exact_limit)
    for other in runs:
        pooled.feed_batches(store.iter_batches(other))
    current = current or RunData(run_id, Aggregate([], {}, {}),
                                 Reservoir(stats.exact_limit).feed_batches(store.iter_batches(run_id)))
    changes, flags = [], []
    for key in sorted(set(current.sample.values) & set(pooled.values)):
        v = verdict(pooled.array(key), current.sample.array(key), stats.compare_alpha, stats.compare_threshold)
        entry = {"provider": key[0], "snippet": key[1], "phase": key[2], **v}
        changes.append(entry)
        if v["verdict"] in ("faster", "slower"):
            flags.append(f"{'/'.join(key)}: {v['verdict']} than the baseline of {len(runs)} run(s) "
                         f"(p50 {v['p50_change']:+.0%}, p={v['p_value']:.2g})")
    return {"runs": runs, "flags": flags, "changes": changes}


def history(store: Any, provider: str, snippet: str, phase: str, stats: Statistics, limit: int = 20
            ) -> list[dict[str, Any]]:
    """The series' p50/p95/p99 (with intervals) in each recent run that measured it, oldest first."""
    out: list[dict[str, Any]] = []
    for run_id in reversed(store.recent_runs(limit)):
        try:
            manifest = store.manifest(run_id)
            st = store.status(run_id)
        except KeyError:
            continue
        plan = manifest["plan"]
        if provider not in plan["providers"] or snippet not in plan["snippets"]:
            continue
        data = load_run(store, run_id, stats, only=(provider, snippet))
        row = data.rows().get((provider, snippet, phase))
        entry = {"run_id": run_id, "created": manifest.get("created", ""), "label": st.label,
                 "state": st.state, "n": row.n if row else 0, "errors": row.errors if row else 0}
        for q in CHANGE_QUANTILES:
            entry[f"p{q}_ms"] = getattr(row, f"p{q}_ms") if row else None
            entry[f"p{q}_ci_ms"] = getattr(row, f"p{q}_ci_ms") if row else None
        entry["_sample"] = data.sample.array((provider, snippet, phase))
        out.append(entry)
    # Each run against the previous one that has data: the same test `farm compare` uses.
    prev = None
    for entry in out:
        sample = entry.pop("_sample")
        entry["vs_previous"] = verdict(prev, sample, stats.compare_alpha, stats.compare_threshold)["verdict"] \
            if prev is not None and sample.size else None
        if sample.size:
            prev = sample
    return out


def sparkline(values: Sequence[float | None]) -> str:
    """A one-line trend of values; gaps (missing values) stay blank, never drawn as zero."""
    marks = "▁▂▃▄▅▆▇█"
    present = [v for v in values if v is not None]
    if not present:
        return ""
    lo, hi = min(present), max(present)
    span = hi - lo or 1.0
    return "".join(" " if v is None else marks[min(int((v - lo) / span * len(marks)), len(marks) - 1)]
                   for v in values)
