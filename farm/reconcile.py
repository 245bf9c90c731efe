"""Reconcile: bring back samples that a dead worker, a lost message or a lost reply left behind,
and close runs past their deadline.

``reconcile_active`` runs in every worker's main process and in ``farm run``, one process at a time
(a Redis lock), so a run recovers whichever processes survive. Every repair is conditional on the
state it saw (a lease gone, an in-flight entry unchanged): two reconcilers never double a task, and
a late original finds the lease or the committed sample and stands down.
"""

from __future__ import annotations

import time

from farm.celery_app import queue_name
from farm.dispatch import Dispatcher, task_title
from farm.plan import Plan, PlanItem
from farm.store import member_key, parse_member


class Reconciler:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store

    def reconcile_active(self, owner: str, every_ms: int = 3000) -> int:
        """Reconcile every unfinished run, at most once per ``every_ms`` across all processes."""
        if not self.store.try_lock("reconciler", owner, every_ms):
            return 0
        total = 0
        for run_id in self.store.active_runs():
            try:
                total += self.reconcile(run_id)
            except (KeyError, ValueError):  # gone, or a manifest this farm cannot read: not ours to run
                continue
        return total

    def reconcile(self, run_id: str) -> int:
        """Re-enqueue what was lost for each provider of the run, then top its queue up."""
        if self.finalize_if_overdue(run_id):
            return 0
        manifest = self.dispatcher.manifest(run_id)
        plan = manifest.expand()
        requeued = 0
        for provider in manifest.plan.providers:
            inflight = self.store.inflight(run_id, provider)
            requeued += self._requeue_orphaned_leases(run_id, provider, inflight)
            requeued += self._resend_lost_messages(run_id, provider, plan, inflight)
            if not inflight:
                requeued += self._recover_lost(run_id, provider, plan)
            self.dispatcher.top_up(run_id, provider)
        return requeued

    def missing_members(self, run_id: str) -> list[str]:
        """Plan members with no committed sample, in plan order."""
        plan = self.dispatcher.manifest(run_id).expand()
        done = self.store.done_members(run_id)
        return [m for p in plan.providers for it in plan.items(p)
                if (m := member_key(it.provider, it.snippet, it.rep, it.warmup, it.scenario)) not in done]

    def finalize_if_overdue(self, run_id: str, now_ns: int | None = None) -> bool:
        """Past its deadline, a run is finished with what it has and its missing members named."""
        deadline = self.dispatcher.manifest(run_id).deadline_s
        if not deadline:
            return False
        status = self.store.status(run_id)
        if status.state == "finished" or (now_ns or time.time_ns()) - status.created_ns < deadline * 1e9:
            return False
        missing = self.missing_members(run_id)
        return self.store.finalize_incomplete(run_id, missing, len(missing),
                                              f"deadline of {deadline:g} s passed")

    def _requeue_orphaned_leases(self, run_id: str, provider: str, inflight: dict[str, str]) -> int:
        """Members claimed by a worker that died: the lease expired and nothing was committed."""
        requeued = 0
        for member, seen in inflight.items():
            if not seen.startswith("c|") or self.store.lease_exists(run_id, member):
                continue
            if self.store.requeue_if_orphaned(run_id, provider, member, seen):
                self.dispatcher.dispatch(run_id, PlanItem(*parse_member(member)),
                                         attempt=int(seen.rsplit("|", 1)[-1]))
                requeued += 1
        return requeued

    def _resend_lost_messages(self, run_id: str, provider: str, plan: Plan, inflight: dict[str, str]) -> int:
        """A task dispatched long ago, never claimed, and no longer in its queue was taken by a
        worker that died before claiming it (its message waits out the visibility timeout in
        Redis's unacked set): send it again. A late original is harmless: it finds the lease or
        the committed sample and stands down."""
        lost_after_ns = self.dispatcher.manifest(run_id).lost_after_s * 1e9
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
            member = member_key(item.provider, item.snippet, item.rep, item.warmup, item.scenario)
            if self.store.requeue_if_orphaned(run_id, provider, member, seen, field=field):
                self.dispatcher.dispatch(run_id, item, attempt=int(seen.rsplit("|", 1)[-1]), slot=slot)
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
            self.dispatcher.dispatch(run_id, PlanItem(*parse_member(member)))
        return len(missing)
