"""The report's summary line comparing providers, e.g. "e2b tti p50 1.8× daytona's, 95 % CI 1.6–2.0×".

Per snippet and headline phase (time to interactive), the provider with the lowest p50 is the
reference and every other provider's p50 is a multiple of it: the ratio of medians with its
distribution-free interval from farm/effect.py (Hodges–Lehmann on log durations with the Moses
interval; the ratio of sample medians above effect.HL_CAP values), all lines of one report drawn at
the FCR-adjusted level of one Benjamini–Hochberg family (``compare_alpha``), so the whole summary
stays honest when it holds many lines. Only the headline phases' values are kept, at most
``exact_limit`` per series (a seeded reservoir), so memory stays bounded at any scale.
"""

from __future__ import annotations

from typing import Any

from farm.aggregate import Series, batch_values
from farm.compare import Reservoir
from farm.document import Row
from farm.effect import MIN_SIDE, compare_many
from farm.samples import Batch

HEADLINE_PHASES = ("tti",)


class PhaseSample:
    """A bounded uniform sample of the headline phases' values per provider/snippet/phase (ms)."""

    def __init__(self, cap: int, phases: tuple[str, ...] = HEADLINE_PHASES) -> None:
        self.reservoir = Reservoir(cap)
        self.phases = phases

    def add_batch(self, batch: Batch) -> None:
        if batch.reused is not None:  # a reused sandbox's sample is in no series (farm/aggregate.py)
            batch = batch.where(~batch.reused)
        for (provider, snippet, *_), _count, rows in batch_values(batch):
            if rows is None:
                continue
            for phase, values in batch.phases(rows):
                if phase in self.phases:
                    self._add((provider, snippet, phase), (values / 1e6).tolist())

    def _add(self, key: Series, values_ms: list[float]) -> None:
        """Append while the reservoir has room (the common case: one list extend), sample beyond."""
        res = self.reservoir
        seen = res.seen.get(key, 0)
        room = max(res.cap - seen, 0)
        if room:
            res.values.setdefault(key, []).extend(values_ms[:room])
            res.seen[key] = seen + min(room, len(values_ms))
        for value in values_ms[room:]:
            res.add(key, value)


def headline(sample: PhaseSample, rows: list[Row], alpha: float, threshold: float) -> list[dict[str, Any]]:
    """One entry per (snippet, phase, provider other than the fastest): ``ratio`` = its p50 over the
    reference's, ``ratio_ci`` at ``level``, ``verdict`` read against ``threshold`` as farm compare
    does. Empty when no snippet was measured on two providers."""
    by_series: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.phase in sample.phases and r.n >= MIN_SIDE and r.p50_ms is not None:
            by_series.setdefault((r.subject, r.phase), []).append(r)  # one scenario at a time
    plan = []
    for (snippet, phase), group in sorted(by_series.items()):
        if len(group) < 2:
            continue
        ref = min(group, key=lambda r: (r.p50_ms, r.provider))
        plan += [(ref, r) for r in sorted(group, key=lambda r: (r.p50_ms, r.provider)) if r is not ref]
    arrays = [(sample.reservoir.array((ref.provider, ref.subject, ref.phase)),
               sample.reservoir.array((r.provider, r.subject, r.phase))) for ref, r in plan]
    effects = compare_many(arrays, alpha, threshold, p95=False)
    return [{"snippet": r.snippet, **({"scenario": r.scenario} if r.scenario != "cold" else {}),
             "phase": r.phase, "provider": r.provider, "reference": ref.provider,
             "ratio": e.ratio, "ratio_ci": list(e.ratio_ci) if e.ratio_ci else None, "level": e.level,
             "verdict": e.verdict, "n": e.n_b, "n_reference": e.n_a}
            for (ref, r), e in zip(plan, effects)]
