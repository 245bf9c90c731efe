"""Network partitions between worker hosts and Redis, with real hosts in network namespaces.

Redis runs on one namespace, two real ``farm worker`` processes (prefork, local provider) on two
others, wired through a bridge (tests/netns.py). Mid-run, one worker host's switch port goes down
while it is in the middle of a sample: its packets vanish, its lease lapses, and the reconciler gives
its members to the other host. Healed, the cut-off worker's late commit is dropped as a duplicate
and it goes back to work; never healed, the other host finishes the run alone. Either way every
planned member is committed exactly once, and no sandbox is left behind.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.netns import netns_unavailable

_why_not = netns_unavailable()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=f"partition tests skipped: {_why_not}")

NAP = '# /// farm\n# name = "nap"\n# ///\nimport time\ntime.sleep(1.0)\n'


class NetFarm:
    """The scheduler side (this test process) of a farm whose Redis lives in a NetLab: the same
    Store, Celery app and Scheduler ``farm run`` uses, over the lab's unix socket."""

    def __init__(self, lab: Any, config: dict[str, Any]) -> None:
        from farm.celery_app import make_app
        from farm.config import parse_config
        from farm.scheduler import Scheduler
        from farm.store import Store

        self.lab = lab
        self.config = parse_config(config)
        self.store = Store.from_url(lab.url)
        self.app = make_app(lab.url)
        self.scheduler = Scheduler(self.store, self.app)

    def close(self) -> None:
        self.app.close()

    def start_run(self, snippets: list[Any], repetitions: int) -> str:
        return self.scheduler.create_run(self.config, ["local"], snippets, repetitions=repetitions,
                                         warmup=0, concurrency=4, seed=1)

    def follow(self, run_id: str, timeout: float) -> Any:
        """Until the run finishes, reconciling as `farm run` does (from outside the partition)."""
        from farm.waiting import wait_until

        def finished() -> Any:
            status = self.store.status(run_id)
            if status.state == "finished":
                return status
            self.scheduler.reconcile_active(owner="test", every_ms=500)
            return None

        return wait_until(finished, timeout, f"run {run_id} to finish", 0.2)


def _snippets() -> list[Any]:
    from farm.snippets import library, parse_snippet

    return [library()["hello"], parse_snippet(NAP, "nap.py")]


def _claims_of(farm: NetFarm, run_id: str, host: str) -> dict[str, str]:
    """Members whose in-flight entry is a claim by a process on ``host`` (``c|ts|host:pid|n``)."""
    return {m: v for m, v in farm.store.inflight(run_id, "local").items()
            if v.startswith("c|") and v.split("|")[2].startswith(f"{host}:")}


def _assert_exactly_once(farm: NetFarm, run_id: str, planned: int) -> list[dict[str, Any]]:
    from farm.store import member_key
    from farm.store.keys import run_key

    status = farm.store.status(run_id)
    samples = farm.store.samples(run_id)
    members = Counter(member_key(s["provider"], s["snippet"], s["rep"], s["warmup"]) for s in samples)
    assert status.state == "finished" and not status.incomplete, status
    assert status.done == planned == len(samples) == len(members) == farm.store.raw.xlen(run_key(run_id, "samples"))
    assert set(members.values()) == {1}
    assert all(s["outcome"] == "ok" for s in samples), [s["error"] for s in samples if s["error"]]
    return samples


def _cut_mid_sample(lab: Any, farm: NetFarm, run_id: str, host: str, how: str = "port") -> dict[str, str]:
    """Wait until ``host`` is inside a napping sample with its sandbox alive, cut it off, and
    return what it held."""
    from farm.waiting import wait_until

    def napping() -> bool:  # claimed, and its sandbox created and registered: the nap is next
        claimed = _claims_of(farm, run_id, host)
        return any("|nap|" in e.member and e.member in claimed for e in farm.store.run_sandboxes(run_id))

    wait_until(napping, 180, f"{host} to be inside a napping sample", 0.02)
    lab.cut(host, how)
    held = _claims_of(farm, run_id, host)  # read after the cut: nothing it does lands any more
    assert held, "the claim was committed just before the cut; nothing was interrupted"
    return held


