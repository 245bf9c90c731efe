"""Burst release spread: a burst of N creates on sim across 2 worker processes (N/2 processes each),
released by the Redis barrier (workers/burst.py). The figure is the recorded spread between the
group's first and last start; the issue's target is < 50 ms for N = 50. Reference: the samples'
start skew p95 (each start minus the release instant)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from farm.snippets import Snippet
from tests.harness import Farm

TARGET_MS = 50.0


def bench_burst(record: Callable[..., None], tmp: Path, n: int = 50, bursts: int = 3) -> None:
    config = {"providers": {"sim": {"create": {"dist": "fixed", "ms": 50}}}, "defaults": {"retries": 0}}
    hello = Snippet(name="hello", code="print('hi')\n")
    with Farm(tmp / "burst", config) as farm:
        farm.worker("sim", concurrency=n // 2)
        farm.worker("sim", concurrency=n - n // 2)
        run_id = farm.scheduler.create_run(farm.config, ["sim"], [hello], repetitions=n * bursts, warmup=0,
                                           concurrency=n, scenarios=("burst",), burst=n)
        farm.wait(run_id, timeout=600)
        groups = farm.store.burst_groups(run_id)
        skews = [s["burst"]["skew_ms"] for s in farm.store.samples(run_id) if (s.get("burst") or {}).get("skew_ms") is not None]
    spreads = [g["spread_ns"] / 1e6 for g in groups.values() if "spread_ns" in g]
    worst = max(spreads) if spreads else float("nan")
    record(f"burst: release spread (N={n}, 2 workers, {len(spreads)} bursts)", worst, "ms",
           float(np.percentile(skews, 95)) if skews else None, None, f"< {TARGET_MS:g} ms", worst < TARGET_MS,
           "worst group; ref = start skew p95 ms; spreads " + ", ".join(f"{s:.1f}" for s in spreads))
