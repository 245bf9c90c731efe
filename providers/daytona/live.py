"""What the Daytona adapter (and tests/fakes/daytona_server.py) assumes about the real API, each
with a live check for `farm doctor --live`: one or two sandboxes, always deleted.

A check returns "held", raises ``AssumptionBroke`` with what was seen, or raises anything else
for "can't tell" (e.g. no warm pool to claim from).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from providers.base import Assumption, AssumptionBroke, SandboxSpec, sandbox_labels
from providers.daytona.wire import BOOTING, claim_signal, header, http_time, iso_time, state_of
from providers.errors import ProviderError

if TYPE_CHECKING:
    from providers.daytona.adapter import DaytonaProvider

CHECK_TIMEOUT_S = 120


def _spec(rep: int) -> SandboxSpec:
    return SandboxSpec(labels=sandbox_labels("doctor-live", "daytona", "assumption", rep),
                       timeout_s=CHECK_TIMEOUT_S)


@contextmanager
def _raw_create(p: "DaytonaProvider") -> Iterator[dict[str, Any]]:
    """POST a cold create and poll it to started, recording every state seen; always deleted after.
    It sets one env var: a create with env is never served from a warm pool (documented)."""
    body = p.create_body(_spec(0))
    body.env = {"FARM_ASSUMPTION_CHECK": "1"}
    sent = time.perf_counter()
    answer = p.sandboxes.create_sandbox_with_http_info(body, _request_timeout=30)
    seen = {"record": answer.data, "round_trip": time.perf_counter() - sent,
            "date": header(answer.headers, "date"), "states": [state_of(answer.data)]}
    try:
        deadline = time.monotonic() + CHECK_TIMEOUT_S
        while seen["states"][-1] != "started" and time.monotonic() < deadline:
            time.sleep(0.2)
            seen["states"].append(state_of(p.sandboxes.get_sandbox(answer.data.id, _request_timeout=30)))
            if seen["states"][-1] not in BOOTING | {"started"}:
                break
        yield seen
    finally:
        p.delete_by_id(answer.data.id)


def boot_states(p: "DaytonaProvider") -> str:
    with _raw_create(p) as seen:
        states = seen["states"]
    if states[-1] != "started" or any(s not in BOOTING for s in states[:-1]):
        raise AssumptionBroke(f"a cold create went through {' -> '.join(states)}")
    return "held"


def cold_answer_not_started(p: "DaytonaProvider") -> str:
    with _raw_create(p) as seen:
        if claim_signal(seen["record"], seen["date"], seen["round_trip"]) == "pool":
            raise RuntimeError("the create was served from a warm pool: no cold create to look at")
        if seen["states"][0] == "started":
            raise AssumptionBroke("a cold create answered already started (those are recorded warm: unknown)")
    return "held"


def server_clock(p: "DaytonaProvider") -> str:
    """createdAt and the answer's Date header come from one clock: the claim proof compares them."""
    with _raw_create(p) as seen:
        record, date = seen["record"], seen["date"]
        if date is None:
            raise AssumptionBroke("the create answer carries no Date header")
        created, answered = iso_time(record.created_at), http_time(date)
        if created is None or answered is None:
            raise AssumptionBroke(f"unreadable createdAt {record.created_at!r} or Date {date!r}")
        if not answered - seen["round_trip"] - 1 <= created <= answered + 1:
            raise AssumptionBroke(f"createdAt {record.created_at} is {created - answered:+.1f} s from Date {date}")
    return "held"


def lifetime_bound(p: "DaytonaProvider") -> str:
    with _raw_create(p) as seen:
        record, s = p.sandboxes.get_sandbox(seen["record"].id, _request_timeout=30), p.settings
        got = (record.auto_stop_interval, record.auto_delete_interval, bool(record.auto_destroy_at))
        if got != (s.auto_stop_minutes, s.auto_delete_minutes, bool(s.ttl_minutes)):
            raise AssumptionBroke(f"sent auto-stop/auto-delete/ttl {s.auto_stop_minutes}/{s.auto_delete_minutes}/"
                                  f"{s.ttl_minutes}, the record says {got}")
    return "held"


def timeout_is_408(p: "DaytonaProvider") -> str:
    sandbox = p.create(_spec(1))
    try:
        p.run(sandbox, "import time; time.sleep(10)", {}, 1)
    except ProviderError as exc:
        if exc.status != 408:
            raise AssumptionBroke(f"a code run past its timeout answered {exc.status or exc.error_class}") from None
        return "held"
    finally:
        p.delete_by_id(sandbox.id)
    raise AssumptionBroke("a code run past its timeout succeeded")


def pool_claim_answer(p: "DaytonaProvider") -> str:
    if p.settings.mode != "warm_pool":
        raise RuntimeError("mode is not warm_pool: no pool to claim from")
    p.warm(_spec(2))
    time.sleep(2)  # members older than the claim proof's one-second granularity
    sandbox = p.create(_spec(2))
    try:
        if sandbox.warm != "pool":
            raise AssumptionBroke(f"a claim from a filled pool was recorded warm={sandbox.warm!r} "
                                  f"(answered {sandbox.facts.get('answered_state')}, created {sandbox.facts.get('created_at')})")
    finally:
        p.delete_by_id(sandbox.id)
    return "held"


def delete_ends_gone(p: "DaytonaProvider") -> str:
    sandbox = p.create(_spec(3))
    p.destroy(sandbox)  # DELETE then polls: only destroyed or 404 end it
    return "held"


ASSUMPTIONS = [
    Assumption("boot-states", "a cold create passes only through creating/restoring/starting/pending_build/"
               "building_snapshot/pulling_snapshot/unknown before started", boot_states),
    Assumption("cold-answer-not-started", "the create answer of a cold create is not yet started "
               "(pool members are handed over started)", cold_answer_not_started),
    Assumption("server-clock", "a record's createdAt and the answer's Date header share Daytona's clock",
               server_clock),
    Assumption("lifetime-bound", "auto-stop, auto-delete and ttl sent at create are kept on the record",
               lifetime_bound),
    Assumption("toolbox-408-is-run-timeout", "the toolbox answers 408 when a code run passes its timeout",
               timeout_is_408),
    Assumption("pool-claim-answer", "a claim answers started with the member's own createdAt (warmPoolId "
               "cleared)", pool_claim_answer),
    Assumption("delete-ends-gone", "after DELETE the record reaches destroyed or answers 404", delete_ends_gone),
]
