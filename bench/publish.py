"""``farm publish`` on a year of synthetic nightly history (issue 16): 365 nights × 6 providers ×
14 snippets × 2 scenarios, 10 samples per series per night, committed to a real redis-server.

Figures: the time to summarise one finished run (what its report or beat does once per night, then
cached), the site build from cached summaries (the nightly rebuild), with the newest run reports
and without, and the site's size. Targets: build < 30 s on 2 cores, site < 50 MB.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from farm.config import parse_config
from farm.publish import publish
from farm.series import run_summary
from tests.harness import Farm

PROVIDERS = ("daytona", "e2b", "codesandbox", "modal", "morph", "local")
SNIPPETS = tuple(f"snippet{i:02d}" for i in range(14))
SCENARIOS = ("cold", "resume")
PHASES = ("queue", "create", "ready", "run", "destroy")


def _manifest(run_id: str, night: int, scenario: str, reps: int) -> dict[str, Any]:
    created = datetime(2025, 1, 1, 2, tzinfo=timezone.utc) + timedelta(days=night)
    return {"manifest_version": 1, "run_id": run_id, "label": "schedule:nightly", "created": created.isoformat(),
            "plan": {"providers": list(PROVIDERS), "snippets": list(SNIPPETS), "once": [], "repetitions": reps,
                     "warmup": 0, "seed": night, "total": reps * 84, "measured": reps * 84},
            "provider_settings": {p: {"region": "eu"} for p in PROVIDERS},
            "snippets": {s: {"name": s, "digest": hashlib.sha256(s.encode()).hexdigest()} for s in SNIPPETS},
            "scheduler": {"farm_version": "0.1.0", "python": "3.11.7", "host": "bench", "pid": 1}}


def _load(store: Any, nights: range, reps: int) -> list[str]:
    """The history: each series has its own level and noise; a fifth of them step by +25 % at a
    night of the middle half (planted change points). Seeded: the same nights every time."""
    rng = random.Random(5)
    level = {(p, s, sc): rng.uniform(20, 400) for p in PROVIDERS for s in SNIPPETS for sc in SCENARIOS}
    step = {k: rng.randrange(90, 270) if rng.random() < 0.2 else None for k in level}
    runs = []
    for night in nights:
        noise = random.Random(night)
        for scenario in SCENARIOS:
            run_id = f"{night:03d}-{scenario}"
            store.create_run(run_id, _manifest(run_id, night, scenario, reps), reps * 84, label="schedule:nightly")
            pipe = store.pipeline()
            for p in PROVIDERS:
                for s in SNIPPETS:
                    base = level[(p, s, scenario)] * (1.25 if step[(p, s, scenario)] is not None
                                                      and night >= step[(p, s, scenario)] else 1.0)
                    nightly = base * noise.lognormvariate(0, 0.03)
                    for rep in range(reps):
                        phases = {f"{ph}_ns": int(nightly * 1e6 * noise.lognormvariate(0, 0.1) / (3 if ph != "run" else 1))
                                  for ph in PHASES}
                        phases["total_ns"] = sum(v for k, v in phases.items() if k != "queue_ns")
                        store.append_unchecked(run_id, {
                            "provider": p, "snippet": s, "rep": rep, "warmup": False, "attempt": 1,
                            "worker": "bench:1", "outcome": "ok", "retries": 0, "started_ns": time.time_ns(),
                            "exit_code": 0, "output": "", "scenario": scenario, **phases}, client=pipe)
            pipe.execute()
            store.set_status_fields(run_id, state="finished", done=reps * 84, ok=reps * 84,
                                    finished_ns=time.time_ns())
            runs.append(run_id)
    return runs


def _size(out: Path) -> tuple[float, int]:
    files = [f for f in out.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6, len(files)


def bench_publish(record: Callable[..., None], tmp: Path, nights: int = 365, reps: int = 10) -> None:
    config = parse_config({})
    with Farm(tmp / "publish") as farm:
        store = farm.store
        start = time.perf_counter()
        runs = _load(store, range(nights - 1), reps)
        loaded_s = time.perf_counter() - start
        start = time.perf_counter()
        for run_id in runs:
            run_summary(store, run_id, config.statistics)  # each night's, once: then cached in Redis
        per_run = (time.perf_counter() - start) / len(runs)
        record(f"publish: summary of one run ({84 * reps} samples)", per_run * 1000, "ms",
               note=f"once per run, then cached; {len(runs)} runs loaded in {loaded_s:.0f} s")
        shape = f"{nights} nights × 6 × 14 × 2"

        out = tmp / "site-bare"
        start = time.perf_counter()
        result = publish(store, config, out, reports=0)
        took = time.perf_counter() - start
        size, files = _size(out)
        record(f"publish: build, {shape}, no run reports", took, "s", target="< 30 s", met=took < 30,
               note=f"{result.pages} pages, {result.series} series (phases tti, run, total)")
        record("publish: site size, no run reports", size, "MB", target="< 50 MB", met=size < 50, note=f"{files} files")

        out = tmp / "site"
        start = time.perf_counter()
        publish(store, config, out, reports=30)
        first = time.perf_counter() - start
        for run_id in _load(store, range(nights - 1, nights), reps):  # the next night comes in
            run_summary(store, run_id, config.statistics)
        start = time.perf_counter()
        result = publish(store, config, out, reports=30)
        took = time.perf_counter() - start
        size, files = _size(out)
        record(f"publish: nightly rebuild, {shape}", took, "s", target="< 30 s", met=took < 30,
               note=f"renders the new night's 2 run reports; first build with 30 reports took {first:.0f} s")
        record("publish: site size with 30 run reports", size, "MB", target="< 50 MB", met=size < 50,
               note=f"{files} files")
