"""The ``burst`` scenario: N creates released at one instant across every worker process and host.

A burst run's plan items, in dispatch order, form groups of N (``burst_group``); its dispatch window
is N, so a group's N tasks are in flight together. Each task, once claimed and its provider ready
(untimed), arrives at the group's barrier in Redis (farm/store/barrier.py). The last to arrive fixes
the release instant T = Redis's clock + ``LEAD_MS`` and wakes the others; every task sleeps until T
on its own clock, notes the wall clock ``start_ns`` and starts the cold lifecycle
(workers/measure.py) at once: the timed ``create`` begins microseconds later. Each sample keeps
``burst`` = {group, size, release_ns, start_ns, skew_ms (start - T), arrived, late}; the group's
first and last start (the spread) are kept in Redis after the sample is measured.

``LEAD_MS`` is the time every waiter has to wake from its BLPOP before T: on one host the spread
is then the sleep's wake-up jitter; across hosts it adds their clocks' disagreement (NTP).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

from farm.store.keys import parse_member
from providers.base import Provider, SandboxSpec
from workers.measure import measure

LEAD_MS = 200
WAIT_FLOOR_S = 5.0


def burst_group(index: int, size: int, plan_length: int) -> tuple[int, int]:
    """(group, group size) of the plan item at ``index``: consecutive items in groups of ``size``;
    the last group holds what is left."""
    group = index // size
    return group, min(size, plan_length - group * size)


@dataclass
class BurstBarrier:
    """One sample's place at its group's barrier."""

    store: Any
    run_id: str
    member: str
    group: str | None      # "<provider>:<n>"; None: a re-queued task, whose plan index (and so group) is not known
    size: int
    timeout_s: float
    lead_ms: int = LEAD_MS

    def wait(self) -> dict[str, Any]:
        """Block until the group is released and its instant reached; the sample's burst record
        (``timeout`` set when the group never filled)."""
        if self.group is None:
            return {"group": None, "size": self.size, "late": True}
        release, arrived, late = self.store.burst_arrive(self.run_id, self.group, self.member, self.size, self.lead_ms)
        if release is None:
            release = self.store.burst_wait(self.run_id, self.group, self.timeout_s)
            if release is None:
                return {"group": self.group, "size": self.size, "arrived": arrived, "timeout": True}
        delay_s = (release - time.time_ns()) / 1e9
        if delay_s > 0:
            time.sleep(delay_s)
        start_ns = time.time_ns()
        return {"group": self.group, "size": self.size, "arrived": arrived, "late": late,
                "release_ns": release, "start_ns": start_ns, "skew_ms": round((start_ns - release) / 1e6, 3)}

    def started(self, start_ns: int) -> None:
        self.store.burst_started(self.run_id, self.group, start_ns)


def measure_burst(provider: Provider, spec: SandboxSpec, snippet: Any, env: Mapping[str, str],
                  timeouts: Mapping[str, float], *, burst: BurstBarrier, **kwargs: Any) -> dict[str, Any]:
    """The cold lifecycle, started at the burst's instant. A sample whose group never filled, or
    that was re-queued after its group left, is ``skipped`` with the reason: it was in no burst."""
    record = burst.wait()
    if record.get("timeout"):
        return {"outcome": "skipped", "burst": record,
                "error": f"burst barrier: {record['arrived']} of {record['size']} arrived within "
                         f"{burst.timeout_s:g} s (do the workers offer {record['size']} slots?)"}
    if record["group"] is None:
        return {"outcome": "skipped", "burst": record,
                "error": "re-queued after its burst: measured in no burst"}
    out = measure(provider, spec, snippet, env, timeouts, **kwargs)
    out["burst"] = record
    try:
        burst.started(record["start_ns"])
    except Exception:  # noqa: BLE001 - the spread is the report's to rebuild from the samples
        pass
    return out


def barrier_timeout(soft_limit_s: float | None, create_timeout_s: float | None) -> float:
    """How long a task waits for its group: within the task's soft limit, leaving it the lifecycle."""
    budget = (soft_limit_s or 600) - (create_timeout_s or 120) - 30
    return max(WAIT_FLOOR_S, min(120.0, budget))


def barrier_for(store: Any, run_id: str, member: str, manifest: Any, slot: int | None) -> dict[str, Any]:
    """The burst lifecycle's extra argument: this sample's place at its group's barrier. ``slot``
    is the plan index the task was dispatched for (None for a re-queued task)."""
    size = int(manifest.burst or 1)
    length = manifest.expand().per_provider()
    if slot is None:
        group, group_size = None, size
    else:
        number, group_size = burst_group(slot, size, length)
        group = f"{parse_member(member)[0]}:{number}"
    timeout = barrier_timeout(manifest.task_soft_limit_s, manifest.timeouts.get("create"))
    return {"burst": BurstBarrier(store, run_id, member, group, group_size, timeout)}
