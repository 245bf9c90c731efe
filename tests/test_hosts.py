"""Host truth (issue 15, item 4): worker heartbeats carry their host's CPUs, load and pool size; a
run's manifest records the hosts before the run, workers file them while it is active (the load
after), and the report warns when the farm outnumbers a host's cores for local, or load moved.
The end-to-end test uses a real redis-server and real prefork Celery workers (tests.harness)."""

import json

from farm import hosts
from farm.manifest import HostFacts, Manifest
from farm.report import build
from farm.waiting import wait_until


def _beat(host, provider, processes, load, ts=1, cpus=2):
    return {"host": host, "cpus": cpus, "load": load, "processes": processes, "provider": provider, "ts": ts}


def test_snapshot_counts_every_worker_process_per_host_and_keeps_the_newest_load():
    live = {"local@a:1": _beat("a", "local", 2, [0.5, 0.4, 0.3], ts=1),
            "sim@a:2": _beat("a", "sim", 3, [0.7, 0.5, 0.3], ts=2),
            "e2b@b:3": _beat("b", "e2b", 8, [4.0, 4.0, 4.0], cpus=16),
            "old@c:4": {"provider": "local", "ts": 5}}  # a worker from before host facts: no host, skipped
    snap = hosts.snapshot(live)
    assert set(snap) == {"a", "b"}
    assert snap["a"] == HostFacts(cpus=2, load_before=[0.7, 0.5, 0.3], worker_processes=5,
                                  providers={"local": 2, "sim": 3})
    assert snap["b"].worker_processes == 8 and snap["b"].cpus == 16


def test_merge_adds_the_load_after_and_hosts_that_joined_late():
    before = {"a": HostFacts(cpus=2, load_before=[0.2, 0.2, 0.2], worker_processes=2,
                             providers={"local": 2}).model_dump(mode="json")}
    during = {"local@a:1": {"host": "a", "cpus": 2, "provider": "local", "processes": 2, "first_load": [0.3, 0.2, 0.2],
                            "first_ts": 10, "last_load": [1.9, 0.8, 0.3], "ts": 50},
              "sim@z:9": {"host": "z", "cpus": 4, "provider": "sim", "processes": 1, "first_load": [0.1, 0.1, 0.1],
                          "first_ts": 20, "last_load": [0.2, 0.1, 0.1], "ts": 40}}
    merged = hosts.merge(before, during)
    assert merged["a"].load_before == [0.2, 0.2, 0.2]  # the manifest's (before the run) wins
    assert merged["a"].load_after == [1.9, 0.8, 0.3]
    assert merged["z"] == HostFacts(cpus=4, load_before=[0.1, 0.1, 0.1], load_after=[0.2, 0.1, 0.1],
                                    worker_processes=1, providers={"sim": 1})


def test_warnings_name_contention_only_for_a_provider_that_runs_on_the_host():
    crowded = HostFacts(cpus=2, load_before=[1.0, 1, 1], load_after=[1.2, 1, 1], worker_processes=4,
                        providers={"local": 2, "sim": 2})
    (line,) = hosts.warnings({"a": crowded}, ["local", "sim"])
    assert "host a: 4 farm worker processes on 2 cores" in line and "local runs its phases" in line
    # the same crowding, but no planned provider runs on the host: cloud sandboxes do not compete
    assert hosts.warnings({"a": crowded}, ["sim"]) == []
    # at the core count it is not over
    fits = crowded.model_copy(update={"worker_processes": 2, "providers": {"local": 2}})
    assert hosts.warnings({"a": fits}, ["local"]) == []


