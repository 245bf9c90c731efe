"""`farm run` and `farm watch` never wait forever: a run that commits nothing for a bound is
reported stalled, with the reason, and the follower exits 6. The run itself is kept.

The bound is ``defaults.stall_after_s``, or by default the longest one sample may take (the task's
hard limit) plus its lease, the lost-message delay and a minute: a run that legitimately runs long
samples is never called stalled. Reasons, in the order they are checked: Redis is full (writes
refused: maxmemory under noeviction), no live worker for a provider with samples left, or simply
no sample committed within the bound.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from farm.celery_app import LEASE_MS, queue_name
from farm.errors import Stalled

__all__ = ["Stalled", "StallWatch", "stall_bound_s"]

MARGIN_S = 60.0


def stall_bound_s(configured: float | None, manifest: Any) -> float:
    if configured:
        return configured
    return manifest.task_hard_limit_s + LEASE_MS / 1000 + manifest.lost_after_s + MARGIN_S


class StallWatch:
    """Fed every status the follower reads; raises Stalled once the run has made no progress
    (no sample committed) for ``bound_s``. Says once when Redis is full, as soon as it is seen."""

    def __init__(self, store: Any, run_id: str, providers: Sequence[str], bound_s: float,
                 local_workers: bool) -> None:
        self.store, self.run_id, self.providers = store, run_id, list(providers)
        self.bound_s, self.local_workers = bound_s, local_workers
        self.last_done: int | None = None
        self.since = time.monotonic()
        self.full_said = False

    def observe(self, done: int, full: bool) -> str | None:
        """Returns a notice to print (Redis full, first seen), raises Stalled past the bound."""
        now = time.monotonic()
        if done != self.last_done:
            self.last_done, self.since = done, now
        notice = None
        if full and not self.full_said:
            notice = (f"Redis is full (maxmemory reached, noeviction): workers hold their samples until it has "
                      f"room; free memory or raise maxmemory (stalled after {self.bound_s:.0f} s without progress)")
        self.full_said = full
        if now - self.since >= self.bound_s:
            raise Stalled(f"stalled: {self.reason(full)}; no sample committed for {now - self.since:.0f} s. "
                          f"Run {self.run_id} is kept: `farm watch {self.run_id}` to follow it again")
        return notice

    def reason(self, full: bool) -> str:
        if full:
            return "Redis is full (maxmemory reached, noeviction): free memory or raise maxmemory"
        if not self.local_workers:
            live = {info.get("provider") for info in self.store.live_workers().values()}
            missing = [p for p in self.providers if p not in live]
            if missing:
                return (f"no live worker consumes {', '.join(queue_name(p) for p in missing)}: start one with "
                        + "; ".join(f"`farm worker --provider {p}`" for p in missing))
        return "workers are live but none committed a sample (see their logs)"
