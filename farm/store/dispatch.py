"""Dispatch bookkeeping: the per-provider cursor, slots and in-flight entries, and the queue."""

from __future__ import annotations

import re
import time

from farm.store.base import StoreBase
from farm.store.keys import inflight_key, lease_key

# Celery puts the task title (``shadow``) in each message's headers: how a queued task is recognised.
_SHADOW = re.compile(rb'"shadow": "([^"]+)"')


class Dispatch(StoreBase):
    def cursor(self, run_id: str, provider: str) -> int:
        return int(self.r.hget(self.key(run_id, "cursor"), provider) or 0)

    def reset_slots_if_idle(self, run_id: str, provider: str) -> None:
        """With nothing in flight, no slot can be legitimately held: reclaim any a lost reply kept."""
        self._reset_slots(keys=[inflight_key(run_id, provider), self.key(run_id, "slots")], args=[provider])

    def mark_queued(self, run_id: str, provider: str, member: str, attempt: int = 0) -> None:
        self.r.hset(inflight_key(run_id, provider), member, f"q|{time.time_ns()}|{attempt}")

    def inflight(self, run_id: str, provider: str) -> dict[str, str]:
        return self.r.hgetall(inflight_key(run_id, provider))

    def requeue_if_orphaned(self, run_id: str, provider: str, member: str, seen: str,
                            field: str | None = None) -> bool:
        """Mark an inflight entry (``field``, default the member) queued anew, now, if its lease
        is gone and nobody changed the entry since ``seen``."""
        attempt = seen.rsplit("|", 1)[-1]
        return bool(self._requeue(keys=[inflight_key(run_id, provider), lease_key(run_id, member)],
                                  args=[field or member, seen, f"q|{time.time_ns()}|{attempt}"]))

    def queued_titles(self, queue: str) -> set[str]:
        """The task titles (Celery ``shadow`` names) of the messages waiting in a queue."""
        titles = set()
        for message in self.raw.lrange(queue, 0, -1):
            match = _SHADOW.search(message)
            if match:
                titles.add(match[1].decode())
        return titles

    def queue_length(self, queue: str) -> int:
        """Messages waiting in a Celery queue (not those a worker has taken)."""
        return int(self.r.llen(queue))
