"""Fault injection with real redis-server and real prefork worker processes."""

import time
from collections import Counter

from farm.celery_app import queue_name
from farm.store import member_key
from farm.waiting import wait_until


def _members(samples):
    return Counter(member_key(s["provider"], s["snippet"], s["rep"], s["warmup"]) for s in samples)


def _wait_for(predicate, timeout, what):
    """A deadline for a loaded machine, never a window: returns as soon as ``predicate`` holds."""
    return wait_until(predicate, timeout, what, every=0.05)


def test_sigkilled_worker_restarted_run_completes_exactly_once(tmp_path):
    from farm.ops import sweep
    from tests.harness import Farm

    root = tmp_path / "sandboxes"
    root.mkdir()
    with Farm(tmp_path, config={"providers": {"local": {"root": str(root)}}}) as farm:
        _sigkill_and_recover(farm, root, sweep)


def _sigkill_and_recover(farm, root, sweep):
    from farm.snippets import parse_snippet

    # A snippet that naps makes "killed mid-sample" certain rather than a matter of timing.
    nap = parse_snippet('# /// farm\n# name = "nap"\n# ///\nimport time\ntime.sleep(0.4)\n', "nap.py")
    worker = farm.worker("local", concurrency=2)
    run_id = farm.start_run(["local"], [*farm.snippets("hello", "primes"), nap], repetitions=20)
    _wait_for(lambda: farm.store.status(run_id).done >= 10, 180, "10 samples")
    _wait_for(lambda: any(v.startswith("c|") and "|nap|" in m
                          for m, v in farm.store.inflight(run_id, "local").items()), 30, "a napping sample")
    worker.kill()
    time.sleep(0.5)  # a commit the dying process had already sent lands now, or never
    interrupted = {m for m, v in farm.store.inflight(run_id, "local").items() if v.startswith("c|")}
    done_at_kill = farm.store.status(run_id).done
    assert 1 <= len(interrupted) <= 2 and done_at_kill < 60

    time.sleep(1)
    assert farm.store.status(run_id).done == done_at_kill  # nobody is working now

    restarted_at = time.monotonic()
    farm.worker("local", concurrency=2)  # its own reconciler re-enqueues the dead worker's claims
    # The point is that recovery does not wait for the 3600 s visibility timeout (leases lapse in
    # 15 s); the bound is far below that and far above what a loaded machine needs.
    try:
        _wait_for(lambda: farm.store.status(run_id).state == "finished", 330, "the run to finish")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {farm.store.status(run_id)}") from None
    recovery_s = time.monotonic() - restarted_at
    assert recovery_s < 300, f"run took {recovery_s:.1f}s to finish after the worker came back"

    samples = farm.store.samples(run_id)
    counts = _members(samples)
    assert len(samples) == 60 and len(counts) == 60 and set(counts.values()) == {1}
    assert all(s["outcome"] == "ok" for s in samples), [s["error"] for s in samples if s["error"]]
    again = {m for m, s in zip(_members_in_order(samples), samples) if s["attempt"] == 2}
    assert again == interrupted and max(s["attempt"] for s in samples) == 2  # ran again, once
    st = farm.store.status(run_id)
    assert st.done == st.ok == 60 and st.failed == 0
    # The killed samples' sandboxes were never destroyed: a sweep finds exactly those and reclaims them.
    leaked = sorted(p.name for p in root.iterdir())
    assert 1 <= len(leaked) <= len(interrupted)
    (result,) = sweep(farm.config, ["local"], run_id=run_id, store=farm.store)
    assert len(result.deleted) == len(leaked) and not result.error
    assert list(root.iterdir()) == []


def _members_in_order(samples):
    return [member_key(s["provider"], s["snippet"], s["rep"], s["warmup"]) for s in samples]


def test_redis_restart_mid_run_loses_no_committed_sample(farm):
    farm.worker("local", concurrency=2)
    run_id = farm.start_run(["local"], farm.snippets("hello", "primes", "file_io"), repetitions=20)
    _wait_for(lambda: farm.store.status(run_id).done >= 10, 180, "10 samples")
    done_before_stop = farm.store.done_members(run_id)  # a commit racing the stop may add more
    farm.redis.stop()  # SIGTERM: redis-server fsyncs its AOF and exits
    farm.redis.start()

    def finished() -> bool:
        try:
            if farm.store.status(run_id).state == "finished":
                return True
            farm.scheduler.reconcile_active(owner="test", every_ms=500)
        except Exception:  # the client reconnects on the next call
            pass
        return False

    _wait_for(finished, 120, "the run to finish after the Redis restart")
    assert len(done_before_stop) >= 10
    samples = farm.store.samples(run_id)
    assert done_before_stop <= set(_members(samples))
    counts = _members(samples)
    assert len(samples) == 60 and len(counts) == 60 and set(counts.values()) == {1}
    assert all(s["outcome"] == "ok" for s in samples), [s["error"] for s in samples if s["error"]]


