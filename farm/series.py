"""Nightly series: scheduled runs, one point per run, per provider × snippet × scenario × phase ×
settings digest, and their change points (farm/changepoints.py).

Only finished scheduled runs (label ``schedule:<name>``) make series: a manual run measures when
someone chose to, not nightly. Two runs are points of the same series only when they measured the
same snippet code on the same provider under the same provider settings, SDK facts and host
(``series_digest``, built on farm/likeness.py): a settings change starts a new series instead of
looking like a change point. Each row's scenario (farm/scenarios.py) is part of its series: a run
with ``cold`` and ``resume`` is a point of two series; a run from before scenarios is ``cold``.

Each finished run's per-series numbers are computed once and cached in Redis (``{r}:summary``), so
a series over a year of nights reads 365 small documents instead of re-aggregating every sample.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from farm import likeness
from farm.config import Statistics
from farm.samples import PHASE_ORDER, phase_key
from farm.scenarios import split_subject

# Summaries are keyed provider|subject|phase (subject = snippet[@scenario]); version-1 summaries,
# written before scenarios, hold cold rows only, whose subject is the snippet: the same keys.
SUMMARY_VERSION = 1
SCHEDULE_LABEL = "schedule:"
METHOD = "E-divisive means, permutation test"


def _provider_blob(described: Mapping[str, Any], provider: str) -> str:
    return json.dumps({"provider_settings": described["provider_settings"].get(provider, {}),
                       "provider_facts": described["provider_facts"].get(provider, {}),
                       "host": described["host"]}, sort_keys=True, default=str)


def _code_digest(manifest: Mapping[str, Any], snippet: str) -> str:
    code = (manifest.get("snippets") or {}).get(snippet) or {}
    return code.get("digest") or hashlib.sha256(code.get("code", "").encode()).hexdigest()


def _digest(provider_blob: str, code: str) -> str:
    return hashlib.sha256(f"{provider_blob}|{code}".encode()).hexdigest()[:12]


def series_digest(manifest: Mapping[str, Any], facts: Mapping[str, Mapping[str, Any]] | None,
                  provider: str, snippet: str) -> str:
    """Equal for runs that measured ``provider``/``snippet`` the same way: the provider's settings
    and stable facts (SDK version, region, confinement), the host, and the snippet's code."""
    return _digest(_provider_blob(likeness.describe(manifest, facts), provider), _code_digest(manifest, snippet))


@dataclass
class Point:
    """One run's numbers in a series (milliseconds; None where nothing was measured)."""

    run_id: str
    created: str
    n: int
    errors: int
    p50_ms: float | None
    p50_ci_ms: list[float] | None
    p95_ms: float | None
    p95_ci_ms: list[float] | None
    p99_ms: float | None


@dataclass
class Series:
    provider: str
    snippet: str
    scenario: str
    phase: str
    digest: str
    points: list[Point] = field(default_factory=list)

    @property
    def id(self) -> str:
        return "|".join((self.provider, self.snippet, self.scenario, self.phase, self.digest))

    def name(self) -> str:
        return f"{self.provider}/{self.snippet}/{self.phase} ({self.scenario})"


def run_summary(store: Any, run_id: str, stats: Statistics) -> dict[str, Any]:
    """``provider|subject|phase`` -> n, errors, p50/p95/p99 (with intervals) of one run; cached in
    Redis once the run has finished (its samples no longer change)."""
    cached = store.run_summary(run_id)
    if cached and cached.get("v") == SUMMARY_VERSION:
        return cached["series"]
    from farm.aggregate import aggregate_run

    rows = {f"{r.provider}|{r.subject}|{r.phase}": {
        "n": r.n, "errors": r.errors, "p50_ms": r.p50_ms, "p50_ci_ms": r.p50_ci_ms, "p95_ms": r.p95_ms,
        "p95_ci_ms": r.p95_ci_ms, "p99_ms": r.p99_ms} for r in aggregate_run(store, run_id, stats).rows}
    if store.status(run_id).state == "finished":
        store.save_run_summary(run_id, {"v": SUMMARY_VERSION, "series": rows})
    return rows


def scheduled_runs(store: Any, scan: int, until: str | None = None) -> list[str]:
    """Finished scheduled runs among the ``scan`` most recent runs, oldest first; with ``until``,
    only those created no later than that run (it included)."""
    limit_ns = store.status(until).created_ns if until else None
    ids = list(reversed(store.recent_runs(scan)))
    out = []
    for run_id, st in zip(ids, store.run_statuses(ids)):
        if st.get("state") == "finished" and st.get("label", "").startswith(SCHEDULE_LABEL) and \
                (limit_ns is None or int(st.get("created_ns", 0)) <= limit_ns):
            out.append(run_id)
    return out


Wanted = Callable[[str, str, str], bool]  # (provider, subject, phase) -> keep?


# Finished runs never change: what collect read of one is kept for the process's next collect
# (a report, then beat's check, then publish), up to this many runs.
RunRows = tuple[str, list[tuple[str, str, str, str, dict[str, Any]]]]
_RUN_CACHE: dict[tuple[str, str], RunRows] = {}
_RUN_CACHE_SIZE = 4000


def _server(store: Any) -> str:
    kw = store.r.connection_pool.connection_kwargs
    return f"{kw.get('path') or kw.get('host')}:{kw.get('port')}/{kw.get('db')}"


