"""Dispatch: feed a run's plan to the provider queues, never more than its window in flight.

``top_up`` is called when a run is created and by the reconciler. Workers keep the plan flowing
themselves, without any process waiting for another: a claim names the member's successor (the next
plan index), the worker prepares that task's message (``message_for``) and the commit script pushes
it as it commits, so passing the slot on costs no round trip of its own. Slots, cursor and
in-flight entries: farm/store/dispatch.py.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from farm.celery_app import SAMPLE_TASK, queue_name
from farm.manifest import Manifest
from farm.plan import PlanItem
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO, subject
from farm.store import Store, member_key


def task_title(run_id: str, item: PlanItem) -> str:
    """What Flower and worker logs show for a task, and how a queued one is recognised."""
    return (f"farm.sample[{run_id} {item.provider}/{subject(item.snippet, item.scenario)}"
            f"#{'w' if item.warmup else ''}{item.rep}]")


class _Capture:
    """Stands where kombu 5.7's producer keeps a publish batch (``Producer._batch_local.current``):
    a publish then routes and encodes the message exactly as for sending, but hands the final
    Redis command to ``add`` instead of running it."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple]] = []

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:  # kombu's batch-state protocol
        return channel.basic_publish(message, _publish_batch=self, **kwargs)

    def add(self, name: str, *args: object) -> None:  # kombu's PublishBatch.add
        self.commands.append((name, args))


class Dispatcher:
    """Sends sample tasks; reads each run's manifest once per process."""

    def __init__(self, store: Store, app: Celery) -> None:
        self.store = store
        self.app = app
        self._manifests: dict[str, Manifest] = {}

    def manifest(self, run_id: str) -> Manifest:
        if run_id not in self._manifests:
            self._manifests[run_id] = Manifest.from_dict(self.store.manifest(run_id))
        return self._manifests[run_id]

    def remember(self, manifest: Manifest) -> None:
        """A run this process just created: no need to read its manifest back."""
        self._manifests[manifest.run_id] = manifest

    def dispatch(self, run_id: str, item: PlanItem, attempt: int = 0, slot: int | None = None) -> None:
        """Send the item's task to the provider's queue; outside a reserved slot (re-queues),
        record the member as queued first."""
        if slot is None:
            member = member_key(item.provider, item.snippet, item.rep, item.warmup, item.scenario)
            self.store.mark_queued(run_id, item.provider, member, attempt)
        self._send(run_id, item, slot)

    def message_for(self, run_id: str, provider: str, index: int) -> tuple[str, str] | None:
        """The (Redis list, payload) that sending the provider's plan item at ``index`` would LPUSH,
        built by Celery and kombu but not sent: the commit script pushes it. None when this kombu
        cannot hand a message over unsent (the caller then sends it after the commit)."""
        item = self.manifest(run_id).expand().item(provider, index)
        assert item is not None, "a claim never names a successor past the plan"
        capture = _Capture()
        with self.app.producer_or_acquire() as producer:
            batch_local = getattr(producer, "_batch_local", None)
            if batch_local is None or getattr(batch_local, "current", None) is not None:
                return None
            batch_local.current = capture
            try:
                self._send(run_id, item, index, producer=producer)
            finally:
                del batch_local.current
        if len(capture.commands) != 1 or capture.commands[0][0] != "lpush":
            raise RuntimeError(f"unexpected publish commands {[c[0] for c in capture.commands]}: "
                               "kombu's Redis transport changed")
        queue, payload = capture.commands[0][1]
        return queue, payload

    def _send(self, run_id: str, item: PlanItem, slot: int | None, producer: Any = None) -> None:
        manifest = self.manifest(run_id)
        self.app.send_task(
            SAMPLE_TASK, args=[run_id, item.provider, item.snippet, item.rep],
            kwargs={"warmup": item.warmup, "enqueued_ns": time.time_ns(), "slot": slot,
                    # absent for the default: a cold task's message reads as it did before scenarios
                    **({"scenario": item.scenario} if item.scenario != DEFAULT_SCENARIO else {})},
            queue=queue_name(item.provider),
            # what Flower and worker logs show: which run, provider, snippet and repetition this is
            shadow=task_title(run_id, item),
            soft_time_limit=manifest.task_soft_limit_s, time_limit=manifest.task_hard_limit_s,
            producer=producer)

    def top_up(self, run_id: str, provider: str) -> int:
        """Dispatch plan items until the provider has ``window`` tasks in flight or the plan ends."""
        window, length = self.window(run_id, provider)
        sent = 0
        while (index := self.store.reserve_slot(run_id, provider, window, length)) >= 0:
            self.dispatch_index(run_id, provider, index)
            sent += 1
        return sent

    def dispatch_index(self, run_id: str, provider: str, index: int) -> None:
        """Dispatch the provider's plan item at a reserved index."""
        item = self.manifest(run_id).expand().item(provider, index)
        assert item is not None, "reserve_slot never hands out an index past the plan"
        self.dispatch(run_id, item, slot=index)

    def window(self, run_id: str, provider: str) -> tuple[int, int]:
        """(window, plan length) for the commit script's next-slot reservation."""
        manifest = self.manifest(run_id)
        return manifest.window, manifest.expand().per_provider()