def test_deadline_finalizes_with_missing_members_named(tmp_path):
    from tests.harness import Farm

    with Farm(tmp_path, config={"defaults": {"deadline_s": 2}}) as farm:
        # No worker at all: nothing can complete, and the run must not hang forever.
        run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=3)
        status = farm.wait(run_id, timeout=120)
        assert status.state == "finished" and status.incomplete and status.done == 0
        assert status.missing_count == 3
        assert status.missing == ["local|hello|0", "local|hello|1", "local|hello|2"]
        assert "deadline" in status.finish_reason
        from farm.report import build_document

        doc = build_document(farm.store, run_id)
        assert doc["status"]["incomplete"] and doc["status"]["missing_count"] == 3
        assert doc["warnings"][0].startswith("run finished incomplete (deadline of 2 s passed): 3 sample(s) missing: local|hello|0")
        # A late worker cannot add samples to a finalized run.
        # Whatever was queued for the run must have reached the worker and been refused: wait until
        # the queue and the unacked set are empty (a condition, not a window a loaded machine misses).
        queued_at_start = farm.store.r.llen(queue_name("local"))
        assert queued_at_start >= 1  # there is something for the late worker to refuse
        farm.worker("local", concurrency=1)
        _wait_for(lambda: farm.store.r.llen(queue_name("local")) == 0 and not farm.store.r.hlen("unacked"),
                  120, "the late worker to drain the queue")
        assert farm.store.samples(run_id) == [] and farm.store.status(run_id).done == 0


