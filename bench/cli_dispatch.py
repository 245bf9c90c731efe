"""`cli-dispatch`: farm throughput the way users run it (issue 18), beside bare Celery in the same run.

A standalone redis-server on a free loopback TCP port; ``farm worker --provider sim -c 2`` already up
as a real subprocess; then ``farm run --providers sim --snippets hello -n N --warmup 0 -c 2`` through
the real CLI. The reference is a bare Celery no-op (bench/bare_default_app.py) with 2 prefork
children on the same Redis. Both sides are timed from the first task sent to the last one done:
the farm from its "run … started" line to its final "N/N done" progress line (so the CLI's own
start-up and report are reported apart, not mixed into the rate), the reference from the first
send to its counter reaching N. The `farm run` process's CPU while following is read from
/proc/PID/stat at those same two moments.

With ``--baseline DIR`` (another checkout of the farm, e.g. ``git worktree add /tmp/before main``),
the farm side is also measured from that tree, on the same Redis, between the reference and this
tree's measurement: before and after in one run, against one reference, under one load.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import redis

from bench import NOOP_COUNTER
from farm.embedded import redis_server_binary
from farm.waiting import wait_until
from tests.harness import REPO_ROOT

Record = Callable[..., None]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _wait(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    wait_until(predicate, timeout, f"cli-dispatch: {what}", poll)


def _spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO_ROOT) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def _bare_rate(url: str, client: redis.Redis, n: int, tmp: Path) -> float:
    env = {**os.environ, "BENCH_REDIS_URL": url}
    worker = _spawn([sys.executable, "-m", "celery", "-A", "bench.bare_default_app", "worker", "-c", "2",
                     "--pool", "prefork", "--loglevel", "WARNING", "-n", "bench-default@%h"], env,
                    tmp / "bare-default.log")
    try:
        os.environ["BENCH_REDIS_URL"] = url  # the app module reads it at import, here as in the worker
        from bench.bare_default_app import app, noop
        noop.apply_async(args=[-1])  # the worker is up once it has done one
        _wait(lambda: int(client.get(NOOP_COUNTER) or 0) >= 1, 120, "the bare worker's first no-op")
        client.delete(NOOP_COUNTER)
        start = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for i in range(n):
                noop.apply_async(args=[i], producer=producer)
        _wait(lambda: int(client.get(NOOP_COUNTER) or 0) >= n, 900, f"{n} bare no-ops")
        return n / (time.perf_counter() - start)
    finally:
        _stop(worker)


class _FarmRunWatch:
    """Reads `farm run`'s stderr; notes time and the process's CPU at the start and final lines."""

    def __init__(self, proc: subprocess.Popen, n: int) -> None:
        self.proc, self.n = proc, n
        self.marks: dict[str, tuple[float, float]] = {}
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        final = re.compile(rf"\b{self.n}/{self.n} done")
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            for part in line.split("\r"):
                key = "start" if part.startswith("run ") else "end" if final.search(part) else None
                if key and key not in self.marks:
                    self.marks[key] = (time.perf_counter(), _cpu_s(self.proc.pid))


def _farm_run(url: str, config: Path, n: int, src: Path) -> tuple[float, float, float]:
    """(samples/s while following, `farm run` CPU share while following, whole-process wall s)."""
    env = _farm_env(url, src)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "farm", "--config", str(config), "run", "--providers", "sim",
                             "--snippets", "hello", "-n", str(n), "--warmup", "0", "-c", "2"],
                            cwd=src, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    watch = _FarmRunWatch(proc, n)
    code = proc.wait(timeout=1800)
    wall = time.perf_counter() - started
    watch.thread.join(timeout=10)
    if code != 0 or {"start", "end"} - set(watch.marks):
        raise RuntimeError(f"farm run exited {code}: {''.join(watch.lines)[-1500:]}")
    (t0, cpu0), (t1, cpu1) = watch.marks["start"], watch.marks["end"]
    return n / (t1 - t0), (cpu1 - cpu0) / (t1 - t0), wall


def _farm_env(url: str, src: Path) -> dict[str, str]:
    """The farm's processes import the farm from ``src`` (first on the path), whichever is installed."""
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": os.pathsep.join(
        [str(src), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("FARM_REDIS_URL", None)
    return env


def _farm_side(url: str, client: redis.Redis, config: Path, n: int, src: Path, tmp: Path
               ) -> tuple[float, float, float]:
    """`farm worker` from ``src`` up, then `farm run` through it; the worker is stopped after."""
    client.flushdb()
    worker = _spawn([sys.executable, "-m", "farm", "--config", str(config), "worker", "--provider", "sim",
                     "-c", "2", "--loglevel", "WARNING"], _farm_env(url, src), tmp / "farm-worker.log", cwd=src)
    try:
        _wait(lambda: bool(list(client.scan_iter("farm:worker:*"))), 120, "the farm worker's heartbeat")
        return _farm_run(url, config, n, src)
    finally:
        _stop(worker)


def bench_cli_dispatch(record: Record, tmp: Path, n: int, baseline: Path | None = None) -> None:
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _spawn([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp)], dict(os.environ), tmp / "redis.log")
    client = redis.Redis.from_url(url)
    config = tmp / "cli-dispatch.yml"
    config.write_text("providers:\n  sim: {}\n")  # sim with every phase 0 ms: a no-op sample
    try:
        _wait(lambda: _pings(client), 30, "redis-server answering")
        load_before = os.getloadavg()[0]
        bare = _bare_rate(url, client, n, tmp)
        before = _farm_side(url, client, config, n, baseline, tmp) if baseline else None
        rate, cpu_share, wall = _farm_side(url, client, config, n, REPO_ROOT, tmp)
        load_after = os.getloadavg()[0]
    finally:
        _stop(server)
    ratio = rate / bare
    load = f"load {load_before:.1f}→{load_after:.1f} on {os.cpu_count()} cores"
    if before is not None:
        b_rate, b_cpu, b_wall = before
        record(f"cli-dispatch: BEFORE ({baseline}) farm run samples/s (n={n}, c=2)", b_rate, "samples/s", bare,
               b_rate / bare, "", None, f"{load}; farm run CPU {b_cpu * 100:.1f} % of a core, wall {b_wall:.1f} s")
    record(f"cli-dispatch: farm run samples/s (n={n}, c=2)", rate, "samples/s", bare, ratio,
           "≥ 0.8× bare Celery (defaults+prefetch 1+acks late)", ratio >= 0.8,
           f"{load}; farm run wall {wall:.1f} s incl. start-up and report")
    record("cli-dispatch: farm run CPU while following", cpu_share * 100, "% of core", None, None,
           "< 10 %", cpu_share < 0.10, load)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
