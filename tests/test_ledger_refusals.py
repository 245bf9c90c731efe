"""The ledger's scripts check everything before their first write (issue 19, item 9): after FLUSHALL,
behind a fresh Redis, or over keys the farm never writes, a claim or commit is refused with a status
and leaves Redis exactly as it was. Real redis-server, the real Store; the worker path through a real
prefork worker."""

import time

from farm.store import RUN_GONE, WRONG_TYPE, member_key
from farm.waiting import wait_until


def _sample(rep=0, outcome="ok"):
    return {"provider": "sim", "snippet": "hello", "rep": rep, "warmup": False, "attempt": 1,
            "worker": "test:1", "outcome": outcome, "retries": 0, "started_ns": time.time_ns(),
            "exit_code": 0, "output": "hi\n", "create_ms": 1.0, "run_ms": 2.0, "destroy_ms": 3.0,
            "total_ms": 6.0}


def _dump(store):
    """Every key with its type and serialized value: equal dumps = nothing was written."""
    r = store.raw
    return {key: (r.type(key), r.dump(key)) for key in r.scan_iter("*", count=1000)}


def _created_run(farm):
    return farm.start_run(["sim"], farm.snippets("hello"), repetitions=3)


def test_commit_and_claim_after_flushall_write_nothing(farm):
    run_id = _created_run(farm)
    farm.store.raw.flushall()
    member = member_key("sim", "hello", 0, False)
    assert farm.store.commit_and_reserve(run_id, _sample(), window=2, plan_length=3) == (RUN_GONE, -1)
    assert farm.store.commit(run_id, _sample(1, "error")) == RUN_GONE
    assert farm.store.claim(run_id, member, "test:1", 15_000, slot=0) == (RUN_GONE, "")
    # the worker's other per-run writes need their run too
    assert farm.store.file_provider_facts(run_id, "sim", {"sdk": "x"}) is False
    farm.store.register_sandbox(run_id, member, "test:1", "sb-1")
    assert farm.store.first_sighting(run_id, "sandbox:sb-1", "{}") is None
    assert farm.store.raw.dbsize() == 0, sorted(farm.store.raw.scan_iter("*"))


def test_commit_behind_a_fresh_redis_holding_other_runs_leaves_it_unchanged(farm):
    """A fresh Redis behind the same URL that already holds another run: the unknown run's commit
    touches neither that run's keys nor the farm-wide ones."""
    gone = _created_run(farm)
    farm.store.raw.flushall()
    other = _created_run(farm)
    assert farm.store.commit(other, _sample(0)) == 1  # the other run is live and committing
    before = _dump(farm.store)
    assert farm.store.commit_and_reserve(gone, _sample(1), window=2, plan_length=3) == (RUN_GONE, -1)
    assert farm.store.claim(gone, member_key("sim", "hello", 1, False), "test:1", 15_000, slot=1) == (RUN_GONE, "")
    assert _dump(farm.store) == before


def test_keys_the_farm_never_writes_are_refused_before_any_write(farm):
    run_id = _created_run(farm)
    store, r = farm.store, farm.store.raw
    r.delete(store.key(run_id, "done"))
    r.set(store.key(run_id, "done"), "not a set")  # a key of the wrong type: SADD would fail mid-script
    before = _dump(store)
    assert store.commit(run_id, _sample(0)) == WRONG_TYPE
    assert store.claim(run_id, member_key("sim", "hello", 0, False), "test:1", 15_000) == (WRONG_TYPE, "")
    assert _dump(store) == before
    r.delete(store.key(run_id, "done"))
    r.hset(store.key(run_id, "status"), "done", "many")  # HINCRBY would fail after SADD and XADD
    before = _dump(store)
    assert store.commit(run_id, _sample(0)) == WRONG_TYPE
    assert _dump(store) == before


def test_a_worker_whose_run_is_flushed_mid_sample_logs_one_line_writes_nothing_and_lives(tmp_path):
    from tests.harness import Farm

    config = {"providers": {"sim": {"run": {"dist": "fixed", "ms": 4000}}}}
    with Farm(tmp_path, config) as farm:
        worker = farm.worker("sim", concurrency=1)
        run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=1, concurrency=1)
        lease = farm.store.key(run_id, f"lease:{member_key('sim', 'hello', 0, False)}")
        wait_until(lambda: farm.store.r.exists(lease), 120, "the worker to claim the sample")
        farm.store.raw.flushall()
        line = "refused, nothing written"
        wait_until(lambda: line in worker.log(), 120, "the worker to report the refused commit")
        refused = [ln for ln in worker.log().splitlines() if line in ln]
        assert len(refused) == 1 and run_id in refused[0] and "emptied by FLUSHALL" in refused[0], refused
        assert "Traceback" not in worker.log() and "attempt to compare nil" not in worker.log()
        assert list(farm.store.r.scan_iter(f"farm:run:{run_id}*")) == []
        assert worker.proc.poll() is None  # the worker lives on and keeps its heartbeat
        wait_until(lambda: any(k.startswith(worker.name) for k in farm.store.live_workers()), 60,
                   "the worker's heartbeat to come back after FLUSHALL")
