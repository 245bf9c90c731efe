"""`farm ramp`: the plan run at rising concurrency levels, and where a provider starts to degrade.

Each level L is one ordinary run (label ``ramp <id> L=<L>``) whose dispatch window is L: exactly L
samples of a provider are in flight at once, if the workers offer L slots. They may offer fewer
(the pool sizes in the workers' heartbeats): the level is then *capped* at what they offer, and
the report says so. What was really achieved is measured, not assumed: the peak number of samples
whose [task start, task start + total] intervals overlap (``peak_in_flight``). A peak below
min(level, offered) means something else held concurrency down — a client-side cap, such as an
SDK's connection pool or a sidecar's limit. A provider may declare its client's pools as the fact
``client_pool`` = {"per_process": n, "shared": m, "what": ...}: a prefork worker process runs one
sample at a time, so a per-process pool of n ≥ 1 never binds; a pool shared by every worker process
on a host (a sidecar) of m < level does, and the level says so before the peak shows it.

Per provider and level: tti p50/p95/p99 with distribution-free intervals (farm/stats.py),
throughput (successful samples per second of the level's wall time, first task start to last
end), the error rate with its Wilson interval, and the error classes.

The knee, precisely. The *level-1 band* is
    p95 ≤ B_p95 = (upper end of level 1's p95 interval, or level 1's largest tti when n is too small
                   for an interval) × (1 + tolerance)      [tolerance 0.25 unless given]
    error rate ≤ B_err = upper end of level 1's Wilson interval for its error rate (confidence 0.95)
A level *leaves the band* when its p95 point estimate exceeds B_p95 or its error rate exceeds
B_err. ``degraded_at`` is the first level (in ascending order) that leaves the band; the **knee**
is the level just below it: the highest level that still behaves like level 1. No level leaving
the band means no knee within the levels tried (``knee`` None, said so); level 1 itself is the
reference and cannot leave it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

DEFAULT_TOLERANCE = 0.25
ERROR_CONFIDENCE = 0.95


@dataclass
class Level:
    """One provider at one concurrency level."""

    level: int
    run_id: str
    offered: int | None                 # worker slots serving the provider (None: unknown)
    n: int                              # samples measured (ok + failed; skipped and warm-ups not)
    ok: int
    errors: int
    error_rate: float | None
    error_rate_ci: list[float] | None
    errors_by_class: dict[str, int]
    tti: dict[str, Any]                 # p50_ms, p95_ms, p99_ms, their *_ci_ms, n
    throughput_per_s: float | None
    peak_in_flight: int
    capped: list[str] = field(default_factory=list)   # why fewer than ``level`` ran at once
    in_band: bool | None = None                        # None for level 1 (the reference)


@dataclass
class ProviderRamp:
    provider: str
    levels: list[Level]
    band: dict[str, float | None]
    knee: int | None
    degraded_at: int | None
    verdict: str


@dataclass
class RampResult:
    ramp_id: str
    levels: list[int]
    per_level: int
    tolerance: float
    providers: list[ProviderRamp]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wilson(errors: int, n: int, confidence: float = ERROR_CONFIDENCE) -> list[float] | None:
    """Wilson score interval of a proportion (None without samples)."""
    if n <= 0:
        return None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def peak_overlap(intervals: Iterable[tuple[int, int]]) -> int:
    """The most intervals [start, end) open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def measure_level(level: int, run_id: str, provider: str, samples: Sequence[Mapping[str, Any]],
                  offered: int | None, confidence: float, client_pool: Any = None) -> Level:
    """One provider's statistics at one level, from that level's run's samples."""
    import numpy as np

    from farm.aggregate import exact_stats
    from farm.samples import sample_phases

    mine = [s for s in samples if s["provider"] == provider and not s.get("warmup")
            and s.get("outcome") != "skipped" and not s.get("reused")]
    ok = [s for s in mine if s.get("outcome") == "ok"]
    failed = [s for s in mine if s.get("outcome") != "ok"]
    tti_ns = np.asarray([p["tti"] for s in ok if "tti" in (p := sample_phases(s))], dtype=np.int64)
    stats, _ = exact_stats(tti_ns, confidence)
    tti = {"n": int(tti_ns.size), **{k: stats.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "p50_ci_ms",
                                                              "p95_ci_ms", "p99_ci_ms", "max_ms")}}
    spans = [(s["started_ns"], s["started_ns"] + s["total_ns"]) for s in mine
             if s.get("started_ns") is not None and s.get("total_ns") is not None]
    wall_s = (max(e for _, e in spans) - min(b for b, _ in spans)) / 1e9 if spans else 0.0
    peak = peak_overlap(spans)
    capped = []
    shared = client_pool.get("shared") if isinstance(client_pool, dict) else None
    if isinstance(shared, int) and shared < level:
        capped.append(f"{provider}'s client shares a pool of {shared} connection(s) across the host's worker "
                      f"processes ({client_pool.get('what', 'declared')}): fewer than level {level}")
    if offered is not None and offered < level:
        capped.append(f"the workers offer {offered} slot(s) for {provider}: level {level} ran at most {offered} at once")
    expected = min(level, offered if offered is not None else level, len(mine))
    if len(mine) >= expected and peak < expected:
        why = f"{provider}'s client pools ({client_pool.get('what', client_pool)})" if isinstance(client_pool, dict) \
            else "a client-side limit (an SDK connection pool, a sidecar)"
        capped.append(f"only {peak} sample(s) ran at once although {expected} could: {why} held them down, "
                      "or the worker pools started some late")
    return Level(level=level, run_id=run_id, offered=offered, n=len(mine), ok=len(ok), errors=len(failed),
                 error_rate=len(failed) / len(mine) if mine else None,
                 error_rate_ci=wilson(len(failed), len(mine)),
                 errors_by_class=dict(Counter(s.get("error_class") or "unknown" for s in failed)),
                 tti=tti, throughput_per_s=len(ok) / wall_s if wall_s > 0 else None,
                 peak_in_flight=peak, capped=capped)