def _given_away(farm: NetFarm, run_id: str, held: dict[str, str]) -> bool:
    """Every member the cut host held is committed, or re-queued/claimed for another attempt (its
    lease lapsed and the reconciler, running here and on the other host, took it back)."""
    farm.scheduler.reconcile_active(owner="test", every_ms=500)
    inflight = farm.store.inflight(run_id, "local")
    done = farm.store.done_members(run_id) if farm.store.status(run_id).state != "finished" else set(held)
    return all(m in done or inflight.get(m, seen) != seen for m, seen in held.items())


def _leftover_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("farm-sbx-*"))


def _lab(tmp_path: Path) -> tuple[Any, Path, dict[str, Any]]:
    from tests.netns import NetLab

    root = tmp_path / "sandboxes"
    root.mkdir()
    return NetLab(tmp_path, ["hosta", "hostb"]), root, {"providers": {"local": {"root": str(root)}}}


def test_partition_healed_mid_run_every_sample_once_and_no_sandbox_left(tmp_path):
    from farm.waiting import wait_until

    lab, root, config = _lab(tmp_path)
    with lab:
        farm = NetFarm(lab, config)
        try:
            lab.worker("hosta", farm.store)
            lab.worker("hostb", farm.store)
            run_id = farm.start_run(_snippets(), repetitions=40)
            how = "drop" if shutil.which("iptables") else "port"  # drop: a black hole, nothing errors
            held = _cut_mid_sample(lab, farm, run_id, "hosta", how)
            # Cut off, hosta can neither renew its leases nor commit: within the lease (15 s) plus a
            # reconcile its members go to hostb. Then the cable is back, while the run still runs.
            wait_until(lambda: _given_away(farm, run_id, held), 180, "the cut host's members to be given away")
            healed_ns = time.time_ns()
            lab.heal("hosta", how)
            farm.follow(run_id, timeout=300)
            samples = _assert_exactly_once(farm, run_id, planned=80)
            # hostb did the held members again, or hosta's late commit won the race (the other copy
            # was dropped); either way the stream has one sample per member.
            assert {s["worker"].split(":")[0] for s in samples} <= {"hosta", "hostb"}

            # hosta comes back on its own, over the same TCP connections once they retransmit.
            def hosta_beating() -> bool:
                beats = farm.store.live_workers()
                return any(k.startswith("local@hosta") and int(v.get("ts", 0)) > healed_ns for k, v in beats.items())

            wait_until(hosta_beating, 300, "hosta's heartbeat after the heal")
            # ... and its sandbox calls land: what it created is destroyed and unregistered, so the
            # run's sandbox register (leak accounting) is empty and nothing is left on disk.
            wait_until(lambda: not farm.store.run_sandboxes(run_id), 300,
                       "the run's sandbox register to empty after the heal")
            assert farm.store.interrupted(run_id) == {}
            assert _leftover_dirs(root) == []

            # And it works again: it takes tasks of a new run (however long its connections take to
            # retransmit, at most TCP's 120 s cap after the heal).
            again = farm.start_run(_snippets()[:1], repetitions=400)
            wait_until(lambda: any(s["worker"].startswith("hosta:") for s in farm.store.samples(again)), 300,
                       "hosta to commit a sample of a new run")
        finally:
            farm.close()


def test_partition_never_healed_other_host_finishes_and_sweep_clears_the_rest(tmp_path):
    from farm.ops import sweep
    from farm.store import member_key

    lab, root, config = _lab(tmp_path)
    with lab:
        farm = NetFarm(lab, config)
        try:
            lab.worker("hosta", farm.store)
            lab.worker("hostb", farm.store)
            run_id = farm.start_run(_snippets(), repetitions=20)
            held = _cut_mid_sample(lab, farm, run_id, "hosta")
            status = farm.follow(run_id, timeout=300)  # hostb alone, through lease expiry
            samples = _assert_exactly_once(farm, run_id, planned=40)
            assert status.done == 40
            redone = [s for s in samples if member_key("local", s["snippet"], s["rep"], False) in held]
            assert redone and all(s["worker"].startswith("hostb:") and s["attempt"] >= 2 for s in redone)
            # Whatever hosta still had is unreachable from the farm: only hosta's entries remain in
            # the register, and the sweep (run finished: nothing is in use) deletes every sandbox
            # still on disk, whether hosta had destroyed it itself or was cut before it could.
            assert {e.worker.split(":")[0] for e in farm.store.run_sandboxes(run_id)} <= {"hosta"}
            (result,) = sweep(farm.config, ["local"], run_id=run_id, store=farm.store)
            assert not result.error and not result.in_use
            assert _leftover_dirs(root) == []
        finally:
            farm.close()
