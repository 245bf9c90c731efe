"""Redis full (maxmemory + noeviction) mid-run, worker side (issue 19, item 8): no worker process
dies of it. Its main process takes a message and Redis refuses kombu's unacked write; its pool
children finish samples and Redis refuses their commit. Both wait for room, the background threads
keep going, and once memory frees every sample is committed exactly once. Real redis-server, real
prefork worker processes."""

import os
import signal

from farm.store import member_key
from farm.waiting import wait_until
from tests.harness import Farm


def _full(farm):
    farm.store.raw.config_set("maxmemory-policy", "noeviction")
    farm.store.raw.config_set("maxmemory", 1)  # every write that needs memory is refused


def _room(farm):
    farm.store.raw.config_set("maxmemory", 0)


def _oom_refusals(farm):
    """How many commands Redis has refused for want of memory (INFO errorstats)."""
    return int(farm.store.raw.info("errorstats").get("errorstat_OOM", {}).get("count", 0))


def _exactly_once(farm, run_id, planned):
    status = farm.wait(run_id, timeout=180)
    assert status.done == planned and status.ok == planned, status
    members = [member_key(s["provider"], s["snippet"], s["rep"], s["warmup"])
               for s in farm.store.samples(run_id)]
    assert len(members) == len(set(members)) == planned


def test_main_process_survives_redis_full_when_it_takes_a_message(tmp_path):
    """The worker's main process pops a task while Redis is full: kombu's write of the unacked
    entry is refused. It used to exit ("Unrecoverable error: OutOfMemoryError")."""
    config = {"providers": {"sim": {"run": {"dist": "fixed", "ms": 5}}}, "defaults": {"lost_after_s": 2}}
    with Farm(tmp_path, config) as farm:
        worker = farm.worker("sim", concurrency=2)
        main = worker.proc.pid
        os.kill(main, signal.SIGSTOP)  # idle, blocked in BRPOP: the run's messages wait for it
        try:
            run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=6, concurrency=2)
            _full(farm)
        finally:
            os.kill(main, signal.SIGCONT)  # it takes a message and Redis refuses to record it
        try:
            said = "the worker takes no task until it has room"
            wait_until(lambda: said in worker.log() or worker.proc.poll() is not None, 120,
                       "the worker's main process to meet Redis full")
            assert worker.proc.poll() is None, worker.log()[-3000:]
            # It keeps retrying, alive, while Redis stays full: one line for the episode, no
            # tracebacked restart storm.
            refused = _oom_refusals(farm)
            wait_until(lambda: _oom_refusals(farm) > refused or worker.proc.poll() is not None, 120,
                       "the consumer to retry while Redis is full")
            assert worker.proc.poll() is None, worker.log()[-3000:]
            assert worker.log().count(said) == 1 and "Frequent restarts" not in worker.log()
        finally:
            _room(farm)
        _exactly_once(farm, run_id, 6)  # the popped message is re-sent by the reconciler
        assert "Unrecoverable error" not in worker.log()
        assert worker.proc.poll() is None
        # the heartbeat thread survived (its beats had lapsed while Redis was full)
        wait_until(lambda: any(k.startswith(worker.name) for k in farm.store.live_workers()), 60,
                   "the worker's heartbeat after Redis had room again")


def test_pool_children_hold_their_commit_until_redis_has_room(tmp_path):
    """Samples that run while Redis is full wait for room (to file their facts, to commit) and
    are committed once it has room, by the same execution (it keeps its lease): no failure is
    recorded for the farm's own Redis, no sample is re-run."""
    config = {"providers": {"sim": {"run": {"dist": "fixed", "ms": 1500}}}}
    with Farm(tmp_path, config) as farm:
        worker = farm.worker("sim", concurrency=2)
        run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=4, concurrency=2)
        lease0 = farm.store.key(run_id, f"lease:{member_key('sim', 'hello', 0, False)}")
        wait_until(lambda: farm.store.r.exists(lease0), 120, "the first sample to be claimed")
        _full(farm)
        try:
            wait_until(lambda: "waits for room" in worker.log() or worker.proc.poll() is not None,
                       120, "a sample to wait for room (its facts or its commit)")
            assert worker.proc.poll() is None, worker.log()[-3000:]
            assert farm.store.status(run_id).done == 0  # nothing was half-written
        finally:
            _room(farm)
        _exactly_once(farm, run_id, 4)
        log = worker.log()
        assert "Redis has room again" in log and "went through" in log
        assert "Traceback" not in log and "Unrecoverable error" not in log
        samples = farm.store.samples(run_id)
        assert all(s["attempt"] == 1 for s in samples), [s["attempt"] for s in samples]  # no re-run


def test_kombus_refused_binding_refresh_is_one_line_not_a_traceback():
    """kombu logs a binding refresh refused by a full Redis with its traceback (timing decides
    whether a run meets it); the worker makes it one line naming the reason."""
    import io
    import logging

    import redis

    import farm.worker_consumer  # noqa: F401 - installs the filter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("kombu.transport.redis")
    logger.addHandler(handler)
    try:
        try:
            raise redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        except redis.exceptions.OutOfMemoryError:
            logger.warning("maybe_refresh_binding_expiry: Redis error, will retry", exc_info=True)
        try:
            raise redis.exceptions.ResponseError("NOSCRIPT")
        except redis.exceptions.ResponseError:  # any other error keeps its traceback
            logger.warning("maybe_refresh_binding_expiry: Redis error, will retry", exc_info=True)
    finally:
        logger.removeHandler(handler)
    first, *rest = out.getvalue().splitlines()
    assert first == "maybe_refresh_binding_expiry: Redis error, will retry: Redis is full (maxmemory, noeviction)"
    assert rest[0] == "maybe_refresh_binding_expiry: Redis error, will retry" and "Traceback" in rest[1]
