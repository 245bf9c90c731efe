"""Host truth: how many cores a worker host has, how loaded it was, and how many farm worker
processes share it, so a report can say when the farm competed with itself or with other work.

Where the facts come from (docs/results-format.md, "hosts"):

* every worker's heartbeat (farm:worker:<id>, every 3 s) carries its machine's name, usable CPU
  count, load average and pool size (``heartbeat_facts``);
* a run's manifest records, per worker host live when the run is created, the CPU count, the load
  just before the run and the farm's worker processes there (``snapshot``, into ``Manifest.hosts``);
* while a run is active, each worker's heartbeat thread also writes its host's facts into the run
  (``{r}:hosts``): the last write, within a heartbeat of the end, is the load after the run, and a
  host that joined late is known too (``merge``).

This module imports no numpy: workers call it every few seconds.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any, Iterable, Mapping

from farm.manifest import HostFacts

# Load (1-minute average) that changed by more than this many per core, and at least by
# MIN_LOAD_CHANGE, during a run (beyond what the farm's own processes add) is called "moved a lot":
# something else started or stopped.
LOAD_CHANGE_PER_CORE = 0.5
MIN_LOAD_CHANGE = 1.0


def machine() -> str:
    """This machine's name as workers report it (Celery node names carry a provider prefix)."""
    return platform.node() or socket.gethostname()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's cpuset), else the count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def heartbeat_facts(provider: str, processes: int | None) -> dict[str, Any]:
    """What a worker's heartbeat says about its host: name, CPUs, load, and its pool size."""
    return {"host": machine(), "cpus": usable_cpus(), "load": load_average(), "processes": processes,
            "provider": provider}


def snapshot(live: Mapping[str, Mapping[str, Any]]) -> dict[str, HostFacts]:
    """Per worker host, from live heartbeats: CPUs, the load now (= before the run) and the farm's
    worker processes there, in total and per provider."""
    hosts: dict[str, HostFacts] = {}
    for host, beats in _by_host(live.values()).items():
        newest = max(beats, key=lambda b: b.get("ts") or 0)
        providers = _providers(beats)
        hosts[host] = HostFacts(cpus=newest.get("cpus"), load_before=newest.get("load"),
                                worker_processes=sum(providers.values()) if providers else None,
                                providers=providers)
    return dict(sorted(hosts.items()))


def merge(before: Mapping[str, Any], during: Mapping[str, Mapping[str, Any]]) -> dict[str, HostFacts]:
    """The manifest's hosts (at creation) with what workers wrote while the run was active
    (``{r}:hosts``: worker id -> {host, cpus, processes, provider, first_load, last_load, ts})."""
    out: dict[str, HostFacts] = {h: HostFacts.model_validate(f) for h, f in before.items()}
    for host, beats in _by_host(during.values()).items():
        known = out.get(host, HostFacts())
        last = max(beats, key=lambda b: b.get("ts") or 0)
        first = min(beats, key=lambda b: b.get("first_ts") or b.get("ts") or 0)
        providers = {**known.providers, **_providers(beats)}
        out[host] = HostFacts(cpus=known.cpus or last.get("cpus"),
                              load_before=known.load_before or first.get("first_load"),
                              load_after=last.get("last_load"),
                              worker_processes=sum(providers.values()) if providers else known.worker_processes,
                              providers=providers)
    return dict(sorted(out.items()))


def warnings(hosts: Mapping[str, HostFacts], planned: Iterable[str]) -> list[str]:
    """Host contention the numbers do not show: more farm worker processes than cores on a host
    where a provider's phases run on the host itself (local), and load that moved during the run."""
    from providers import REGISTRY, spec_of

    on_host = {p for p in planned if p in REGISTRY and spec_of(p).runs_on_worker_host}
    out = []
    for host, facts in hosts.items():
        busy = sorted(on_host & set(facts.providers))
        if busy and facts.cpus and facts.worker_processes and facts.worker_processes > facts.cpus:
            out.append(f"host {host}: {facts.worker_processes} farm worker processes on {facts.cpus} cores, "
                       f"and {', '.join(busy)} runs its phases on that host: samples compete with each other "
                       f"for CPU and read slow; use -c so the host's total is at most {facts.cpus}, or "
                       f"serve {', '.join(busy)} from a host of its own")
        if facts.load_before and facts.load_after and facts.cpus:
            out += _load_moved(host, facts)
    return out


def _load_moved(host: str, facts: HostFacts) -> list[str]:
    """A rise beyond what the farm's own busy processes explain (each adds at most 1 to the load),
    or a fall, of more than max(MIN_LOAD_CHANGE, LOAD_CHANGE_PER_CORE x cores) in the 1-minute load."""
    assert facts.load_before and facts.load_after and facts.cpus
    before, after = facts.load_before[0], facts.load_after[0]
    limit = max(MIN_LOAD_CHANGE, LOAD_CHANGE_PER_CORE * facts.cpus)
    own = facts.worker_processes or 0
    if after - before - own > limit:
        return [f"host {host}: load rose from {before:g} to {after:g} during the run on {facts.cpus} cores, more "
                f"than the farm's own {own} worker process(es) explain: other work competed with the "
                "measurements; compare with a run on a quiet host"]
    if before - after > limit:
        return [f"host {host}: load fell from {before:g} to {after:g} during the run on {facts.cpus} cores: "
                "work running when it started stopped during it, so early samples competed with it and late "
                "ones did not; compare with a run on a quiet host"]
    return []


def _by_host(beats: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for beat in beats:
        if beat.get("host"):  # heartbeats of workers older than host facts carry no host
            grouped.setdefault(str(beat["host"]), []).append(beat)
    return grouped


def _providers(beats: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Worker processes per provider on one host (several workers may serve one provider)."""
    out: dict[str, int] = {}
    for beat in beats:
        if beat.get("provider") and isinstance(beat.get("processes"), int):
            out[beat["provider"]] = out.get(beat["provider"], 0) + beat["processes"]
    return dict(sorted(out.items()))
