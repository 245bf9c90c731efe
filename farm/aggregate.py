"""Percentiles per (provider, snippet, phase) from a run's samples.

Only successful, measured (non-warm-up) samples contribute values; failures are counted in
``errors`` and never turned into zeros. Quantiles are exact, with linear interpolation (numpy's
default method).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from farm.store import PHASES

QUANTILES = (50, 90, 95, 99)
# Phases in the order people read them; "tti" (time to interactive) = create-or-claim + ready.
PHASE_ORDER = ("queue", "claim", "create", "ready", "tti", "setup", "run", "destroy", "total")


@dataclass
class Row:
    provider: str
    snippet: str
    phase: str
    n: int
    errors: int
    error_rate: float
    min_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    stdev_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_phases(sample: dict[str, Any]) -> dict[str, int]:
    """The phase durations (ns) a sample has, derived ones included."""
    values = {p: sample[f"{p}_ns"] for p in PHASES if sample.get(f"{p}_ns") is not None}
    acquire = values.get("claim", values.get("create"))
    if acquire is not None and "ready" in values:
        values["tti"] = acquire + values["ready"]
    for name, ns in (sample.get("internal") or {}).items():
        values[f"internal.{name}"] = ns
    return values


def _phase_key(phase: str) -> tuple[int, str]:
    return (PHASE_ORDER.index(phase), "") if phase in PHASE_ORDER else (len(PHASE_ORDER), phase)


def summarize(values_ns: np.ndarray) -> dict[str, float | None]:
    """min, quantiles, max, mean and stdev (sample, ddof=1) in milliseconds."""
    if values_ns.size == 0:
        return {k: None for k in ("min_ms", *(f"p{q}_ms" for q in QUANTILES), "max_ms", "mean_ms", "stdev_ms")}
    ms = values_ns.astype(np.float64) / 1e6
    qs = np.percentile(ms, QUANTILES)
    out: dict[str, float | None] = {"min_ms": float(ms.min())}
    out.update({f"p{q}_ms": float(v) for q, v in zip(QUANTILES, qs)})
    out["max_ms"] = float(ms.max())
    out["mean_ms"] = float(ms.mean())
    out["stdev_ms"] = float(ms.std(ddof=1)) if ms.size > 1 else None
    return out


@dataclass
class Aggregate:
    rows: list[Row]
    errors_by_class: dict[str, dict[str, int]]  # "provider/snippet" -> class -> count
    counts: dict[str, int]                      # ok, error, timeout, skipped, warmup


def aggregate(samples: Iterable[dict[str, Any]]) -> Aggregate:
    values: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    ok: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    by_class: dict[str, Counter[str]] = defaultdict(Counter)
    counts: Counter[str] = Counter()
    for s in samples:
        if s.get("warmup"):
            counts["warmup"] += 1
            continue
        counts[s["outcome"]] += 1
        pair = (s["provider"], s["snippet"])
        if s["outcome"] == "skipped":
            continue
        if s["outcome"] != "ok":
            errors[pair] += 1
            by_class[f"{pair[0]}/{pair[1]}"][s.get("error_class") or "unknown"] += 1
            continue
        ok[pair] += 1
        for phase, ns in sample_phases(s).items():
            values[(*pair, phase)].append(ns)
    rows = []
    pairs = sorted(set(ok) | set(errors))
    for pair in pairs:
        phases = sorted({k[2] for k in values if k[:2] == pair} or {"total"}, key=_phase_key)
        attempts = ok[pair] + errors[pair]
        for phase in phases:
            arr = np.asarray(values.get((*pair, phase), []), dtype=np.int64)
            rows.append(Row(pair[0], pair[1], phase, int(arr.size), errors[pair],
                            errors[pair] / attempts if attempts else 0.0, **summarize(arr)))
    return Aggregate(rows, {k: dict(v) for k, v in sorted(by_class.items())}, dict(counts))
