"""The sandbox register: which sandboxes exist for which attempt, and this farm's identity.

A worker registers a sandbox right after it is created (sending the write without waiting for its
reply, read before the commit) and drops it with the sample's commit, in the same script, so an entry that outlives its attempt (the worker was killed mid-sample, and the member re-ran)
is a leak the run's report counts, and one `farm sweep` may delete once its lease has lapsed.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass

from farm.store import scripts
from farm.store.base import SentWrite, StoreBase
from farm.store.keys import ACTIVE, FARM_ID, SANDBOXES, SANDBOXES_DEAD, lease_key, parse_member


@dataclass(frozen=True)
class Registered:
    """A sandbox created by an attempt and not (yet) destroyed by it."""

    sandbox_id: str
    run_id: str
    member: str
    worker: str
    created_ns: int

    @property
    def provider(self) -> str:
        return parse_member(self.member)[0]


class Sandboxes(StoreBase):
    def farm_id(self) -> str:
        """This farm's identity, made once per Redis (SET NX, so concurrent first callers agree)."""
        self.r.set(FARM_ID, f"farm-{secrets.token_hex(6)}", nx=True)
        return self.r.get(FARM_ID)

    def register_sandbox(self, run_id: str, member: str, worker: str, sandbox_id: str) -> None:
        """Record a new sandbox of an attempt (nothing when the run's status is gone: Redis emptied)."""
        self.register_sandbox_sent(run_id, member, worker, sandbox_id).wait()

    def register_sandbox_sent(self, run_id: str, member: str, worker: str, sandbox_id: str) -> SentWrite:
        """``register_sandbox`` without waiting for Redis's reply (``.wait()`` reads it): the entry is
        written as soon as Redis reads the command, so a worker killed right after still leaves it.
        EVAL with the script's text, not EVALSHA: no reply is read in time to load a missing script."""
        return SentWrite(self.r, [("EVAL", scripts.REGISTER_SANDBOX, 3, self.key(run_id, "status"),
                                   self.key(run_id, "sandboxes"), SANDBOXES,
                                   sandbox_id, f"{member}|{worker}|{time.time_ns()}", run_id)])

    def unregister_sandbox(self, run_id: str, sandbox_id: str) -> None:
        """Drop a destroyed sandbox (a script, not MULTI: it still works when Redis is full)."""
        self._unregister_sandbox(keys=[self.key(run_id, "sandboxes"), SANDBOXES, SANDBOXES_DEAD], args=[sandbox_id])

    def first_sighting(self, run_id: str, what: str, value: str) -> str | None:
        """Record ``value`` as the first sighting of ``what`` (a sandbox id or boot identity) in the
        run, unless one is there: return the earlier sighting, or None when this is the first (or
        when the run's status is gone, Redis emptied: then nothing is written)."""
        return self.first_sightings(run_id, {what: value})[what]

    def first_sightings(self, run_id: str, sightings: dict[str, str]) -> dict[str, str | None]:
        """``first_sighting`` for several at once, in one round trip."""
        args = [x for pair in sightings.items() for x in pair]
        replies = self._first_sightings(keys=[self.key(run_id, "status"), self.key(run_id, "seen")], args=args)
        return {what: reply or None for what, reply in zip(sightings, replies)}

    def sandbox_alive(self, run_id: str, sandbox_id: str) -> bool:
        """The sandbox is registered (created by an attempt and not yet destroyed)."""
        return bool(self.r.hexists(self.key(run_id, "sandboxes"), sandbox_id))

    def first_seen_dead(self, sandbox_id: str, now_ns: int, record: bool = True) -> int:
        """When a sweep first saw this sandbox's attempt dead (``now_ns`` if never, recorded unless
        ``record`` is False): the start of its grace period."""
        if record:
            self.r.hsetnx(SANDBOXES_DEAD, sandbox_id, now_ns)
        seen = self.r.hget(SANDBOXES_DEAD, sandbox_id)
        return int(seen) if seen else now_ns

    def credit_reclaimed_registered(self, provider: str, sandbox_ids: list[str]) -> int:
        """Credit each deleted sandbox of an interrupted attempt to its run (``{r}:sweep``), once:
        the run's register keeps the entry (it still counts as leaked), the look-up entry goes."""
        credited = 0
        for sandbox_id in sandbox_ids:
            entry = self.registered(sandbox_id)
            if entry is None:
                continue
            pipe = self.r.pipeline(transaction=True)
            pipe.hincrby(self.key(entry.run_id, "sweep"), f"{provider}:reclaimed", 1)
            pipe.hdel(SANDBOXES, sandbox_id)
            pipe.hdel(SANDBOXES_DEAD, sandbox_id)
            pipe.execute()
            credited += 1
        return credited

    def registered(self, sandbox_id: str) -> Registered | None:
        run_id = self.r.hget(SANDBOXES, sandbox_id)
        raw = self.r.hget(self.key(run_id, "sandboxes"), sandbox_id) if run_id else None
        return _entry(sandbox_id, run_id, raw) if raw else None

    def run_sandboxes(self, run_id: str) -> list[Registered]:
        return [_entry(sid, run_id, raw) for sid, raw in self.r.hgetall(self.key(run_id, "sandboxes")).items()]

    def attempt_alive(self, entry: Registered) -> bool:
        """True while the attempt that made the sandbox still holds its member's lease."""
        return self.r.sismember(ACTIVE, entry.run_id) and \
            self.r.get(lease_key(entry.run_id, entry.member)) == entry.worker

    def interrupted(self, run_id: str) -> dict[str, int]:
        """Per provider, sandboxes whose attempt ended without destroying them (killed mid-sample)."""
        counts: Counter[str] = Counter(e.provider for e in self.run_sandboxes(run_id) if not self.attempt_alive(e))
        return dict(counts)


def _entry(sandbox_id: str, run_id: str, raw: str) -> Registered:
    member, worker, created_ns = raw.rsplit("|", 2)
    return Registered(sandbox_id, run_id, member, worker, int(created_ns))
