"""Aggregate limits for one execution of the local sandbox: a cgroup of its own.

RLIMITs are per process (``memory_mb`` is one process's address space); a cgroup bounds everything
the execution starts together: ``memory_mb`` of memory for all its processes (files in its tmpfs
/tmp and /dev/shm included: tmpfs pages are charged to the group that wrote them), and ``pids``
processes and threads. The strongest hierarchy this host offers is used:

- cgroup v2, where the worker's own cgroup can delegate ``memory`` and ``pids`` to a child (the
  unified hierarchy holds the controllers and its subtree_control accepts them);
- else cgroup v1, where the ``memory`` and ``pids`` hierarchies are mounted and writable (a root
  farm on a v1 or hybrid host: each execution gets a group under the worker's own in both);
- else none: the facts say so (``cgroup``), and only the per-process limits apply.

A sample's groups are made when its sandbox is created (named after its folder) and removed when it
is destroyed or swept. Each execution joins them before anything untrusted runs: a ``/bin/sh``
prefix writes its own pid to each group's ``cgroup.procs`` and then execs the confinement command,
so bwrap, the snippet and every descendant are in them; after each execution whatever is left in
the group is killed (a daemon that left the process group included).
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids")
JOIN_NAME = "farm-cgroup"  # $0 of the joining shell: its errors read "farm-cgroup: ..."
_counter = itertools.count()


def _own_path(hierarchy: str) -> str | None:
    """The worker's cgroup path in a v1 hierarchy (``memory``) or v2 (``""``), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, names, path = line.split(":", 2)
        if (hierarchy == "" and _id == "0" and names == "") or hierarchy in names.split(","):
            return path
    return None


@dataclass(frozen=True)
class Cgroups:
    """Where an execution's groups are made: controller -> parent directory (empty: no cgroups)."""

    version: str = ""                     # "v2", "v1" or "" (none)
    parents: dict[str, Path] = field(default_factory=dict)
    reason: str = ""                      # why none, or which hierarchy
    memory_bytes: int = 0
    pids: int = 0

    def describe(self) -> str:
        return f"{self.version} (memory, pids) per sample" if self.version else f"none ({self.reason})"

    def dirs(self, name: str) -> list[Path]:
        if self.version == "v2":
            return [self.parents["v2"] / name]
        return [self.parents[c] / name for c in CONTROLLERS] if self.version else []

    def make(self, name: str) -> None:
        """Make the sample's groups with its limits (``name``: the sandbox folder's name)."""
        made = []
        try:
            for d in self.dirs(name):
                d.mkdir(mode=0o755)
                made.append(d)
                if self.version == "v2":
                    (d / "memory.max").write_text(str(self.memory_bytes))
                    _try_write(d / "memory.swap.max", "0")
                    (d / "pids.max").write_text(str(self.pids))
                elif d.parent == self.parents["memory"]:
                    (d / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
                    _try_write(d / "memory.memsw.limit_in_bytes", str(self.memory_bytes))  # no swap either
                else:
                    (d / "pids.max").write_text(str(self.pids))
        except OSError:
            for d in made:
                _remove(d)
            raise

    def join(self, name: str) -> list[str]:
        """The argv prefix that puts an execution in the sample's groups before it execs."""
        if not self.version:
            return []
        procs = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs(name))
        return ["/bin/sh", "-c", f'{procs} || exit 125; exec "$@"', JOIN_NAME]

    def kill(self, name: str) -> None:
        """Kill whatever of the sample still runs (after each execution: escaped daemons too)."""
        for d in self.dirs(name)[:1]:
            _kill_all(d)

    def remove(self, name: str) -> None:
        for d in self.dirs(name):
            _remove(d)


def _try_write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:  # swap accounting off: the kernel has no such file or refuses it
        pass


def _kill_all(d: Path) -> None:
    try:
        pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _remove(d: Path, patience_s: float = 10.0) -> None:
    """Kill every process still in the group, then remove it (retrying while they exit)."""
    deadline = time.monotonic() + patience_s
    while True:
        _kill_all(d)
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return  # left for the host; a later sweep of the parent finds it by name
            time.sleep(0.02)


def _check(found: Cgroups) -> None:
    name = f"farm-probe-{os.getpid()}-{next(_counter)}"
    found.make(name)
    found.remove(name)


def detect(memory_mb: int, pids: int) -> Cgroups:
    """The strongest cgroup support this process has, checked by making and removing a group."""
    limits = {"memory_bytes": memory_mb * 1024 * 1024, "pids": pids}
    reasons = []
    own = _own_path("")
    v2_root = ROOT if (ROOT / "cgroup.controllers").exists() else ROOT / "unified"
    if own is not None and (v2_root / "cgroup.controllers").exists():
        parent = v2_root / own.lstrip("/")
        try:
            available = (parent / "cgroup.controllers").read_text().split()
            if all(c in available for c in CONTROLLERS):
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
                found = Cgroups("v2", {"v2": parent}, "", **limits)
                _check(found)
                return found
            reasons.append(f"cgroup v2 has no {'/'.join(c for c in CONTROLLERS if c not in available)} "
                           "controller here")
        except OSError as exc:
            reasons.append(f"cgroup v2 cannot delegate to a child ({exc.strerror})")
    parents = {}
    for controller in CONTROLLERS:
        path = _own_path(controller)
        if path is None or not (ROOT / controller).is_dir():
            reasons.append(f"no cgroup v1 {controller} hierarchy")
            break
        parents[controller] = ROOT / controller / path.lstrip("/")
    else:
        found = Cgroups("v1", parents, "", **limits)
        try:
            _check(found)
            return found
        except OSError as exc:
            reasons.append(f"cgroup v1 not writable ({exc.strerror})")
    return Cgroups("", {}, "; ".join(reasons) or "no cgroup hierarchy", **limits)
