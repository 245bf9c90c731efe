"""Turns a plan into Celery tasks, keeps a bounded number in flight, and re-enqueues orphans.

Nothing here waits for a particular process: ``top_up`` is called by ``farm run`` and by every
worker after each commit, and ``reconcile`` by whichever process holds the reconciler lock, so a
run keeps going when ``farm run`` is interrupted and recovers when a worker dies.
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Sequence

from celery import Celery

from farm import __version__
from farm.celery_app import SAMPLE_TASK, queue_name
from farm.config import FarmConfig
from farm.plan import Plan, PlanItem
from farm.snippets import Snippet
from farm.store import Store, member_key, parse_member

MANIFEST_VERSION = 1


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@lru_cache(maxsize=64)
def _plan_from(run_id: str, providers: tuple, snippets: tuple, once: tuple, reps: int, warmup: int,
               seed: int) -> Plan:
    return Plan.build(providers, snippets, once, reps, warmup, seed)


def plan_of(manifest: dict[str, Any]) -> Plan:
    p = manifest["plan"]
    return _plan_from(manifest["run_id"], tuple(p["providers"]), tuple(p["snippets"]),
                      tuple(p["once"]), p["repetitions"], p["warmup"], p["seed"])


def task_title(run_id: str, item: PlanItem) -> str:
    """What Flower and worker logs show for a task, and how a queued one is recognised."""
    return f"farm.sample[{run_id} {item.provider}/{item.snippet}#{'w' if item.warmup else ''}{item.rep}]"


class Scheduler:
    """Creates runs and feeds their tasks to the provider queues."""

    def __init__(self, store: Store, app: Celery) -> None:
        self.store = store
        self.app = app
        self._manifests: dict[str, dict[str, Any]] = {}

    def manifest(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._manifests:
            self._manifests[run_id] = self.store.manifest(run_id)
        return self._manifests[run_id]

    def create_run(self, config: FarmConfig, providers: Sequence[str], snippets: Sequence[Snippet], *,
                   repetitions: int, warmup: int, concurrency: int, seed: int | None = None,
                   label: str = "", run_id: str | None = None) -> str:
        """Write the manifest and status to Redis, then dispatch the first window of tasks."""
        run_id = run_id or new_run_id()
        seed = seed if seed is not None else (config.defaults.seed if config.defaults.seed is not None
                                              else secrets.randbelow(2**31))
        plan = Plan.build(providers, [s.name for s in snippets],
                          [s.name for s in snippets if not s.repeatable], repetitions, warmup, seed)
        timeouts = config.defaults.timeouts
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "run_id": run_id,
            "label": label,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "plan": {"providers": list(providers), "snippets": [s.name for s in snippets],
                     "once": sorted(plan.once), "repetitions": repetitions, "warmup": warmup,
                     "seed": seed, "total": plan.total, "measured": plan.measured},
            "concurrency": concurrency,
            "window": max(2 * concurrency, 4),
            "max_attempts": config.defaults.max_attempts,
            "retries": config.defaults.retries,
            "backoff_s": config.defaults.backoff_s,
            "deadline_s": config.defaults.deadline_s,
            "lost_after_s": config.defaults.lost_after_s,
            "timeouts": timeouts.model_dump(),
            "task_soft_limit_s": timeouts.task_soft_limit(),
            "task_hard_limit_s": timeouts.task_hard_limit(),
            "env_pass_to_sandbox": list(config.env_vars.pass_to_sandbox),  # names only, never values
            "provider_settings": {p: config.providers.get(p, {}) for p in providers},
            "snippets": {s.name: s.to_manifest() for s in snippets},
            "statistics": config.statistics.model_dump(),
            "scheduler": {"farm_version": __version__, "python": sys.version.split()[0],
                          "host": platform.node(), "pid": os.getpid()},
        }
        self.store.create_run(run_id, manifest, plan.total, label=label)
        self._manifests[run_id] = manifest
        for provider in providers:
            self.top_up(run_id, provider)
        return run_id

    def dispatch(self, run_id: str, item: PlanItem, attempt: int = 0, slot: int | None = None) -> None:
        """Send the item's task to the provider's queue; outside a reserved slot (re-queues),
        record the member as queued first."""
        manifest = self.manifest(run_id)
        if slot is None:
            member = member_key(item.provider, item.snippet, item.rep, item.warmup)
            self.store.mark_queued(run_id, item.provider, member, attempt)
        self.app.send_task(
            SAMPLE_TASK, args=[run_id, item.provider, item.snippet, item.rep],
            kwargs={"warmup": item.warmup, "enqueued_ns": time.time_ns(), "slot": slot},
            queue=queue_name(item.provider),
            # what Flower and worker logs show: which run, provider, snippet and repetition this is
            shadow=task_title(run_id, item),
            soft_time_limit=manifest["task_soft_limit_s"], time_limit=manifest["task_hard_limit_s"])

    def top_up(self, run_id: str, provider: str) -> int:
        """Dispatch plan items until the provider has ``window`` tasks in flight or the plan ends."""
        manifest = self.manifest(run_id)
        plan = plan_of(manifest)
        sent = 0
        while (index := self.store.reserve_slot(run_id, provider, manifest["window"],
                                                plan.per_provider())) >= 0:
            self.dispatch_index(run_id, provider, index)
            sent += 1
        return sent

    def dispatch_index(self, run_id: str, provider: str, index: int) -> None:
        """Dispatch the provider's plan item at a reserved index."""
        item = plan_of(self.manifest(run_id)).item(provider, index)
        assert item is not None, "reserve_slot never hands out an index past the plan"
        self.dispatch(run_id, item, slot=index)

    def window(self, run_id: str, provider: str) -> tuple[int, int]:
        """(window, plan length) for the commit script's next-slot reservation."""
        manifest = self.manifest(run_id)
        return manifest["window"], plan_of(manifest).per_provider()

    def missing_members(self, run_id: str) -> list[str]:
        """Plan members with no committed sample, in plan order."""
        plan = plan_of(self.manifest(run_id))
        done = self.store.done_members(run_id)
        return [m for p in plan.providers for it in plan.items(p)
                if (m := member_key(it.provider, it.snippet, it.rep, it.warmup)) not in done]

    def finalize_if_overdue(self, run_id: str, now_ns: int | None = None) -> bool:
        """Past its deadline, a run is finished with what it has and its missing members named."""
        deadline = self.manifest(run_id).get("deadline_s")
        if not deadline:
            return False
        status = self.store.status(run_id)
        if status.state == "finished" or (now_ns or time.time_ns()) - status.created_ns < deadline * 1e9:
            return False
        missing = self.missing_members(run_id)
        return self.store.finalize_incomplete(run_id, missing, len(missing),
                                              f"deadline of {deadline:g} s passed")

    def reconcile(self, run_id: str) -> int:
        """Re-enqueue members whose executing worker died (claimed, lease expired, not committed)."""
        if self.finalize_if_overdue(run_id):
            return 0
        manifest = self.manifest(run_id)
        plan = plan_of(manifest)
        requeued = 0
        for provider in manifest["plan"]["providers"]:
            inflight = self.store.inflight(run_id, provider)
            for member, seen in inflight.items():
                if not seen.startswith("c|") or self.store.lease_exists(run_id, member):
                    continue
                if self.store.requeue_if_orphaned(run_id, provider, member, seen):
                    prov, snippet, rep, warmup = parse_member(member)
                    self.dispatch(run_id, PlanItem(prov, snippet, rep, warmup),
                                  attempt=int(seen.rsplit("|", 1)[-1]))
                    requeued += 1
            requeued += self._resend_lost_messages(run_id, provider, plan, inflight)
            if not inflight:
                requeued += self._recover_lost(run_id, provider, plan)
            self.top_up(run_id, provider)
        return requeued

    def _resend_lost_messages(self, run_id: str, provider: str, plan: Plan, inflight: dict[str, str]) -> int:
        """A task dispatched long ago, never claimed, and no longer in its queue was taken by a
        worker that died before claiming it (its message waits out the visibility timeout in
        Redis's unacked set): send it again. A late original is harmless: it finds the lease or
        the committed sample and stands down."""
        lost_after_ns = self.manifest(run_id).get("lost_after_s", 30) * 1e9
        now = time.time_ns()
        stale = {f: v for f, v in inflight.items()
                 if v.startswith("q|") and now - int(v.split("|")[1]) > lost_after_ns}
        if not stale:
            return 0
        waiting = self.store.queued_titles(queue_name(provider))
        resent = 0
        for field, seen in stale.items():
            slot = int(field[1:]) if field.startswith("#") else None
            item = plan.item(provider, slot) if slot is not None else PlanItem(*parse_member(field))
            if item is None or task_title(run_id, item) in waiting:
                continue
            member = member_key(item.provider, item.snippet, item.rep, item.warmup)
            if self.store.requeue_if_orphaned(run_id, provider, member, seen, field=field):
                self.dispatch(run_id, item, attempt=int(seen.rsplit("|", 1)[-1]), slot=slot)
                resent += 1
        return resent

    def _recover_lost(self, run_id: str, provider: str, plan: Plan) -> int:
        """Nothing in flight: free slots a lost reply kept, and if the provider's plan is fully
        dispatched yet incomplete, dispatch what never committed (a reply lost to a Redis crash
        can swallow one reservation). Costs a plan scan only in that stalled state."""
        self.store.reset_slots_if_idle(run_id, provider)
        if self.store.cursor(run_id, provider) < plan.per_provider():
            return 0
        missing = [m for m in self.missing_members(run_id) if m.startswith(f"{provider}|")]
        for member in missing:
            self.dispatch(run_id, PlanItem(*parse_member(member)))
        return len(missing)

    def reconcile_active(self, owner: str, every_ms: int = 3000) -> int:
        """Reconcile every unfinished run, at most once per ``every_ms`` across all processes."""
        if not self.store.try_lock("reconciler", owner, every_ms):
            return 0
        total = 0
        for run_id in self.store.active_runs():
            try:
                total += self.reconcile(run_id)
            except KeyError:
                continue
        return total
