"""The claim names a member's successor and the commit pushes its task (issue 18): one round trip
for commit-and-dispatch, the window unchanged, exactly-once untouched. Real redis-server, real
Celery/kombu message building; no workers needed to drive the ledger step by step."""

import base64
import json

from farm.celery_app import queue_name
from farm.dispatch import task_title
from farm.store import member_key
from farm.store.keys import next_key

LEASE_MS = 15_000


def _run(farm, reps: int):
    run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=reps, concurrency=2)
    window, length = farm.scheduler.window(run_id, "sim")
    return run_id, window, length


def _member(farm, run_id: str, index: int) -> str:
    item = farm.scheduler.manifest(run_id).expand().item("sim", index)
    return member_key(item.provider, item.snippet, item.rep, item.warmup)


def _record(farm, run_id: str, index: int, worker: str = "w1") -> dict:
    item = farm.scheduler.manifest(run_id).expand().item("sim", index)
    return {"provider": "sim", "snippet": item.snippet, "rep": item.rep, "warmup": item.warmup,
            "attempt": 1, "worker": worker, "started_ns": 1, "retries": 0, "outcome": "ok",
            "create_ns": 1_000_000, "total_ns": 2_000_000}


def _task(payload: bytes) -> tuple[list, dict, dict]:
    """(args, kwargs, headers) of a kombu Redis message as the worker will read it."""
    message = json.loads(payload)
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    return args, kwargs, message["headers"]


def _slots(farm, run_id: str) -> int:
    return int(farm.store.r.hget(farm.store.key(run_id, "slots"), "sim"))


def test_the_commit_pushes_the_successor_task_and_the_window_holds(farm):
    run_id, window, length = _run(farm, reps=10)
    queue = queue_name("sim")
    assert farm.store.r.llen(queue) == window == _slots(farm, run_id) == 4
    member = _member(farm, run_id, 0)
    attempt, holder, successor = farm.store.claim_with_successor(run_id, member, "w1", LEASE_MS, 0, length)
    assert (attempt, holder, successor) == (1, "", window)  # the cursor's next index
    assert farm.store.r.hget(next_key(run_id, "sim"), member) == str(window)

    message = farm.scheduler.message_for(run_id, "sim", successor)
    assert message is not None and message[0] == queue
    assert farm.store.r.llen(queue) == window  # prepared, not sent
    result, next_index = farm.store.commit_and_reserve(run_id, _record(farm, run_id, 0), window, length,
                                                       successor=successor, message=message)
    assert (result, next_index) == (1, -1)
    assert farm.store.r.llen(queue) == window + 1 and _slots(farm, run_id) == window
    assert farm.store.r.lindex(queue, 0) == message[1]
    assert farm.store.inflight(run_id, "sim")[f"#{successor}"].startswith("q|")
    assert member not in farm.store.inflight(run_id, "sim")
    assert not farm.store.r.hexists(next_key(run_id, "sim"), member)

    # the pushed message is the task a normal send makes for that index, slot included
    args, kwargs, headers = _task(message[1])
    item = farm.scheduler.manifest(run_id).expand().item("sim", successor)
    assert args == [run_id, "sim", item.snippet, item.rep]
    assert kwargs["slot"] == successor and kwargs["warmup"] is False and kwargs["enqueued_ns"] > 0
    assert headers["task"] == "farm.sample" and headers["shadow"] == task_title(run_id, item)
    farm.scheduler.dispatch_index(run_id, "sim", successor)  # the same item sent the ordinary way
    sent_args, sent_kwargs, sent_headers = _task(farm.store.raw.lindex(queue, 0))
    assert sent_args == args and sent_headers["timelimit"] == headers["timelimit"]
    assert {k: v for k, v in sent_kwargs.items() if k != "enqueued_ns"} == \
        {k: v for k, v in kwargs.items() if k != "enqueued_ns"}


def test_a_reclaimed_member_keeps_its_successor_and_only_the_first_commit_pushes(farm):
    run_id, window, length = _run(farm, reps=10)
    member = _member(farm, run_id, 0)
    _, _, successor = farm.store.claim_with_successor(run_id, member, "w1", LEASE_MS, 0, length)
    farm.store.r.delete(farm.store.key(run_id, f"lease:{member}"))  # w1 looks dead: its lease lapsed
    seen = farm.store.inflight(run_id, "sim")[member]
    assert farm.store.requeue_if_orphaned(run_id, "sim", member, seen)
    attempt, _, again = farm.store.claim_with_successor(run_id, member, "w2", LEASE_MS, None, length)
    assert (attempt, again) == (2, successor)
    assert farm.store.cursor(run_id, "sim") == window + 1  # no second index taken

    queue, before = queue_name("sim"), farm.store.r.llen(queue_name("sim"))
    message = farm.scheduler.message_for(run_id, "sim", successor)
    late = farm.store.commit_and_reserve(run_id, _record(farm, run_id, 0, "w1"), window, length,
                                         successor=successor, message=message)
    second = farm.store.commit_and_reserve(run_id, _record(farm, run_id, 0, "w2"), window, length,
                                           successor=successor, message=message)
    assert late == (1, -1) and second == (0, -1)  # exactly one sample, exactly one push
    assert farm.store.r.llen(queue) == before + 1
    assert farm.store.status(run_id).done == 1 and _slots(farm, run_id) == window


