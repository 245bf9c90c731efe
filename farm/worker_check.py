"""In distributed mode a run waits for workers it does not start: say so when a planned provider has
no live worker (by heartbeat), how to start one, and keep saying it while it lasts."""

from __future__ import annotations

import time
from typing import Any, Sequence

GRACE_S = 3.0     # a worker started together with the run has this long to send its first heartbeat
REPEAT_S = 10.0   # while a provider stays without a worker, the notice comes again this often


class MissingWorkers:
    def __init__(self, store: Any, providers: Sequence[str], grace_s: float = GRACE_S,
                 repeat_s: float = REPEAT_S) -> None:
        self.store, self.providers, self.repeat_s = store, list(providers), repeat_s
        self.next_check = time.monotonic() + grace_s

    def notice(self) -> str | None:
        """A one-line notice naming the providers without a live worker, at most every ``repeat_s``."""
        now = time.monotonic()
        if now < self.next_check:
            return None
        self.next_check = now + self.repeat_s
        live = {info.get("provider") for info in self.store.live_workers().values()}
        missing = [p for p in self.providers if p not in live]
        if not missing:
            return None
        queues = ", ".join(f"farm.{p}" for p in missing)
        starts = "; ".join(f"`farm worker --provider {p}`" for p in missing)
        return (f"no live worker consumes {queues}: the run waits until one does — start one with {starts} "
                "against this Redis (REDIS_URL)")
