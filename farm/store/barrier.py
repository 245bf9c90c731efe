"""The burst barrier: N samples of a run, on any worker process on any host, start their creates at
one instant (workers/burst.py; docs/scenarios.md, burst).

Per run and group (``{r}:burst:<provider>:<n>``, a HASH; the members that arrived in its ``:in``
SET, so a redelivered task is not counted twice): when the last of ``size`` members arrives, the
script (BURST_ARRIVE, farm/store/scripts.py) fixes the release instant = Redis's clock + ``lead_ms``
(stored as ``release_us``, whole microseconds; read back as ``release_ns``) and pushes one wake-up
per waiting member onto its ``:go`` LIST; every waiter BLPOPs one, sleeps until the instant on its
own clock and records the instant it started (BURST_STARTED: ``first_ns``, ``last_ns``,
``started``): the spread between the first and last release is ``last_ns - first_ns``.
"""

from __future__ import annotations

import time
from typing import Any

from farm.store.base import StoreBase

KEY_TTL_S = 7 * 24 * 3600  # a run's barrier outlives any run; reports read it after the run


class Barrier(StoreBase):
    def _burst_keys(self, run_id: str, group: str) -> list[str]:
        base = self.key(run_id, f"burst:{group}")
        return [base, f"{base}:in", f"{base}:go"]

    def burst_arrive(self, run_id: str, group: str, member: str, size: int, lead_ms: int) -> tuple[int | None, int, bool]:
        """(release_ns or None while others are awaited, members arrived, late: released before us)."""
        release, arrived, late = self._burst_arrive(keys=self._burst_keys(run_id, group),
                                                   args=[member, size, lead_ms, KEY_TTL_S])
        return (int(release) * 1000 or None), int(arrived), bool(late)

    def burst_wait(self, run_id: str, group: str, timeout_s: float) -> int | None:
        """Block until the group is released; its release_ns, or None after ``timeout_s``."""
        key, deadline = self._burst_keys(run_id, group)[2], time.monotonic() + timeout_s
        while True:  # in slices of a second: a client's socket timeout must not end a long wait
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            got = self.r.blpop([key], timeout=min(max(left, 0.01), 1.0))
            if got:
                return int(got[1]) * 1000

    def burst_started(self, run_id: str, group: str, start_ns: int) -> None:
        self._burst_started(keys=self._burst_keys(run_id, group)[:1], args=[start_ns])

    def burst_groups(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Every burst group of the run ("<provider>:<n>"): size, arrived, release_ns, first_ns,
        last_ns, started, spread_ns (last - first start)."""
        out: dict[str, dict[str, Any]] = {}
        prefix = self.key(run_id, "burst:")
        for key in self.r.scan_iter(f"{prefix}*", count=500):
            rest = key[len(prefix):]
            if rest.endswith((":in", ":go")):
                continue
            raw = self.r.hgetall(key)
            group = {k: int(v) for k, v in raw.items()}
            if "release_us" in group:
                group["release_ns"] = group.pop("release_us") * 1000
            if "first_ns" in group and "last_ns" in group:
                group["spread_ns"] = group["last_ns"] - group["first_ns"]
            out[rest] = group
        return dict(sorted(out.items()))
