"""Fault injection with real redis-server and real prefork worker processes."""

import time
from collections import Counter

from farm.store import member_key


def _members(samples):
    return Counter(member_key(s["provider"], s["snippet"], s["rep"], s["warmup"]) for s in samples)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkilled_worker_restarted_run_completes_exactly_once(farm):
    worker = farm.worker("local", concurrency=2)
    run_id = farm.start_run(["local"], farm.snippets("hello", "primes", "file_io"), repetitions=20)
    _wait_for(lambda: farm.store.status(run_id).done >= 10, 60, "10 samples")
    # Kill while samples are in flight: their leases are held by the dying processes.
    _wait_for(lambda: any(v.startswith("c|") for v in farm.store.inflight(run_id, "local").values()),
              10, "a claimed sample")
    worker.kill()
    done_at_kill = farm.store.status(run_id).done
    assert done_at_kill < 60

    time.sleep(1)
    assert farm.store.status(run_id).done == done_at_kill  # nobody is working now

    restarted_at = time.monotonic()
    farm.worker("local", concurrency=2)  # its own reconciler re-enqueues the dead worker's claims
    deadline = time.monotonic() + 90
    while farm.store.status(run_id).state != "finished":
        assert time.monotonic() < deadline, farm.store.status(run_id)
        time.sleep(0.2)
    recovery_s = time.monotonic() - restarted_at
    assert recovery_s < 60, f"run took {recovery_s:.1f}s to finish after the worker came back"

    samples = farm.store.samples(run_id)
    counts = _members(samples)
    assert len(samples) == 60 and len(counts) == 60 and set(counts.values()) == {1}
    assert all(s["outcome"] == "ok" for s in samples), [s["error"] for s in samples if s["error"]]
    assert max(s["attempt"] for s in samples) == 2  # the interrupted ones ran again, once
    st = farm.store.status(run_id)
    assert st.done == st.ok == 60 and st.failed == 0


def test_redis_restart_mid_run_loses_no_committed_sample(farm):
    farm.worker("local", concurrency=2)
    run_id = farm.start_run(["local"], farm.snippets("hello", "primes", "file_io"), repetitions=20)
    _wait_for(lambda: farm.store.status(run_id).done >= 10, 60, "10 samples")
    done_before_stop = farm.store.done_members(run_id)  # a commit racing the stop may add more
    farm.redis.stop()  # SIGTERM: redis-server fsyncs its AOF and exits
    farm.redis.start()
    deadline = time.monotonic() + 120
    while True:
        try:
            st = farm.store.status(run_id)
            if st.state == "finished":
                break
            farm.scheduler.reconcile_active(owner="test", every_ms=500)
        except Exception:  # the client reconnects on the next call
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert len(done_before_stop) >= 10
    samples = farm.store.samples(run_id)
    assert done_before_stop <= set(_members(samples))
    counts = _members(samples)
    assert len(samples) == 60 and len(counts) == 60 and set(counts.values()) == {1}
    assert all(s["outcome"] == "ok" for s in samples), [s["error"] for s in samples if s["error"]]


def test_deadline_finalizes_with_missing_members_named(tmp_path):
    from farm.testing import Farm

    with Farm(tmp_path, config={"defaults": {"deadline_s": 2}}) as farm:
        # No worker at all: nothing can complete, and the run must not hang forever.
        run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=3)
        status = farm.wait(run_id, timeout=30)
        assert status.state == "finished" and status.incomplete and status.done == 0
        assert status.missing_count == 3
        assert status.missing == ["local|hello|0", "local|hello|1", "local|hello|2"]
        assert "deadline" in status.finish_reason
        # A late worker cannot add samples to a finalized run.
        farm.worker("local", concurrency=1)
        time.sleep(2)
        assert farm.store.samples(run_id) == []
