"""Runs a ramp: one run per concurrency level, one after the other, then the knee (farm/ramp.py).

With the embedded farm the local workers are started with as many processes per provider as the
highest level asks (``max_processes`` caps it); in distributed mode the live workers' pool sizes
(their heartbeats) are what is offered. Either way a level above what is offered is run capped,
and the result says so. The ramp's result is kept in Redis (``farm:ramp:<id>``) as JSON.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from farm.celery_app import make_app
from farm.config import FarmConfig
from farm.embedded import EmbeddedFarm
from farm.manifest import new_run_id
from farm.ramp import DEFAULT_TOLERANCE, RampResult, find_knee, measure_level
from farm.runner import connect, follow, offered_slots, redis_edges
from farm.scheduler import Scheduler
from farm.snippets import Snippet
from farm.store import Store

MAX_LOCAL_PROCESSES = 64


@dataclass
class RampOptions:
    providers: Sequence[str]
    snippets: Sequence[Snippet]
    levels: Sequence[int]
    per_level: int = 20
    tolerance: float = DEFAULT_TOLERANCE
    seed: int | None = None
    config_path: str | None = None
    max_processes: int = MAX_LOCAL_PROCESSES
    progress_every_s: float = 0.5


def run_ramp(config: FarmConfig, options: RampOptions,
             on_level: Callable[[int, str], None] | None = None) -> RampResult:
    """Run every level to completion against the configured (or embedded) farm; find the knees."""
    with connect(config, options.config_path) as (store, url, embedded):
        app = make_app(url)
        try:
            return ramp_levels(store, Scheduler(store, app), config, options, embedded, on_level)
        finally:
            app.close()


def ramp_levels(store: Store, scheduler: Scheduler, config: FarmConfig, options: RampOptions,
                embedded: EmbeddedFarm | None = None,
                on_level: Callable[[int, str], None] | None = None) -> RampResult:
    """The ramp on a connected farm: one run per level (window = level), each followed to its end."""
    ramp_id = time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)
    levels = sorted(set(options.levels))
    notes: list[str] = []
    if embedded is not None:
        processes = min(levels[-1], options.max_processes)
        if processes < levels[-1]:
            notes.append(f"local workers were started with {processes} process(es) per provider "
                         f"(--max-processes): levels above it are capped")
        embedded.start_workers(store, options.providers, processes)
    runs: dict[int, tuple[str, dict[str, int | None]]] = {}
    for level in levels:
        offered = {p: offered_slots(store, p) for p in options.providers}
        run_id = new_run_id()
        with redis_edges(store, run_id):
            scheduler.create_run(config, options.providers, options.snippets,
                                 repetitions=options.per_level, warmup=0, concurrency=level,
                                 seed=options.seed, label=f"ramp {ramp_id} L={level}",
                                 window=level, run_id=run_id)
        if on_level:
            on_level(level, run_id)
        with redis_edges(store, run_id):
            follow(store, scheduler, run_id, None, options.progress_every_s, embedded)
        runs[level] = (run_id, offered)
    result = _result(store, config, ramp_id, levels, options, runs, notes)
    store.save_ramp(ramp_id, result.to_json())
    return result


def _result(store: Store, config: FarmConfig, ramp_id: str, levels: list[int], options: RampOptions,
            runs: dict[int, tuple[str, dict[str, int | None]]], notes: list[str]) -> RampResult:
    confidence = config.statistics.confidence
    providers = []
    for provider in options.providers:
        per_level = []
        for level in levels:
            run_id, offered = runs[level]
            facts = store.provider_facts(run_id).get(provider) or {}
            per_level.append(measure_level(level, run_id, provider, store.samples(run_id), offered[provider],
                                           confidence, client_pool=facts.get("client_pool")))
        providers.append(find_knee(provider, per_level, options.tolerance))
    return RampResult(ramp_id=ramp_id, levels=levels, per_level=options.per_level, tolerance=options.tolerance,
                      providers=providers, notes=notes)


def ramp_table(result: RampResult | dict[str, Any]) -> str:
    """The ramp as text: one line per provider and level, then each provider's verdict."""
    data = result.to_json() if isinstance(result, RampResult) else result

    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    def ci(v: Any) -> str:
        return "" if not v else f" [{v[0]:.1f}, {v[1]:.1f}]"

    lines = [f"ramp {data['ramp_id']}: levels {','.join(map(str, data['levels']))}, "
             f"{data['per_level']} samples per snippet per level, band tolerance {data['tolerance']:.0%}"]
    lines += [f"note: {n}" for n in data["notes"]]
    for p in data["providers"]:
        lines.append(f"{p['provider']}:  level  offered  peak  tti p50 / p95 [CI] / p99 ms            "
                     "ok/s   errors")
        for lv in p["levels"]:
            t = lv["tti"]
            mark = " <- knee" if lv["level"] == p["knee"] else " <- degraded" if lv["level"] == p["degraded_at"] else ""
            errors = f"{lv['errors']}/{lv['n']}" + (f" ({', '.join(f'{k}={v}' for k, v in lv['errors_by_class'].items())})"
                                                     if lv["errors_by_class"] else "")
            rate = "-" if lv["throughput_per_s"] is None else f"{lv['throughput_per_s']:.2f}"
            lines.append(f"  {lv['level']:>11}  {lv['offered'] if lv['offered'] is not None else '?':>7}  "
                         f"{lv['peak_in_flight']:>4}  {ms(t['p50_ms'])} / {ms(t['p95_ms'])}{ci(t['p95_ci_ms'])} / "
                         f"{ms(t['p99_ms'])}  {rate:>6}  {errors}{mark}")
            lines += [f"      capped: {c}" for c in lv["capped"]]
        lines.append(f"  {p['verdict']}")
    return "\n".join(lines)
