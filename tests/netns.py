"""Test hosts in network namespaces: Redis on one host, workers on others, and cables to cut.

``NetLab`` builds a small switched network from iproute2 alone (needs root): a ``redis`` namespace
holding a bridge (the switch, 10.88.0.1/24) and one namespace per worker host, each wired to the
switch by a veth pair. ``cut(host)`` takes the host's switch port down: its packets vanish without
a reset (a black hole, like a pulled cable or a dead switch port), so its TCP connections to Redis
hang rather than fail. ``heal(host)`` brings the port back. Each worker host also gets its own
hostname (a UTS namespace), as separate machines would.

The test process itself stays in its own namespace and reaches Redis over a unix socket (a path in
the shared filesystem), so the scheduler and the test's checks are never partitioned. Names carry
the pid and a counter, so parallel test processes never collide; ``close()`` removes everything.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from farm.embedded import REPO_ROOT, redis_server_binary
from farm.private import open_private
from farm.store import Store
from farm.waiting import wait_until
from tests.harness import WorkerProcess

SWITCH_IP = "10.88.0.1"
REDIS_PORT = 6390
_labs = itertools.count()

# Set the UTS namespace's hostname, then become the worker (same pid all the way down).
_AS_HOST = "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (a skip reason), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "iproute2's `ip` and util-linux's `unshare` are needed"
    probe = f"fpprobe{os.getpid()}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` fails here: {made.stderr.strip()[:200]}"
        pair = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if pair.returncode != 0:
            return f"veth pairs cannot be made here: {pair.stderr.strip()[:200]}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


class NetWorker(WorkerProcess):
    """A real ``farm worker`` process (prefork) on a worker host: run inside the host's network
    namespace under its hostname, against Redis over TCP."""

    def __init__(self, lab: "NetLab", host: str, provider: str, concurrency: int, env: dict[str, str]) -> None:
        super().__init__(lab.tcp_url, provider, concurrency, lab.dir / "logs", env=env,
                         name=f"{provider}@{host}")
        self.lab, self.host = lab, host

    def start(self) -> "NetWorker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["ip", "netns", "exec", self.lab.ns(self.host), "unshare", "--uts",
               sys.executable, "-c", _AS_HOST, self.host,
               sys.executable, "-m", "farm", "worker", "--provider", self.provider,
               "-c", str(self.concurrency), "--name", self.name, "--loglevel", "INFO"]
        env = {**os.environ, "REDIS_URL": self.redis_url, **self.env}
        self.proc = subprocess.Popen(cmd, env=env, stdout=open_private(self.log_path), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO_ROOT)
        return self


class NetLab:
    """The namespaces, the switch, Redis on its host; ``with NetLab(dir, ["a", "b"]) as lab``."""

    def __init__(self, data_dir: Path, worker_hosts: list[str]) -> None:
        self.dir = Path(data_dir)
        self.tag = f"fp{os.getpid() % 100000}x{next(_labs)}"  # <= 15 chars with a suffix
        self.worker_hosts = list(worker_hosts)
        self.redis_proc: subprocess.Popen | None = None
        self.workers: list[NetWorker] = []
        self.made: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.tag}{host}"

    def port(self, host: str) -> str:
        """The switch-side end of a host's cable (lives in the redis namespace)."""
        return f"{self.tag}s{host}"

    @property
    def tcp_url(self) -> str:
        return f"redis://{SWITCH_IP}:{REDIS_PORT}/0"

    @property
    def socket(self) -> Path:
        return self.dir / "redis" / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def __enter__(self) -> "NetLab":
        try:
            self._wire()
            self._start_redis()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _add_ns(self, host: str) -> None:
        _ip("netns", "add", self.ns(host))
        self.made.append(self.ns(host))
        _ip("-n", self.ns(host), "link", "set", "lo", "up")

    def _wire(self) -> None:
        self._add_ns("redis")
        hub = self.ns("redis")
        _ip("-n", hub, "link", "add", "switch", "type", "bridge")
        _ip("-n", hub, "link", "set", "switch", "up")
        _ip("-n", hub, "addr", "add", f"{SWITCH_IP}/24", "dev", "switch")
        for host in self.worker_hosts:
            self._add_ns(host)
            # Made inside the hub, so a failure half-way leaves nothing in the test's namespace.
            _ip("-n", hub, "link", "add", self.port(host), "type", "veth", "peer", "name", "eth0",
                "netns", self.ns(host))
            _ip("-n", hub, "link", "set", self.port(host), "master", "switch", "up")
            _ip("-n", self.ns(host), "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def _start_redis(self) -> None:
        rdir = self.socket.parent
        rdir.mkdir(parents=True, exist_ok=True)
        self.redis_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("redis"), redis_server_binary(), "--bind", SWITCH_IP,
             "--port", str(REDIS_PORT), "--protected-mode", "no", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(rdir), "--appendonly", "yes", "--save", "",
             "--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile", ""],
            stdout=open_private(rdir / "redis.log"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

        def answering() -> bool:
            assert self.redis_proc is not None
            if self.redis_proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(rdir / 'redis.log').read_text()[-1000:]}")
            try:
                return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                return False

        wait_until(answering, 30, "redis-server in its namespace", 0.05)

    def worker(self, host: str, store: Store, provider: str = "local", concurrency: int = 2,
               env: dict[str, str] | None = None) -> NetWorker:
        w = NetWorker(self, host, provider, concurrency, env or {}).start()
        self.workers.append(w)
        return w.wait_ready(store, timeout=120)

    def address(self, host: str) -> str:
        return f"10.88.0.{self.worker_hosts.index(host) + 2}"

    def cut(self, host: str, how: str = "port") -> None:
        """``port``: the switch port goes down (the host's link loses carrier); ``drop``: Redis's
        host drops the host's packets both ways (iptables; the link stays up, nothing errors)."""
        if how == "port":
            _ip("-n", self.ns("redis"), "link", "set", self.port(host), "down")
        else:
            self._iptables("-I", host)

    def heal(self, host: str, how: str = "port") -> None:
        if how == "port":
            _ip("-n", self.ns("redis"), "link", "set", self.port(host), "up")
        else:
            self._iptables("-D", host)

    def _iptables(self, op: str, host: str) -> None:
        for chain, side in (("INPUT", "-s"), ("OUTPUT", "-d")):
            subprocess.run(["ip", "netns", "exec", self.ns("redis"), "iptables", op, chain, side,
                            self.address(host), "-j", "DROP"], check=True, capture_output=True, timeout=30)

    def close(self) -> None:
        """Stop every process this lab started, then delete its namespaces (and with them the
        cables). Safe to call twice and after a failure half-way through set-up."""
        for w in self.workers:
            w.kill()  # a worker cut off from Redis cannot shut down warmly
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            os.killpg(self.redis_proc.pid, signal.SIGTERM)
            try:
                self.redis_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.redis_proc.pid, signal.SIGKILL)
                self.redis_proc.wait()
        for name in reversed(self.made):
            _ip("netns", "del", name, check=False)
        self.made.clear()