def _run_rows(store: Any, run_id: str, stats: Statistics, record: dict[str, Any] | None = None) -> RunRows:
    """(created, [(provider, subject, phase, digest, row)]) of one run; subject = snippet[@scenario].
    ``record`` is what ``store.run_records`` read of it (one round trip for many runs)."""
    key = (_server(store), run_id)
    if key in _RUN_CACHE:
        return _RUN_CACHE[key]
    if record is None:
        record = store.run_records([run_id])[0]
    if record["manifest"] is None or record["status"] is None:
        raise KeyError(run_id)
    manifest, facts, cached = record["manifest"], record["facts"], record["summary"]
    summary = cached["series"] if cached and cached.get("v") == SUMMARY_VERSION else run_summary(store, run_id, stats)
    described = likeness.describe(manifest, facts)
    blobs: dict[str, str] = {}
    digests: dict[tuple[str, str], str] = {}
    rows = []
    for name, row in summary.items():
        provider, subject, phase = name.split("|", 2)
        if phase not in PHASE_ORDER:
            continue
        snippet = split_subject(subject)[0]
        if (provider, snippet) not in digests:
            if provider not in blobs:  # one settings blob per provider, one hash per snippet
                blobs[provider] = _provider_blob(described, provider)
            digests[(provider, snippet)] = _digest(blobs[provider], _code_digest(manifest, snippet))
        rows.append((provider, subject, phase, digests[(provider, snippet)], row))
    entry = (manifest.get("created", ""), rows)
    if record["status"].get("state") == "finished":
        if len(_RUN_CACHE) >= _RUN_CACHE_SIZE:
            _RUN_CACHE.pop(next(iter(_RUN_CACHE)))
        _RUN_CACHE[key] = entry
    return entry


def collect(store: Any, runs: Iterable[str], stats: Statistics, wanted: Wanted | None = None
            ) -> dict[str, Series]:
    """The series the runs form (each run one point per series it measured), by series id."""
    out: dict[str, Series] = {}
    runs = list(runs)
    server = _server(store)
    missing = [r for r in runs if (server, r) not in _RUN_CACHE]
    records = dict(zip(missing, store.run_records(missing))) if missing else {}
    for run_id in runs:
        try:
            created, rows = _run_rows(store, run_id, stats, records.get(run_id))
        except KeyError:
            continue
        for provider, subject, phase, digest, row in rows:
            if wanted and not wanted(provider, subject, phase):
                continue
            snippet, scenario = split_subject(subject)
            s = Series(provider, snippet, scenario, phase, digest)
            s = out.setdefault(s.id, s)
            s.points.append(Point(run_id=run_id, created=created, **row))
    return dict(sorted(out.items(), key=lambda kv: (kv[1].provider, kv[1].snippet, kv[1].scenario,
                                                    phase_key(kv[1].phase), kv[1].digest)))


def _seed(series_id: str) -> int:
    return int.from_bytes(hashlib.sha256(series_id.encode()).digest()[:8], "big")


def change_points(series: Series, stats: Statistics) -> list[dict[str, Any]]:
    """The series' change points in its p50s, each with the run it starts at and its size."""
    from farm.changepoints import detect

    points = [p for p in series.points if p.p50_ms is not None]
    found = detect([p.p50_ms for p in points], alpha=stats.changepoint_alpha,
                   permutations=stats.changepoint_permutations, min_size=stats.changepoint_min_size,
                   seed=_seed(series.id))
    return [{"series": series.id, "provider": series.provider, "snippet": series.snippet,
             "scenario": series.scenario, "phase": series.phase, "digest": series.digest,
             "run_id": points[cp.index].run_id, "created": points[cp.index].created,
             "index": cp.index, "runs": len(points), "before_ms": cp.before, "after_ms": cp.after,
             "change": cp.change, "p_value": cp.p_value} for cp in found]


def run_change_points(store: Any, run_id: str, stats: Statistics) -> list[dict[str, Any]] | None:
    """Change points of the series a scheduled run belongs to, up to that run; None for a run that
    is not scheduled (or not finished): it is no point of a nightly series."""
    st = store.status(run_id)
    if not st.label.startswith(SCHEDULE_LABEL) or st.state != "finished":
        return None
    mine = set(run_summary(store, run_id, stats))
    series = collect(store, scheduled_runs(store, stats.changepoint_runs, until=run_id), stats,
                     lambda p, s, ph: f"{p}|{s}|{ph}" in mine)
    return [cp for s in series.values() if any(p.run_id == run_id for p in s.points)
            for cp in change_points(s, stats)]


def history_change_points(store: Any, stats: Statistics, provider: str, snippet: str, phase: str,
                          scenario: str | None = None) -> tuple[list[Series], list[dict[str, Any]]]:
    """The scheduled series of one provider/snippet/phase (of ``scenario``, or every one; every
    digest) and their change points: what ``farm history`` marks."""
    def wanted(p: str, subject: str, ph: str) -> bool:
        snip, scen = split_subject(subject)
        return (p, snip, ph) == (provider, snippet, phase) and scenario in (None, scen)

    series = collect(store, scheduled_runs(store, stats.changepoint_runs), stats, wanted)
    return list(series.values()), [cp for s in series.values() for cp in change_points(s, stats)]


def as_dict(series: Series) -> dict[str, Any]:
    return {"id": series.id, "provider": series.provider, "snippet": series.snippet,
            "scenario": series.scenario, "phase": series.phase, "digest": series.digest,
            "points": [dict(vars(p)) for p in series.points]}  # dataclasses.asdict deep-copies: 10× slower
