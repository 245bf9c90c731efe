"""What the site shows, as plain JSON-ready data: series with change points, the leaderboard, the
methodology; versioned (``SITE_DATA_VERSION``, schema in docs/site.md). Pages render from this
data alone, and the same data is written under ``data/`` for others to build on."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from farm.config import Statistics
from farm.samples import PHASE_ORDER
from farm.series import SCHEDULE_LABEL, Series, as_dict, change_points, collect
from farm.stats import min_n

SITE_DATA_VERSION = 1
# Phases the leaderboard ranks, in this order, where measured (tti first: what a user waits for).
LEADERBOARD_PHASES = ("tti", "create", "run", "total")
PHASE_MEANING = {
    "queue": "task sent → task started on a worker (wall clocks of two processes; clamped at 0)",
    "claim": "claiming a warm sandbox from a pool (warm scenarios)",
    "create": "the provider's create call, until it returns a sandbox",
    "ready": "create returned → the sandbox answers a command (readiness polling)",
    "tti": "time to interactive: create + ready",
    "setup": "installing the snippet's requirements in the sandbox",
    "run": "running the snippet, until its output is back",
    "destroy": "the provider's destroy call",
    "total": "create through destroy: the sandbox's billed life",
}


def slug(*parts: str) -> str:
    """A file name from series parts: only [A-Za-z0-9._-], parts joined by '--'."""
    return "--".join(re.sub(r"[^A-Za-z0-9._-]+", "_", p) for p in parts)


def _created_s(created: str) -> float | None:
    try:
        return datetime.fromisoformat(created).timestamp()
    except (TypeError, ValueError):
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


@dataclass
class SiteData:
    generated: str
    since: str | None
    schedule: str | None
    stale_after_s: float
    last_run: dict[str, Any] | None
    stale: bool
    series: list[dict[str, Any]] = field(default_factory=list)     # with points and change points
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    methodology: dict[str, Any] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)                  # oldest first
    created: list[str] = field(default_factory=list)               # each run's creation time (UTC)

    def index(self) -> dict[str, Any]:
        """``data/index.json``: everything but the series' points (one file each)."""
        return {"site_data_version": SITE_DATA_VERSION, "generated": self.generated, "since": self.since,
                "schedule": self.schedule, "stale_after_s": self.stale_after_s, "stale": self.stale,
                "last_run": self.last_run, "runs": len(self.runs),
                "series": [{k: v for k, v in s.items() if k != "points"} | {"points": len(s["points"])}
                           for s in self.series],
                "leaderboard": self.leaderboard, "methodology": self.methodology}


def select_runs(store: Any, since_s: float | None, schedule: str | None, now: float) -> list[tuple[str, str]]:
    """(run id, created) of finished scheduled runs created within ``since_s`` of ``now`` (of one
    schedule), oldest first."""
    out = []
    wanted = f"{SCHEDULE_LABEL}{schedule}" if schedule else None
    ids = store.runs_since(now - since_s if since_s else 0.0)
    for run_id, st in zip(ids, store.run_statuses(ids)):
        label = st.get("label", "")
        if st.get("state") == "finished" and label.startswith(SCHEDULE_LABEL) and (wanted is None or label == wanted):
            out.append((run_id, _iso(int(st.get("created_ns", 0)) / 1e9)))
    return out


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order by p50; a row shares the rank of the group's leader while its p50 interval overlaps the
    leader's (a tie within the intervals), and rows without an interval are not ranked."""
    ranked = sorted((r for r in rows if r["p50_ci_ms"]), key=lambda r: r["p50_ms"])
    leader: dict[str, Any] | None = None
    position = 0
    for i, row in enumerate(ranked):
        if leader is None or row["p50_ci_ms"][0] > leader["p50_ci_ms"][1]:
            leader, position = row, i + 1
        row["rank"] = position
    for row in ranked:
        row["tie"] = sum(r["rank"] == row["rank"] for r in ranked) > 1
    unranked = sorted((r for r in rows if not r["p50_ci_ms"]), key=lambda r: (r["p50_ms"] is None, r["p50_ms"] or 0))
    for row in unranked:
        row["rank"], row["tie"] = None, False
    return ranked + unranked


