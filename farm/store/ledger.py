"""The ledger: claim a sample with a lease, keep the lease alive, commit it exactly once.

A sample is claimed (lease SET NX) before anything runs, and committed by one Lua script that adds
it to the stream only if the member is not yet in ``done``, and hands its dispatch slot to the
successor the claim named (pushing that task in the same step): whatever Celery redelivers, each
(run, provider, snippet, repetition) gets exactly one sample. Missing values are stored as "" and
read back as None: a missing value is never a zero.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from farm.samples import SCHEMA_VERSION, encode_sample
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO
from farm.store.base import StoreBase
from farm.store.keys import ACTIVE, SANDBOXES, SANDBOXES_DEAD, inflight_key, lease_key, member_key, next_key
from farm.store.scripts import RUN_GONE, WRONG_TYPE  # noqa: F401 (re-exported: refusals, nothing written)


class Ledger(StoreBase):
    def claim(self, run_id: str, member: str, worker: str, lease_ms: int, slot: int | None = None
              ) -> tuple[int, str]:
        """Take the lease on a member (and retire its queued slot entry). Returns (attempt, "") or
        (-1, "") if already committed / run finished, (-2, holder) if another live execution
        holds the lease, or (RUN_GONE | WRONG_TYPE, "") with nothing written: the run's status is
        gone (Redis emptied or replaced) or its keys are not the farm's."""
        attempt, holder, _ = self.claim_with_successor(run_id, member, worker, lease_ms, slot)
        return attempt, holder

    def claim_with_successor(self, run_id: str, member: str, worker: str, lease_ms: int,
                             slot: int | None = None, plan_length: int | None = None) -> tuple[int, str, int]:
        """``claim``, and with ``plan_length`` also name the member's successor: the provider's next
        plan index (or -1 past the plan's end, or on any refusal), which this member's commit will
        send. Returns (attempt, holder, successor)."""
        provider = member.split("|", 1)[0]
        res = self._claim(keys=[self.key(run_id, "done"), lease_key(run_id, member),
                                inflight_key(run_id, provider), self.key(run_id, "status"),
                                next_key(run_id, provider), self.key(run_id, "cursor")],
                          args=[member, worker, lease_ms, time.time_ns(), "" if slot is None else slot,
                                provider, "" if plan_length is None else plan_length])
        return int(res[0]), res[1], int(res[2])

    def renew_lease(self, run_id: str, member: str, worker: str, lease_ms: int) -> bool:
        return bool(self._renew(keys=[lease_key(run_id, member)], args=[worker, lease_ms]))

    def lease_exists(self, run_id: str, member: str) -> bool:
        return bool(self.r.exists(lease_key(run_id, member)))

    def commit(self, run_id: str, sample: dict[str, Any]) -> int:
        """Commit one sample atomically: 0 = duplicate dropped, 1 = committed, 2 = committed and
        the run finished, RUN_GONE / WRONG_TYPE = refused with nothing written."""
        return self.commit_and_reserve(run_id, sample)[0]

    def commit_and_reserve(self, run_id: str, sample: dict[str, Any], window: int = 0,
                           plan_length: int = 0, client: Any = None, successor: int = -1,
                           message: tuple[str, str] | None = None, destroyed: Sequence[str] = ()
                           ) -> tuple[int, int]:
        """Commit one sample atomically and pass its dispatch slot on: to the successor its claim
        named (then ``message``, the (queue, payload) of that successor's task, is pushed in the
        same step), or else freed, with the next slot reserved. The sandboxes the attempt
        ``destroyed`` leave the sandbox register in the same step.

        Returns (0 = duplicate dropped | 1 = committed | 2 = committed and the run finished,
        the provider's plan index the caller must still send, or -1). Refused with nothing written:
        (RUN_GONE, -1) when the run's status is gone (FLUSHALL, a fresh Redis behind the same URL),
        (WRONG_TYPE, -1) when one of its keys has a type or value the farm never writes."""
        provider = sample["provider"]
        member = member_key(provider, sample["snippet"], sample["rep"], bool(sample["warmup"]),
                            sample.get("scenario") or DEFAULT_SCENARIO)
        sample = {**sample, "v": SCHEMA_VERSION}
        # with no message to push, the queue key is a placeholder the script never touches
        queue, payload = message if message is not None and successor >= 0 else ("farm:no-queue", "")
        reply = self._commit(
            keys=[self.key(run_id, "done"), self.key(run_id, "samples"), self.key(run_id, "status"),
                  inflight_key(run_id, provider), lease_key(run_id, member),
                  ACTIVE, self.key(run_id, "slots"), self.key(run_id, "cursor"),
                  next_key(run_id, provider), queue, self.key(run_id, "sandboxes"),
                  SANDBOXES, SANDBOXES_DEAD, self.key(run_id, "finished")],
            args=[run_id, member, sample["outcome"], time.time_ns(), provider, window, plan_length,
                  successor if successor >= 0 else "", payload, len(destroyed), *destroyed,
                  *encode_sample(sample)], client=client)
        if client is not None:  # queued in a pipeline: the caller reads the replies
            return -1, -1
        result, next_index = reply
        return int(result), int(next_index)

    def reserve_slot(self, run_id: str, provider: str, window: int, plan_length: int) -> int:
        """Take a dispatch slot and the next plan index, or -1 when the window is full or the
        provider's plan is exhausted."""
        return int(self._reserve(keys=[self.key(run_id, "slots"), self.key(run_id, "cursor"),
                                       inflight_key(run_id, provider)],
                                 args=[provider, window, plan_length, time.time_ns()]))

    def done_members(self, run_id: str) -> set[str]:
        return self.r.smembers(self.key(run_id, "done"))
