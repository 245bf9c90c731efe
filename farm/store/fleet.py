"""The fleet: worker heartbeats, locks, leaked sandboxes and sweeps, schedule guards."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

from farm.store.base import StoreBase
from farm.store.keys import ASSUMPTIONS, LEAKS, SWEEP_LAST, WORKER_PREFIX, lock_key, schedule_guard_key, worker_key


class Fleet(StoreBase):
    def heartbeat(self, worker: str, info: dict[str, Any], ttl_s: int = 15) -> None:
        self.r.set(worker_key(worker), json.dumps(info), ex=ttl_s)

    def forget_worker(self, worker: str) -> None:
        """A worker shutting down drops its heartbeat at once (instead of after its TTL)."""
        self.r.delete(worker_key(worker))

    def live_workers(self) -> dict[str, dict[str, Any]]:
        keys = list(self.r.scan_iter(f"{WORKER_PREFIX}*", count=500))
        values = self.r.mget(keys) if keys else []
        return {k[len(WORKER_PREFIX):]: json.loads(v) for k, v in zip(keys, values) if v}

    def memory_full(self) -> bool:
        """Redis refuses writes for want of memory: maxmemory reached under noeviction."""
        info = self.r.info("memory")
        limit = int(info.get("maxmemory", 0))
        return bool(limit) and info.get("maxmemory_policy") == "noeviction" and int(info["used_memory"]) >= limit

    def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(self.r.set(lock_key(name), owner, nx=True, px=ttl_ms))

    def record_assumptions(self, provider: str, verdicts: dict[str, Any]) -> None:
        """What `farm doctor --live` last found about a provider's real API (farm/live.py)."""
        self.r.hset(ASSUMPTIONS, provider, json.dumps(verdicts))

    def assumptions(self, provider: str) -> dict[str, Any] | None:
        raw = self.r.hget(ASSUMPTIONS, provider)
        return json.loads(raw) if raw else None

    def take_schedule_guard(self, schedule: str, period: str, ttl_s: int) -> bool:
        """True for the first firing of a schedule in a period; False if it already fired."""
        return bool(self.r.set(schedule_guard_key(schedule, period), "1", nx=True, ex=ttl_s))

    # --- leaked sandboxes and sweeps ------------------------------------------------------------
    def record_leak(self, sandbox_id: str, run_id: str, provider: str) -> None:
        """A sandbox whose destroy failed: a later sweep that deletes it credits the run."""
        self.r.hset(LEAKS, sandbox_id, f"{run_id}|{provider}")

    def credit_reclaimed(self, provider: str, sandbox_ids: Iterable[str]) -> int:
        """Credit each deleted sandbox that a run leaked to that run's report; returns how many."""
        credited = 0
        for sandbox_id in sandbox_ids:
            owner = self.r.hget(LEAKS, sandbox_id)
            if owner:
                run_id = owner.split("|", 1)[0]
                self.r.hincrby(self.key(run_id, "sweep"), f"{provider}:reclaimed", 1)
                self.r.hdel(LEAKS, sandbox_id)
                credited += 1
        return credited

    def reclaimed(self, run_id: str) -> dict[str, int]:
        """Per provider, how many of the run's leaked sandboxes a sweep deleted."""
        swept = self.r.hgetall(self.key(run_id, "sweep"))
        return {k.split(":")[0]: int(v) for k, v in swept.items() if k.endswith(":reclaimed")}

    def mark_sweep(self, provider: str, found: int, deleted: int, error: str) -> None:
        self.r.hset(SWEEP_LAST, provider, json.dumps(
            {"ts_ns": time.time_ns(), "found": found, "deleted": deleted, "error": error}))