def test_without_the_message_the_commit_hands_the_successor_back_to_send(farm):
    run_id, window, length = _run(farm, reps=10)
    member = _member(farm, run_id, 1)
    _, _, successor = farm.store.claim_with_successor(run_id, member, "w1", LEASE_MS, 1, length)
    before = farm.store.r.llen(queue_name("sim"))
    assert farm.store.commit_and_reserve(run_id, _record(farm, run_id, 1), window, length,
                                         successor=successor, message=None) == (1, successor)
    assert farm.store.r.llen(queue_name("sim")) == before  # the caller sends it
    assert farm.store.inflight(run_id, "sim")[f"#{successor}"].startswith("q|")
    assert _slots(farm, run_id) == window


def test_past_the_plan_there_is_no_successor_the_slot_is_freed_and_the_run_finishes_clean(farm):
    run_id, window, length = _run(farm, reps=5)  # 5 items, window 4: one successor to hand out
    assert not farm.store.wait_finished(run_id, 0.05)  # a follower's tick: nothing to wake it yet
    successors = []
    for index in range(length):
        member = _member(farm, run_id, index)
        _, _, successor = farm.store.claim_with_successor(run_id, member, "w1", LEASE_MS, index, length)
        successors.append(successor)
        message = farm.scheduler.message_for(run_id, "sim", successor) if successor >= 0 else None
        farm.store.commit_and_reserve(run_id, _record(farm, run_id, index), window, length,
                                      successor=successor, message=message)
    assert successors == [4, -1, -1, -1, -1]
    status = farm.store.status(run_id)
    assert status.state == "finished" and status.done == length == 5
    assert not farm.store.r.exists(next_key(run_id, "sim"))
    assert farm.store.wait_finished(run_id, 5)  # the finishing commit wakes followers at once
    assert sorted(s["rep"] for s in farm.store.samples(run_id)) == [0, 1, 2, 3, 4]


def test_finalizing_an_incomplete_run_wakes_followers_too(farm):
    run_id, _, _ = _run(farm, reps=3)
    assert farm.store.finalize_incomplete(run_id, ["sim|hello|0"], 1, "test")
    assert farm.store.wait_finished(run_id, 5)


def test_a_claim_without_plan_length_names_no_successor(farm):
    run_id, window, length = _run(farm, reps=10)
    member = _member(farm, run_id, 0)
    assert farm.store.claim(run_id, member, "w1", LEASE_MS, 0) == (1, "")
    assert not farm.store.r.exists(next_key(run_id, "sim"))
    assert farm.store.commit_and_reserve(run_id, _record(farm, run_id, 0), window, length) == (1, window)


def test_the_commit_drops_the_sandboxes_its_attempt_destroyed_from_the_register(farm):
    run_id, window, length = _run(farm, reps=10)
    member = _member(farm, run_id, 0)
    farm.store.claim_with_successor(run_id, member, "w1", LEASE_MS, 0, length)
    for sandbox_id in ("sb-1", "sb-2", "sb-kept"):
        farm.store.register_sandbox(run_id, member, "w1", sandbox_id)
    farm.store.r.hset("farm:sandboxes:dead", "sb-1", 5)
    assert farm.store.commit_and_reserve(run_id, _record(farm, run_id, 0), window, length,
                                         destroyed=["sb-1", "sb-2"])[0] == 1
    assert [e.sandbox_id for e in farm.store.run_sandboxes(run_id)] == ["sb-kept"]
    assert farm.store.registered("sb-1") is None and farm.store.registered("sb-kept") is not None
    assert not farm.store.r.hexists("farm:sandboxes:dead", "sb-1")
    # a late duplicate's destroyed sandbox leaves the register too; its sample does not count
    farm.store.register_sandbox(run_id, member, "w2", "sb-late")
    assert farm.store.commit_and_reserve(run_id, _record(farm, run_id, 0, "w2"), window, length,
                                         destroyed=["sb-late"])[0] == 0
    assert farm.store.registered("sb-late") is None and farm.store.status(run_id).done == 1


def test_a_registration_sent_without_waiting_is_written_and_its_reply_read_later(farm):
    from farm.waiting import wait_until

    run_id, _, _ = _run(farm, reps=2)
    pool = farm.store.r.connection_pool
    sent = farm.store.register_sandbox_sent(run_id, _member(farm, run_id, 0), "w1", "sb-sent")
    wait_until(lambda: farm.store.registered("sb-sent") is not None, 30, "the sent registration")
    assert sent.wait() == [1]  # the register script: written
    assert sent.wait() == [] and sent.conn is None  # read once; the connection is back in the pool
    assert len(pool._in_use_connections) == 0


def test_a_registration_sent_for_a_run_whose_status_is_gone_writes_nothing(farm):
    run_id, _, _ = _run(farm, reps=2)
    farm.store.r.delete(farm.store.key(run_id, "status"))
    assert farm.store.register_sandbox_sent(run_id, "sim|hello|0", "w1", "sb-gone").wait() == [-3]
    assert farm.store.registered("sb-gone") is None


def test_a_sighting_for_a_run_whose_status_is_gone_writes_nothing(farm):
    run_id, _, _ = _run(farm, reps=2)
    assert farm.store.first_sighting(run_id, "sandbox:a", "one") is None
    assert farm.store.first_sighting(run_id, "sandbox:a", "two") == "one"
    farm.store.r.delete(farm.store.key(run_id, "status"), farm.store.key(run_id, "seen"))
    assert farm.store.first_sighting(run_id, "sandbox:a", "three") is None
    assert not farm.store.r.exists(farm.store.key(run_id, "seen"))