def find_knee(provider: str, levels: list[Level], tolerance: float = DEFAULT_TOLERANCE) -> ProviderRamp:
    """Mark each level in or out of the level-1 band; the knee is the last level before the first
    that leaves it (see the module doc for the exact band)."""
    levels = sorted(levels, key=lambda lv: lv.level)
    if not levels:
        return ProviderRamp(provider, [], {}, None, None, "no levels measured")
    ref = levels[0]
    p95_ci = ref.tti.get("p95_ci_ms")
    top = p95_ci[1] if p95_ci else ref.tti.get("max_ms")
    band = {"p95_ms": top * (1 + tolerance) if top is not None else None,
            "error_rate": ref.error_rate_ci[1] if ref.error_rate_ci else None,
            "reference_level": ref.level}
    degraded_at = None
    for lv in levels[1:]:
        p95 = lv.tti.get("p95_ms")
        slow = band["p95_ms"] is not None and (p95 is None or p95 > band["p95_ms"])
        failing = band["error_rate"] is not None and lv.error_rate is not None and lv.error_rate > band["error_rate"]
        lv.in_band = not (slow or failing)
        if not lv.in_band and degraded_at is None:
            degraded_at = lv.level
    if ref.level != 1:
        verdict = f"the lowest level tried is {ref.level}, not 1: the band is that level's"
    else:
        verdict = ""
    if degraded_at is None:
        knee = None
        verdict = (verdict + "; " if verdict else "") + \
            f"no level up to {levels[-1].level} left the level-{ref.level} band: no knee within the levels tried"
    else:
        knee = max(lv.level for lv in levels if lv.level < degraded_at)
        verdict = (verdict + "; " if verdict else "") + \
            f"knee at {knee}: level {degraded_at} is the first to leave the level-{ref.level} band"
    return ProviderRamp(provider, levels, band, knee, degraded_at, verdict)
