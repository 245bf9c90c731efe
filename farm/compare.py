"""Run-to-run comparison, history across runs, and a rolling baseline for scheduled runs.

Every row's verdict comes from farm.effect: the ratio of medians B/A with an interval, read against
``compare_threshold``, with the false-discovery rate controlled (Benjamini–Hochberg at
``compare_alpha``) across the rows of one comparison. The estimate sees at most ``exact_limit``
values per series: a seeded uniform reservoir sample when a series is larger, so memory stays
bounded at any scale.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from farm.aggregate import Aggregate, Series, aggregate_run, batch_values
from farm import likeness
from farm.config import Statistics
from farm.drift import drift_warnings
from farm.document import Row
from farm.effect import VERDICTS, compare_many, compare_one, ratio_text
from farm.samples import SEP, Batch, phase_key
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO, split_subject, subject

CHANGE_QUANTILES = (50, 95, 99)
__all__ = ["VERDICTS", "compare_runs", "compare_data", "baseline_flags", "history", "plan_key"]


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
        if batch.reused is not None:  # a reused sandbox's sample is in no series (farm/aggregate.py)
            batch = batch.where(~batch.reused)
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
        """Rows by series: (provider, subject, phase), the subject naming snippet and scenario."""
        return {(r.provider, r.subject, r.phase): r for r in self.agg.rows}


def _entry_key(key: Series) -> dict[str, str]:
    """A series as the provider, snippet, scenario and phase fields of an output entry."""
    snippet, scenario = split_subject(key[1])
    return {"provider": key[0], "snippet": snippet, "scenario": scenario, "phase": key[2]}


def load_run(store: Any, run_id: str, stats: Statistics, only: tuple[str, str] | None = None) -> RunData:
    """Aggregate a run and keep a bounded sample of it for tests; ``only`` = (provider, subject)."""
    prefix = f"{only[0]}{SEP}{only[1]}{SEP}" if only else ""

    def batches() -> Iterable[Batch]:
        for batch in store.iter_batches(run_id):
            yield batch.where(np.array([g.startswith(prefix) for g in batch.groups], dtype=bool)) \
                if prefix else batch

    agg = aggregate_run(store, run_id, stats, batches)
    return RunData(run_id, agg, Reservoir(stats.exact_limit).feed_batches(batches()))


SETTINGS_DIFFER = "settings differ"


def _by_series(data: RunData, across_scenarios: bool) -> dict[Series, tuple[Series, Row]]:
    """The run's rows by the series they are matched on (the snippet alone, when comparing across
    scenarios), each with its own key for the sample values."""
    out = {}
    for key, row in data.rows().items():
        match = (key[0], split_subject(key[1])[0], key[2]) if across_scenarios else key
        out[match] = (key, row)
    return out


def compare_data(a: RunData, b: RunData, stats: Statistics, incomparable: frozenset[str] = frozenset(),
                 across_scenarios: bool = False) -> list[dict[str, Any]]:
    """One entry per series present in both runs: p50/p95/p99 of each, the effect and its verdict.

    Rows of providers in ``incomparable`` (their settings or facts differ) get the verdict
    "settings differ" and stay out of the FDR family: a changed setting, not noise, explains them.
    ``across_scenarios`` matches rows by provider, snippet and phase whatever their scenario (the
    same plan measured cold and as a burst); each entry names both scenarios."""
    rows_a, rows_b = _by_series(a, across_scenarios), _by_series(b, across_scenarios)
    keys = sorted(set(rows_a) & set(rows_b), key=lambda k: (k[0], k[1], phase_key(k[2])))
    judged = [k for k in keys if k[0] not in incomparable]

    def arrays(k: Series) -> tuple[np.ndarray, np.ndarray]:
        return a.sample.array(rows_a[k][0]), b.sample.array(rows_b[k][0])

    effects = dict(zip(judged, compare_many([arrays(k) for k in judged], stats.compare_alpha, stats.compare_threshold)))
    out = []
    for key in keys:
        (key_a, ra), (key_b, rb) = rows_a[key], rows_b[key]
        if key in effects:
            effect = effects[key].as_dict()
        else:
            effect = {**compare_one(*arrays(key), stats.compare_alpha,
                                    stats.compare_threshold).as_dict(), "verdict": SETTINGS_DIFFER, "settle_n": None}
        entry: dict[str, Any] = {**_entry_key(key_a), **effect, "n_a": ra.n, "n_b": rb.n}
        if across_scenarios:
            entry["scenario"] = f"{split_subject(key_a[1])[1]} vs {split_subject(key_b[1])[1]}"
        for q in CHANGE_QUANTILES:
            entry[f"p{q}_a_ms"], entry[f"p{q}_b_ms"] = getattr(ra, f"p{q}_ms"), getattr(rb, f"p{q}_ms")
        # percentiles of either run without an interval of their own: no change in them means anything
        entry["insufficient"] = [f"p{q}_{side}" for q in CHANGE_QUANTILES if q != 50
                                 for side, row in (("a", ra), ("b", rb)) if row.n and getattr(row, f"p{q}_ci_ms") is None]
        out.append(entry)
    return out


def compare_runs(store: Any, run_a: str, run_b: str, stats: Statistics, across_scenarios: bool = False
                 ) -> dict[str, Any]:
    """``farm compare RUN_A RUN_B``: B measured against A, with what differs between their settings
    (``across_scenarios``: rows matched whatever their scenario, see ``compare_data``)."""
    desc_a, desc_b = likeness.run_description(store, run_a), likeness.run_description(store, run_b)
    diffs = likeness.differences(desc_a, desc_b)
    incomparable = frozenset(p for p in set(desc_a["plan"]["providers"]) | set(desc_b["plan"]["providers"])
                             if any(d.startswith((f"provider_settings.{p}", f"provider_facts.{p}")) for d in diffs))
    series = compare_data(load_run(store, run_a, stats), load_run(store, run_b, stats), stats, incomparable,
                          across_scenarios)
    return {"run_a": run_a, "run_b": run_b, "differences": diffs, "incomparable": sorted(incomparable),
            "drift": drift_warnings(store, (run_a, run_b), stats), "series": series}


# --- history and rolling baseline ------------------------------------------------------------
def plan_key(manifest: dict[str, Any], facts: dict[str, dict[str, Any]] | None = None) -> str:
    """Runs with equal keys measured the same thing under the same settings (farm.likeness)."""
    return likeness.settings_digest(manifest, facts)


def run_key(store: Any, run_id: str) -> str:
    return plan_key(store.manifest(run_id), store.provider_facts(run_id))


def previous_runs(store: Any, run_id: str, count: int, scan: int = 500) -> list[str]:
    """The ``count`` most recent finished runs created before ``run_id`` with the same plan and settings."""
    me = store.status(run_id)
    key = run_key(store, run_id)
    found = []
    for other in store.recent_runs(scan):  # newest first
        if other == run_id:
            continue
        try:
            st = store.status(other)
            if st.state != "finished" or st.created_ns >= me.created_ns:
                continue
            if run_key(store, other) == key:
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
    keys = sorted(set(current.sample.values) & set(pooled.values))
    effects = compare_many([(pooled.array(k), current.sample.array(k)) for k in keys],
                           stats.compare_alpha, stats.compare_threshold)
    for key, effect in zip(keys, effects):
        changes.append({**_entry_key(key), **effect.as_dict()})
        if effect.verdict in ("faster", "slower"):
            flags.append(f"{'/'.join(key)}: {effect.verdict} than the baseline of {len(runs)} run(s) "
                         f"(p50 ratio {ratio_text(effect)}, {effect.level * 100:.3g} % CI, BH FDR {stats.compare_alpha:g})")
    return {"runs": runs, "flags": flags, "changes": changes}


def history(store: Any, provider: str, snippet: str, phase: str, stats: Statistics, limit: int = 20,
            scenario: str = DEFAULT_SCENARIO) -> list[dict[str, Any]]:
    """The series' p50/p95/p99 (with intervals) in each recent run that measured it under
    ``scenario``, oldest first: a resume series never mixes with a cold one."""
    out: list[dict[str, Any]] = []
    series = subject(snippet, scenario)
    for run_id in reversed(store.recent_runs(limit)):
        try:
            manifest = store.manifest(run_id)
            st = store.status(run_id)
        except KeyError:
            continue
        plan = manifest["plan"]
        if provider not in plan["providers"] or snippet not in plan["snippets"] \
                or scenario not in (plan.get("scenarios") or [DEFAULT_SCENARIO]):
            continue
        entry = {"run_id": run_id, "created": manifest.get("created", ""), "label": st.label,
                 "state": st.state, "pruned": bool(st.pruned_ns)}
        if st.pruned_ns:  # its samples are gone: the summary farm/prune.py kept, and no test against it
            kept = (store.run_summary(run_id) or {}).get("series", {}).get(f"{provider}|{series}|{phase}") or {}
            entry.update(n=kept.get("n", 0), errors=kept.get("errors", 0))
            for q in CHANGE_QUANTILES:
                entry[f"p{q}_ms"], entry[f"p{q}_ci_ms"] = kept.get(f"p{q}_ms"), kept.get(f"p{q}_ci_ms")
            entry["_sample"] = np.empty(0)
        else:
            data = load_run(store, run_id, stats, only=(provider, series))
            row = data.rows().get((provider, series, phase))
            entry.update(n=row.n if row else 0, errors=row.errors if row else 0)
            for q in CHANGE_QUANTILES:
                entry[f"p{q}_ms"] = getattr(row, f"p{q}_ms") if row else None
                entry[f"p{q}_ci_ms"] = getattr(row, f"p{q}_ci_ms") if row else None
            entry["_sample"] = data.sample.array((provider, series, phase))
        out.append(entry)
    # Each run against the previous one that has data: the same test `farm compare` uses.
    prev = None
    for entry in out:
        sample = entry.pop("_sample")
        entry["vs_previous"] = compare_one(prev, sample, stats.compare_alpha, stats.compare_threshold).verdict \
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
