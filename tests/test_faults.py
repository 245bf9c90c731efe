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