def test_warnings_when_load_moved_more_than_half_the_cores_beyond_the_farms_own_processes():
    moved = HostFacts(cpus=4, load_before=[0.3, 0.3, 0.3], load_after=[3.5, 1, 0.5], worker_processes=1,
                      providers={"sim": 1})
    (line,) = hosts.warnings({"b": moved}, ["sim"])  # rose 3.2, of which 1 is the farm's: 2.2 > max(1, 2)
    assert "load rose from 0.3 to 3.5" in line and "4 cores" in line
    small = moved.model_copy(update={"load_after": [3.2, 1, 0.5]})  # 2.9 - 1 = 1.9 <= 2
    assert hosts.warnings({"b": small}, ["sim"]) == []
    busy_farm = moved.model_copy(update={"worker_processes": 4, "load_after": [4.1, 1, 0.5]})
    assert hosts.warnings({"b": busy_farm}, ["sim"]) == []  # the farm's own 4 processes explain it
    fell = moved.model_copy(update={"load_before": [3.0, 3, 3], "load_after": [0.5, 1, 2]})
    (line,) = hosts.warnings({"b": fell}, ["sim"])
    assert "load fell from 3 to 0.5" in line
    unknown = moved.model_copy(update={"load_after": None})  # never a made-up "after"
    assert hosts.warnings({"b": unknown}, ["sim"]) == []


def test_manifest_with_hosts_and_gates_round_trips_byte_for_byte():
    m = Manifest(run_id="r", plan={"providers": ["local"], "snippets": ["s"], "repetitions": 1, "warmup": 0,
                                   "seed": 1, "total": 1, "measured": 1},
                 concurrency=1, window=4, max_attempts=3, timeouts={}, task_soft_limit_s=60, task_hard_limit_s=70,
                 hosts={"a": HostFacts(cpus=2, load_before=[0.5, 0.25, 0.0], worker_processes=2,
                                       providers={"local": 2})},
                 gates=["error-rate>5%", "p95:tti>2s"])
    again = Manifest.from_json(m.to_json())
    assert again == m and again.to_json() == m.to_json()
    assert json.loads(m.to_json())["hosts"]["a"] == {"cpus": 2, "load_before": [0.5, 0.25, 0.0], "load_after": None,
                                                     "worker_processes": 2, "providers": {"local": 2}}
    older = {k: v for k, v in m.to_dict().items() if k not in ("hosts", "gates")}
    assert Manifest.from_dict(older).hosts == {} and Manifest.from_dict(older).gates == []


def test_real_workers_record_their_host_before_during_and_after_a_run(farm):
    farm.worker("local", concurrency=2)
    run_id = farm.start_run(["local", "sim"], farm.snippets("hello"), repetitions=3)
    manifest = farm.scheduler.manifest(run_id)
    me = hosts.machine()
    assert manifest.hosts[me].cpus == hosts.usable_cpus()
    assert manifest.hosts[me].providers == {"local": 2} and manifest.hosts[me].worker_processes == 2
    assert len(manifest.hosts[me].load_before) == 3
    # No sim worker yet, so the run stays active until the local worker has filed its host into it.
    wait_until(lambda: any(v["provider"] == "local" for v in farm.store.run_hosts(run_id).values()), 60,
               "the local worker to file its host into the active run")
    sim = farm.worker("sim", concurrency=1)
    farm.wait(run_id)
    doc = build(farm.store, run_id)
    facts = HostFacts.model_validate(doc.manifest["hosts"][me])
    assert facts.cpus == hosts.usable_cpus() and facts.providers["local"] == 2
    assert facts.worker_processes == sum(facts.providers.values())
    assert len(facts.load_before) == 3 and len(facts.load_after) == 3
    crowded = facts.worker_processes > facts.cpus
    assert any(w.startswith(f"host {me}: {facts.worker_processes} farm worker processes") for w in doc.warnings) \
        == crowded
    # a worker that shuts down stops counting at once, not 15 s later
    sim.stop()
    wait_until(lambda: "sim" not in {v.get("provider") for v in farm.store.live_workers().values()}, 30,
               "the stopped sim worker's heartbeat to go")


def test_a_run_whose_status_is_gone_gets_no_host_facts(farm):
    farm.store.note_run_host("gone-run", "local@a:1", {"host": "a", "cpus": 2})
    assert farm.store.run_hosts("gone-run") == {}
    assert not farm.store.r.exists("farm:run:gone-run:hosts")
