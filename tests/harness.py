"""The test harness (also used by bench/): real redis-server, real worker processes.

Nothing here fakes the farm's own code: tests start a real redis-server (the embedded one) and real
prefork Celery workers as subprocesses, and drive the same scheduler ``farm run`` uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from farm.celery_app import make_app
from farm.config import FarmConfig, parse_config
from farm.embedded import REPO_ROOT, EmbeddedFarm, spawn_worker, stop_process_groups
from farm.scheduler import Scheduler
from farm.snippets import Snippet, library
from farm.store import RunStatus, Store
from farm.waiting import wait_until

__all__ = ["REPO_ROOT", "Farm", "WorkerProcess", "farm_cli", "redis_text"]


class WorkerProcess:
    """One provider-pinned prefork worker subprocess."""

    def __init__(self, redis_url: str, provider: str, concurrency: int = 2, log_dir: Path | None = None,
                 env: dict[str, str] | None = None, name: str | None = None, events: bool = False) -> None:
        self.redis_url, self.provider, self.concurrency = redis_url, provider, concurrency
        self.log_path = (log_dir or Path("/tmp")) / f"worker-{provider}-{time.monotonic_ns()}.log"
        self.env = env or {}
        self.name = name or f"{provider}@test-{time.monotonic_ns()}"
        self.events = events
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        self.proc = spawn_worker(self.redis_url, self.provider, self.concurrency, self.log_path,
                                 loglevel="INFO", name=self.name, env=self.env, events=self.events)
        return self

    def wait_ready(self, store: Store, timeout: float = 60) -> "WorkerProcess":
        prefix = self.name.replace("%h", "")

        def heartbeating() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}: {self.log()[-2000:]}")
            return any(k.startswith(prefix) for k in store.live_workers())

        try:
            wait_until(heartbeating, timeout, f"worker {self.name} to send a heartbeat")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {self.log()[-2000:]}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and pool children, no goodbye."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.proc is not None:
            stop_process_groups([self.proc], timeout)


class Farm:
    """A real redis-server plus scheduler for tests: ``with Farm(tmp_path) as farm: ...``."""

    def __init__(self, data_dir: Path, config: dict[str, Any] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.embedded = EmbeddedFarm(self.data_dir / "redis")
        self.config: FarmConfig = parse_config(config or {})
        self.workers: list[WorkerProcess] = []

    def __enter__(self) -> "Farm":
        self.embedded.start()
        self.redis = self.embedded.redis
        self.url = self.embedded.url
        self.store = Store.from_url(self.url)
        self.app = make_app(self.url)
        self.scheduler = Scheduler(self.store, self.app)
        return self

    def __exit__(self, *exc: Any) -> None:
        for w in self.workers:
            w.stop()
        self.app.close()
        self.embedded.stop()

    def worker(self, provider: str = "local", concurrency: int = 2, **kw: Any) -> WorkerProcess:
        w = WorkerProcess(self.url, provider, concurrency, self.data_dir / "logs", **kw).start()
        self.workers.append(w)
        return w.wait_ready(self.store)

    def snippets(self, *names: str) -> list[Snippet]:
        lib = library()
        return [lib[n] for n in names]

    def start_run(self, providers: Sequence[str], snippets: Sequence[Snippet], repetitions: int,
                  warmup: int = 0, concurrency: int = 2, seed: int = 1) -> str:
        return self.scheduler.create_run(self.config, providers, snippets, repetitions=repetitions,
                                         warmup=warmup, concurrency=concurrency, seed=seed)

    def wait(self, run_id: str, timeout: float = 120) -> RunStatus:
        """Follow the run like `farm run` does (reconciling as it goes) until it finishes."""
        def finished() -> RunStatus | None:
            st = self.store.status(run_id)
            if st.state == "finished":
                return st
            self.scheduler.reconcile_active(owner="test", every_ms=500)
            return None

        try:
            return wait_until(finished, timeout, f"run {run_id} to finish", 0.2)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} not finished: {self.store.status(run_id)}") from None


def redis_text(store: Store) -> str:
    """Every key and value in the farm's Redis as text (binary decoded leniently): for tests that
    look for something that must never be stored, such as a secret."""
    r = store.raw
    chunks: list[bytes] = []
    for key in r.scan_iter("*", count=1000):
        chunks.append(key)
        kind = r.type(key)
        if kind == b"string":
            chunks.append(r.get(key) or b"")
        elif kind == b"hash":
            chunks.extend(b for kv in r.hgetall(key).items() for b in kv)
        elif kind == b"list":
            chunks.extend(r.lrange(key, 0, -1))
        elif kind in (b"set", b"zset"):
            chunks.extend(r.smembers(key) if kind == b"set" else r.zrange(key, 0, -1))
        elif kind == b"stream":
            chunks.extend(b for _id, fields in r.xrange(key) for kv in fields.items() for b in kv)
    return b"\n".join(chunks).decode("utf-8", errors="replace")


def farm_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
             ) -> subprocess.CompletedProcess:
    """Run the real ``farm`` CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "farm", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
