"""The farm's own benchmarks, each beside a reference measured in the same run.

    .venv/bin/python -m bench            # everything (several minutes on 2 cores)
    .venv/bin/python -m bench --quick    # smaller sizes, for a smoke check
    .venv/bin/python -m bench --only dispatch,memory

Prints one table of figures and ratios and writes bench/results.json. Targets (issue 8) are printed
next to each figure; a miss is reported, never hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench import NOOP_COUNTER
from farm.aggregate import aggregate_run
from farm.celery_app import queue_name
from farm.embedded import spawn_worker, stop_process_groups
from farm.snippets import library
from farm.store import Store
from farm.waiting import wait_until
from tests.harness import Farm

RESULTS: list[dict[str, Any]] = []


def record(name: str, figure: float, unit: str, reference: float | None = None, ratio: float | None = None,
           target: str = "", met: bool | None = None, note: str = "") -> None:
    RESULTS.append({"bench": name, "figure": figure, "unit": unit, "reference": reference, "ratio": ratio,
                    "target": target, "met": met, "note": note})
    verdict = "" if met is None else ("  ✓" if met else "  ✗ MISSED")
    ref = f"  ref {reference:,.2f}" if reference is not None else ""
    rat = f"  ratio {ratio:.3f}" if ratio is not None else ""
    print(f"{name:44} {figure:>12,.2f} {unit:10}{ref}{rat}  {target}{verdict}  {note}", flush=True)


def _wait(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> None:
    wait_until(predicate, timeout, "benchmark step", poll)


def _worker_process(url: str, app: str, queue: str, concurrency: int, log: Path) -> subprocess.Popen:
    return spawn_worker(url, queue.removeprefix("farm."), concurrency, log, app=app, queue=queue,
                        name=f"bench-{queue}@%h")


def _stop(proc: subprocess.Popen) -> None:
    stop_process_groups([proc])


def bench_dispatch(tmp: Path, n: int, concurrency: int = 2) -> None:
    """Farm samples/s on a no-op (sim, zero durations) vs bare Celery no-ops/s, same broker."""
    with Farm(tmp / "dispatch", config={"providers": {"sim": {}}}) as farm:
        bare = _worker_process(farm.url, "bench.bare_app", "bench.noop", concurrency, tmp / "bare.log")
        time.sleep(3)  # let the bare worker boot
        start = time.perf_counter()
        for i in range(n):
            farm.app.send_task("bench.noop", args=[i], queue="bench.noop")
        _wait(lambda: farm.store.counter(NOOP_COUNTER) >= n, 600)
        bare_rate = n / (time.perf_counter() - start)
        _stop(bare)

        farm.worker("sim", concurrency=concurrency)
        hello = library()["hello"]
        start = time.perf_counter()
        run_id = farm.start_run(["sim"], [hello], repetitions=n, concurrency=concurrency)
        _wait(lambda: farm.store.status(run_id).state == "finished", 600)
        farm_rate = n / (time.perf_counter() - start)
    ratio = farm_rate / bare_rate
    record(f"dispatch: samples/s (n={n}, c={concurrency})", farm_rate, "tasks/s", bare_rate, ratio,
           "≥ 0.7× bare Celery", ratio >= 0.7)


def bench_scheduling(tmp: Path, n: int, concurrencies: list[int], run_ms: float) -> None:
    """Makespan of a sim plan with fixed phase times vs the ideal n × time ÷ C."""
    for c in concurrencies:
        settings = {"run": {"dist": "fixed", "ms": run_ms}}
        with Farm(tmp / f"sched-{c}", config={"providers": {"sim": settings}}) as farm:
            farm.worker("sim", concurrency=c)
            hello = library()["hello"]
            start = time.perf_counter()
            run_id = farm.start_run(["sim"], [hello], repetitions=n, concurrency=c)
            _wait(lambda: farm.store.status(run_id).state == "finished", 1800)
            makespan = time.perf_counter() - start
        ideal = n * run_ms / 1000 / c
        eff = ideal / makespan
        record(f"scheduling: efficiency (n={n}, {run_ms:g} ms, C={c})", eff, "ideal/act", ideal, makespan / ideal,
               "≥ 0.9", eff >= 0.9, f"makespan {makespan:.1f} s")


def bench_fidelity(tmp: Path, n: int) -> None:
    """The local provider's run phase for `hello` vs the same sandboxed invocation (same argv and
    environment) timed by a bare perf_counter loop, run on the same machine state (Redis and the
    idle worker still up); and what the sandbox costs: vs the unconfined argv and a plain `python -c`."""
    from providers.base import SandboxSpec
    from providers.local import LocalProvider

    hello = library()["hello"]
    blocks = 5  # farm and references alternate in blocks, so all see the same machine over time
    farm_ms: list[float] = []
    refs: dict[str, list[float]] = {"same": [], "unconfined": [], "plain": []}
    with Farm(tmp / "fidelity") as farm:
        farm.worker("local", concurrency=1)
        confined, bare = LocalProvider({}), LocalProvider({"confine": "none"})
        boxes = {p: p.create(SandboxSpec(labels={})) for p in (confined, bare)}
        commands = {"same": (confined, confined.confine.argv(boxes[confined].handle, hello.code, "run")),
                    "unconfined": (bare, bare.confine.argv(boxes[bare].handle, hello.code, "run")),
                    "plain": (bare, [sys.executable, "-c", hello.code])}
        try:
            for _block in range(blocks):
                run_id = farm.start_run(["local"], [hello], repetitions=n // blocks, warmup=0, concurrency=1)
                _wait(lambda: farm.store.status(run_id).state == "finished", 600, poll=0.5)
                farm_ms += [s["run_ns"] / 1e6 for s in farm.store.samples(run_id) if s["run_ns"]]
                for _ in range(n // blocks):
                    for name, (provider, cmd) in commands.items():
                        box = boxes[provider].handle
                        start = time.perf_counter_ns()
                        subprocess.run(cmd, cwd=provider.confine.cwd(box), env=provider.environment(box, {}),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                        refs[name].append((time.perf_counter_ns() - start) / 1e6)
        finally:
            for provider, box in boxes.items():
                provider.destroy(box)
    farm_med = statistics.median(farm_ms)
    same_med, bare_med, plain_med = (statistics.median(refs[k]) for k in ("same", "unconfined", "plain"))
    ratio = farm_med / same_med
    record(f"fidelity: local run phase median (n={n})", farm_med, "ms", same_med, ratio,
           "within 5% of reference", abs(ratio - 1) <= 0.05,
           f"reference: same argv and env in a bare loop; {confined.confinement}")
    record("fidelity: sandbox vs unconfined argv", same_med, "ms", bare_med, same_med / bare_med, "", None,
           f"what the sandbox adds: {same_med - bare_med:+.2f} ms per execution (confine: none = prlimit only)")
    record("fidelity: unconfined argv vs plain python -c", bare_med, "ms", plain_med, bare_med / plain_med,
           "", None, "what prlimit costs")


def _synthetic_sample(i: int, rng: random.Random) -> dict[str, Any]:
    phases = {f"{p}_ns": int(rng.lognormvariate(17, 0.4)) for p in ("queue", "create", "ready", "run",
                                                                  "destroy", "total")}
    return {"v": 1, "provider": "sim", "snippet": "hello", "rep": i, "warmup": False, "attempt": 1,
            "worker": "bench:1", "outcome": "ok", "retries": 0, "started_ns": time.time_ns(),
            "exit_code": 0, "output": "simulated\n", **phases}


def _load_samples(store: Store, run_id: str, n: int, via_commit: bool) -> None:
    rng = random.Random(1)
    store.create_run(run_id, {"run_id": run_id, "plan": {"providers": ["sim"], "snippets": ["hello"],
                                                         "repetitions": n, "warmup": 0}}, n)
    batch = 5000
    for start in range(0, n, batch):
        pipe = store.pipeline()
        for i in range(start, min(start + batch, n)):
            sample = _synthetic_sample(i, rng)
            if via_commit:
                store.commit_and_reserve(run_id, sample, client=pipe)  # the real commit script
            else:
                store.append_unchecked(run_id, sample, client=pipe)
        pipe.execute()


def bench_memory(tmp: Path, n: int) -> None:
    """Redis used_memory delta per committed sample (real commit script), during and after a run."""
    with Farm(tmp / "memory") as farm:
        farm.store.purge_memory()
        before = farm.store.used_memory()
        _load_samples(farm.store, "memrun", n, via_commit=True)
        finished = farm.store.status("memrun").state == "finished"
        after = farm.store.used_memory()
    per = (after - before) / n
    record(f"memory: Redis bytes per sample (n={n})", per, "bytes", None, None, "≤ 200", per <= 200,
           f"run finished={finished} (done set dropped at finish)")


def bench_bounded_broker(tmp: Path, n: int) -> None:
    """A huge sim plan never puts more than its window of messages into Redis."""
    with Farm(tmp / "bounded", config={"providers": {"sim": {}}}) as farm:
        hello = library()["hello"]
        before = farm.store.used_memory()
        start = time.perf_counter()
        run_id = farm.start_run(["sim"], [hello], repetitions=n, concurrency=8)
        enqueue_s = time.perf_counter() - start
        farm.worker("sim", concurrency=8)
        peak_len, peak_mem = 0, 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            peak_len = max(peak_len, farm.store.queue_length(queue_name("sim")))
            peak_mem = max(peak_mem, farm.store.used_memory() - before)
            time.sleep(0.05)
        done = farm.store.status(run_id).done
    record(f"bounded broker: queued msgs, plan of {n:,}", peak_len, "messages", None, None,
           "bounded by window (16)", peak_len <= 16, f"created in {enqueue_s * 1000:.0f} ms; {done} done in 10 s")
    record(f"bounded broker: Redis growth, plan of {n:,}", peak_mem / 1e6, "MB", None, None, "≤ 10 MB queued",
           peak_mem <= 10e6, "includes the samples committed meanwhile")


def bench_aggregation(tmp: Path, sizes: list[int]) -> None:
    """Samples/s from Redis to percentile table vs numpy on the same values already in memory."""
    with Farm(tmp / "agg") as farm:
        for n in sizes:
            run_id = f"agg{n}"
            _load_samples(farm.store, run_id, n, via_commit=False)
            start = time.perf_counter()
            result = aggregate_run(farm.store, run_id)
            farm_s = time.perf_counter() - start
            batches = list(farm.store.iter_batches(run_id))
            values = {p: np.concatenate([b.column(f"{p}_ns") for b in batches])
                      for p in ("create", "ready", "run", "destroy", "total", "queue")}
            del batches
            start = time.perf_counter()
            for arr in values.values():
                np.percentile(arr, [50, 90, 95, 99])
            numpy_s = time.perf_counter() - start
            assert result.rows and result.rows[0].n == n
            record(f"aggregation: Redis → table (n={n:,})", n / farm_s, "samples/s", n / numpy_s,
                   numpy_s / farm_s, "10^6 in < 5 s" if n >= 10**6 else "", (farm_s < 5) if n >= 10**6 else None,
                   f"{farm_s:.2f} s")
            farm.store.delete_samples(run_id)
    _bench_sketch_merge()


def _bench_sketch_merge(count: int = 1000, per_sketch: int = 1000) -> None:
    """Merging 1,000 serialized worker sketches (what the aggregator does for a huge run) vs
    building one sketch from all their raw values already in memory."""
    from farm.sketch import LatencySketch

    rng = np.random.default_rng(1)
    chunks = [rng.lognormal(np.log(50), 0.4, per_sketch) for _ in range(count)]
    blobs = []
    for chunk in chunks:
        sk = LatencySketch()
        sk.add_many(chunk)
        blobs.append(sk.to_json())
    start = time.perf_counter()
    merged = LatencySketch()
    for blob in blobs:
        merged.merge(LatencySketch.from_json(blob))
    p99 = merged.quantile(0.99)
    merge_s = time.perf_counter() - start
    start = time.perf_counter()
    direct = LatencySketch()
    direct.add_many(np.concatenate(chunks))
    direct.quantile(0.99)
    direct_s = time.perf_counter() - start
    assert merged.n == direct.n == count * per_sketch and abs(p99 - direct.quantile(0.99)) < 1e-9
    record(f"aggregation: merge {count} sketches ({count * per_sketch:,} values)", merge_s * 1000, "ms",
           direct_s * 1000, direct_s / merge_s, "", None, "ref: one sketch from the raw values in memory")


SECTIONS = ("dispatch", "cli-dispatch", "scheduling", "fidelity", "cloud-fidelity", "aggregation", "memory", "bounded",
            "publish", "burst")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke check")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="cli-dispatch: also measure the farm from this checkout (before/after in one run)")
    parser.add_argument("--json", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]!r}; choose from {', '.join(SECTIONS)}")
    q = args.quick
    print(f"Sandbox Farm benchmarks on {platform.node()}: {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {'quick' if q else 'full'} sizes\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "dispatch" in only:
            bench_dispatch(tmp, 500 if q else 3000)
        if "cli-dispatch" in only:
            from bench.cli_dispatch import bench_cli_dispatch

            bench_cli_dispatch(record, tmp, 1000 if q else 4000, args.baseline)
        if "scheduling" in only:
            bench_scheduling(tmp, 400 if q else 2000, [8] if q else [8, 16, 32], 200.0)
        if "fidelity" in only:
            bench_fidelity(tmp, 30 if q else 200)
        if "cloud-fidelity" in only:
            from bench.cloud_fidelity import bench_cloud_fidelity

            bench_cloud_fidelity(record, 5 if q else 20)
        if "aggregation" in only:
            bench_aggregation(tmp, [10**4] if q else [10**4, 10**5, 10**6])
        if "memory" in only:
            bench_memory(tmp, 10**4 if q else 10**5)
        if "bounded" in only:
            bench_bounded_broker(tmp, 10**6)
        if "publish" in only:
            from bench.publish import bench_publish

            bench_publish(record, tmp, 60 if q else 365)
        if "burst" in only:
            from bench.burst import bench_burst

            bench_burst(record, tmp, 50, 1 if q else 3)
    Path(args.json).write_text(json.dumps({"machine": {"node": platform.node(), "cores": os.cpu_count(),
                                                       "python": platform.python_version()},
                                           "quick": q, "results": RESULTS}, indent=2))
    missed = [r["bench"] for r in RESULTS if r["met"] is False]
    print(f"\n{len(RESULTS)} figures; targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else ""))
    return 0