def _ctrl_c_answered():
    """In the child: SIGINT back to its default, so Python turns it into KeyboardInterrupt even when
    pytest itself was started in the background of a non-interactive shell (SIGINT ignored, inherited)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_the_run_and_farm_watch_finishes_it(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    import redis as redis_lib

    from farm.store import Store
    from tests.harness import farm_cli

    proc = subprocess.Popen([sys.executable, "-m", "farm", "run", "--snippets", "primes", "-n", "40",
                             "--warmup", "0", "-c", "1"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_answered)
    sock = tmp_path / ".farm" / "redis.sock"
    _wait_for(sock.exists, 120, "embedded redis")  # deadlines, not windows: generous under load
    store = Store(redis_lib.Redis(unix_socket_path=str(sock), decode_responses=True))

    def some_progress_and_not_all():
        # Ctrl-C must land mid-run: some samples committed (the run exists and works) and most not
        # (37 more primes at -c 1 cannot finish between this check and the signal).
        if proc.poll() is not None:
            raise AssertionError(f"farm run exited {proc.returncode} before the signal: {proc.stderr.read()}")
        runs = store.recent_runs(1)
        if not runs:
            return False
        st = store.status(runs[0])
        assert st.state != "finished", f"the run finished before the signal could interrupt it: {st}"
        return 3 <= st.done < 40

    _wait_for(some_progress_and_not_all, 180, "3 samples")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: run" in err and "farm watch" in err and "Traceback" not in err
    run_id = err.split("interrupted: run ")[1].split()[0]  # the embedded redis is stopped by now

    watched = farm_cli("watch", run_id, "--json", cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    doc = json.loads(watched.stdout)
    assert doc["status"]["state"] == "finished" and doc["status"]["done"] == 40
    csv_out = farm_cli("report", run_id, "--format", "csv", cwd=tmp_path)
    import csv as csv_lib
    import io
    rows = list(csv_lib.DictReader(io.StringIO(csv_out.stdout)))
    assert sorted(int(r["rep"]) for r in rows) == list(range(40))  # each repetition exactly once


def test_injected_transient_and_permanent_failures_are_classified_and_nothing_leaks(tmp_path):
    """The sim provider fails 30% of calls (429, 5xx, network, timeout): retries are logged, the
    run completes, every failure is classified, and its error counts match the injections."""
    import json

    from farm.aggregate import aggregate
    from tests.harness import Farm

    ledger = tmp_path / "ledger"
    settings = {"seed": 7, "ledger_dir": str(ledger), "fail_phases": ["create", "run"],
                "create": {"dist": "fixed", "ms": 2}, "run": {"dist": "fixed", "ms": 2},
                "failures": {"rate_limited": 0.1, "provider_error": 0.1, "network": 0.05, "timeout": 0.05}}
    config = {"providers": {"sim": settings}, "defaults": {"retries": 1, "backoff_s": 0.01}}
    with Farm(tmp_path, config=config) as farm:
        farm.worker("sim", concurrency=2)
        run_id = farm.start_run(["sim"], farm.snippets("hello", "primes"), repetitions=100)
        farm.wait(run_id, timeout=120)
        samples = farm.store.samples(run_id)
    assert len(samples) == 200
    events = [json.loads(line) for p in ledger.glob("events-*.jsonl") for line in p.read_text().splitlines()]
    injected = [e for e in events if e["event"] == "injected"]
    created = {e["id"] for e in events if e["event"] == "created"}
    destroyed = {e["id"] for e in events if e["event"] == "destroyed"}
    assert created and created == destroyed  # every sandbox that existed was destroyed
    assert 60 < len(injected) < 220  # ~30% of ~2.3 calls per sample

    # Each injection either was retried (logged in the sample) or ended the sample with its class.
    by_sample: dict[tuple, list] = {}
    for e in injected:
        by_sample.setdefault((e["labels"]["farm-snippet"], int(e["labels"]["farm-rep"])), []).append(e)
    failed = [s for s in samples if s["outcome"] != "ok"]
    assert {s["error_class"] for s in failed} <= {"rate_limited", "provider_error", "network", "timeout"}
    for s in samples:
        seen = by_sample.get((s["snippet"], s["rep"]), [])
        logged = s["retry_log"] or []
        assert len(seen) == len(logged) + (s["outcome"] != "ok")
        assert [x["class"] for x in logged] == [e["error_class"] for e in seen[:len(logged)]]
        if s["outcome"] != "ok":
            assert s["error_class"] == seen[-1]["error_class"] and s["error_phase"] == seen[-1]["phase"]
            assert s["outcome"] == ("timeout" if s["error_class"] == "timeout" else "error")
        for entry in logged:  # only transient classes are retried
            assert entry["class"] in {"rate_limited", "provider_error", "network"}
    rows = {r.snippet: r for r in aggregate(samples).rows if r.phase == "total"}
    for snippet in ("hello", "primes"):
        expected = sum(1 for s in failed if s["snippet"] == snippet)
        assert rows[snippet].errors == expected and rows[snippet].error_rate == expected / 100


def test_task_longer_than_visibility_timeout_still_gives_one_sample(tmp_path, monkeypatch):
    """Redis re-delivers an unacked message after the visibility timeout even while it runs; the
    lease makes the second delivery stand down, so there is still exactly one sample."""
    from tests.harness import Farm

    monkeypatch.setenv("FARM_VISIBILITY_TIMEOUT_S", "2")  # this process and the workers alike
    config = {"providers": {"sim": {"run": {"dist": "fixed", "ms": 7000}}}}
    with Farm(tmp_path, config=config) as farm:
        assert farm.app.conf.broker_transport_options["visibility_timeout"] == 2
        farm.worker("sim", concurrency=2)
        run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=1, concurrency=1)
        status = farm.wait(run_id, timeout=180)
        samples = farm.store.samples(run_id)
        log = "\n".join(w.log() for w in farm.workers)
    assert status.done == 1 and len(samples) == 1
    (s,) = samples
    assert s["outcome"] == "ok" and s["attempt"] == 1 and s["run_ns"] >= 7e9
    assert "held-by" in log  # the redelivered copy ran, found the lease held, and stood down


def test_sigkill_mid_run_over_300_samples_every_repetition_exactly_once(tmp_path):
    from tests.harness import Farm

    # lost_after_s: a task the killed worker had fetched but not yet claimed is re-sent this soon
    config = {"providers": {"sim": {"run": {"dist": "fixed", "ms": 15}}}, "defaults": {"lost_after_s": 5}}
    with Farm(tmp_path, config=config) as farm:
        worker = farm.worker("sim", concurrency=4)
        run_id = farm.start_run(["sim"], farm.snippets("hello", "primes", "file_io"), repetitions=100,
                                concurrency=4)
        _wait_for(lambda: farm.store.status(run_id).done >= 100, 180, "100 samples")
        worker.kill()
        assert farm.store.status(run_id).done < 300
        farm.worker("sim", concurrency=4)
        status = farm.wait(run_id, timeout=120)
        samples = farm.store.samples(run_id)
    counts = _members(samples)
    assert status.done == 300 and len(samples) == 300 and len(counts) == 300
    assert set(counts.values()) == {1} and all(s["outcome"] == "ok" for s in samples)


def test_bad_tasks_never_crash_a_worker(farm):
    """Garbage on the queue (wrong arguments, unknown runs, other providers' work) is refused and
    the same worker goes on to complete a real run."""
    worker = farm.worker("local", concurrency=1)
    queue = "farm.local"
    farm.app.send_task("farm.sample", args=["no-such-run", "local", "hello", 0], queue=queue)
    farm.app.send_task("farm.sample", args=["too", "few"], queue=queue)
    farm.app.send_task("farm.sample", args=[None, None, None, "x"], queue=queue)
    farm.app.send_task("farm.sample", kwargs={"bogus": 1}, queue=queue)
    farm.app.send_task("farm.unknown_task", args=[1], queue=queue)
    run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=3)
    farm.app.send_task("farm.sample", args=[run_id, "e2b", "hello", 0], queue=queue)  # wrong queue
    status = farm.wait(run_id, timeout=180)
    assert status.done == status.ok == 3 and worker.proc.poll() is None
    assert {s["provider"] for s in farm.store.samples(run_id)} == {"local"}