def leaderboard(series: list[Series], stats: Statistics, now: float, stale_after_s: float) -> list[dict[str, Any]]:
    """Per scenario × phase × snippet, each provider's latest night, ranked (ties shown as ties)."""
    latest: dict[tuple[str, str, str, str], tuple[Series, Any]] = {}
    for s in series:
        if s.phase not in LEADERBOARD_PHASES or not s.points:
            continue
        key = (s.scenario, s.phase, s.snippet, s.provider)
        point = s.points[-1]
        if key not in latest or point.created > latest[key][1].created:
            latest[key] = (s, point)
    p99_n = min_n(0.99, stats.confidence)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for (scenario, phase, snippet, provider), (s, p) in latest.items():
        created = _created_s(p.created)
        groups.setdefault((scenario, phase, snippet), []).append({
            "provider": provider, "series": slug(s.provider, s.snippet, s.scenario, s.phase, s.digest),
            "run_id": p.run_id, "created": p.created, "n": p.n, "errors": p.errors,
            "success_rate": p.n / (p.n + p.errors) if p.n + p.errors else None,
            "p50_ms": p.p50_ms, "p50_ci_ms": p.p50_ci_ms, "p95_ms": p.p95_ms, "p95_ci_ms": p.p95_ci_ms,
            "p99_ms": p.p99_ms if p.n >= p99_n else None, "p99_needs_n": p99_n if p.n < p99_n else None,
            "stale": created is None or now - created > stale_after_s})
    order = sorted(groups, key=lambda k: (k[0] != "cold", k[0], LEADERBOARD_PHASES.index(k[1]), k[2]))
    return [{"scenario": k[0], "phase": k[1], "snippet": k[2], "rows": rank(groups[k])} for k in order]


def methodology(store: Any, runs: list[str], stats: Statistics) -> dict[str, Any]:
    """From the manifests: per schedule its plan, hosts, SDK versions and facts; the methods."""
    schedules: dict[str, dict[str, Any]] = {}
    for record in store.run_records(runs, summaries=False):
        manifest, facts = record["manifest"] or {}, record["facts"]
        name = manifest.get("label", "").removeprefix(SCHEDULE_LABEL) or "?"
        entry = schedules.setdefault(name, {"runs": 0, "providers": set(), "snippets": set(), "hosts": set(),
                                            "repetitions": set(), "warmup": set(), "facts": {}, "versions": set()})
        plan = manifest.get("plan", {})
        entry["runs"] += 1
        entry["providers"].update(plan.get("providers", []))
        entry["snippets"].update(plan.get("snippets", []))
        entry["repetitions"].add(plan.get("repetitions"))
        entry["warmup"].add(plan.get("warmup"))
        scheduler = manifest.get("scheduler", {})
        entry["hosts"].add(scheduler.get("host") or "?")
        entry["versions"].add(f"farm {scheduler.get('farm_version', '?')}, Python {scheduler.get('python', '?')}")
        for provider, provider_facts in facts.items():
            for k, v in provider_facts.items():
                if k not in ("pid", "sandbox_host_uid"):
                    entry["facts"].setdefault(provider, {}).setdefault(k, set()).add(str(v))
    plain = {name: {k: (sorted(v, key=str) if isinstance(v, set) else v) for k, v in e.items() if k != "facts"}
             | {"facts": {p: {k: sorted(v) for k, v in f.items()} for p, f in e["facts"].items()}}
             for name, e in sorted(schedules.items())}
    return {
        "schedules": plain,
        "phases": {p: PHASE_MEANING[p] for p in PHASE_ORDER if p in PHASE_MEANING},
        "timing": "time.perf_counter_ns around exactly one provider call per phase (workers/measure.py): "
                  "nanosecond resolution; readiness is polled at the interval the provider states",
        "statistics": {
            "points": "one point per scheduled run: its p50 (exact, numpy linear interpolation) with a "
                      "distribution-free order-statistic interval at the configured confidence",
            "confidence": stats.confidence,
            "p99": f"shown only where n ≥ {min_n(0.99, stats.confidence)} (an interval needs that many)",
            "ranking": "by p50; providers whose p50 intervals overlap the group leader's share its rank",
            "change_points": f"E-divisive means, permutation test ({stats.changepoint_permutations} permutations, "
                             f"alpha {stats.changepoint_alpha:g}, at least {stats.changepoint_min_size} runs "
                             "on each side), per series of one settings digest",
        },
    }


def build(store: Any, stats: Statistics, since_s: float | None = None, schedule: str | None = None,
          stale_after_s: float = 36 * 3600, now: float | None = None,
          phases: tuple[str, ...] | None = None) -> SiteData:
    """Everything the site shows, from the farm's Redis; ``phases`` limits the trends and data
    (the leaderboard always has its phases)."""
    now = time.time() if now is None else now
    selected = select_runs(store, since_s, schedule, now)
    runs = [r for r, _ in selected]
    series = list(collect(store, runs, stats, lambda p, s, ph: not phases or ph in phases or
                          ph in LEADERBOARD_PHASES).values())
    out = []
    for s in series:
        if phases and s.phase not in phases:
            continue
        entry = as_dict(s)
        entry["slug"] = slug(s.provider, s.snippet, s.scenario, s.phase, s.digest)
        entry["change_points"] = change_points(s, stats)
        out.append(entry)
    last = {"run_id": selected[-1][0], "created": selected[-1][1]} if selected else None
    last_s = _created_s(last["created"]) if last else None
    return SiteData(generated=_iso(now), since=_iso(now - since_s) if since_s else None, schedule=schedule,
                    stale_after_s=stale_after_s, last_run=last,
                    stale=last_s is None or now - last_s > stale_after_s, series=out,
                    leaderboard=leaderboard(series, stats, now, stale_after_s),
                    methodology=methodology(store, runs, stats), runs=runs, created=[c for _, c in selected])

