"""Was the sandbox really new? The identity probe, the reuse verdict, and runs that catch a reuse.

The probe is run for real (a Python subprocess standing in for a sandbox), the verdict against a
real redis-server, and the end-to-end runs through real prefork workers: sim with a reusing
setting, and the real e2b SDK against tests/fakes/e2b_server.py (seam: E2B_API_URL/E2B_SANDBOX_URL)
with the fake told to hand a killed sandbox out again.
"""

import json
import subprocess
import sys
import time

from farm.report import build
from farm.snippets import Snippet
from tests.fakes.e2b_server import FakeE2B
from tests.harness import Farm
from workers import identity
from workers.reuse import ReuseCheck

HELLO = Snippet(name="hello", code="print('hi')\n")


def probe_in(folder, token):
    out = subprocess.run([sys.executable, "-c", identity.probe_code(token)], cwd=folder, capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(folder)})
    assert out.returncode == 0, out.stderr
    return identity.parse(out.stdout, identity.host_identity())


def test_the_probe_reads_this_machine_and_finds_its_own_marker_the_second_time(tmp_path):
    first = probe_in(tmp_path, "run|p|s|1#1")
    assert first.raw["boot_id"] == identity.host_identity()["boot_id"]
    assert first.marker_found is None and first.marker_written
    assert (tmp_path / identity.MARKER_NAME).read_text() == "run|p|s|1#1"
    # a host subprocess shares the worker's kernel and pid namespace: a process, not evidence
    assert first.isolation == "process" and first.shares_worker
    second = probe_in(tmp_path, "run|p|s|2#1")
    assert second.marker_found == "run|p|s|1#1"
    assert second.fingerprint == first.fingerprint
    assert first.facts()["marker"] == "written" and second.facts()["marker"] == "found"


def test_isolation_is_recognised_from_what_the_inside_shows():
    host = {"boot_id": "host-boot", "pid_ns": "pid:[1]"}
    assert identity.classify({"kernel": "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"}, host)[0] == "gvisor"
    assert identity.classify({"boot_id": "host-boot", "ns": {"pid": "pid:[9]"}}, host)[:1] == ("container",)
    assert identity.classify({"boot_id": "host-boot", "ns": {"pid": "pid:[1]"}}, host) == \
        ("process", ["the worker's kernel and pid namespace"], True)
    kind, evidence, _ = identity.classify({"boot_id": "b", "container_files": ["/.dockerenv"]}, host)
    assert kind == "container" and evidence == ["/.dockerenv exists"]
    assert identity.classify({"boot_id": "b", "root_fs": "overlay"}, host)[0] == "container"
    kind, evidence, _ = identity.classify({"boot_id": "b", "virtio_mmio": True, "hypervisor_flag": True}, host)
    assert kind == "microvm" and len(evidence) == 2
    assert identity.classify({"boot_id": "b"}, host)[0] == "unknown"
    assert identity.parse("noise\nFARM_IDENTITY {not json", host) is None
    assert identity.parse("nothing here", host) is None


def ident(boot_id, uptime, marker=None):
    return identity.Identity(raw={"boot_id": boot_id}, fingerprint=f"fp-{boot_id}", marker_found=marker,
                             marker_written=True, uptime_s=uptime, isolation="microvm")


def test_the_verdict_weighs_marker_id_and_a_boot_identity_whose_kernel_kept_running(farm):
    st, run = farm.store, "run-verdict"
    st.r.hset(st.key(run, "status"), mapping={"state": "running", "planned": 4})  # sightings need their run
    assert ReuseCheck(st, run, "e2b|s|0", 1).verdict("sb-0", ident("boot-a", 10.0)) == ([], {})
    # the same sandbox id again, its marker still there
    signals, facts = ReuseCheck(st, run, "e2b|s|1", 1).verdict("sb-0", ident("boot-z", 1.0, f"{run}|e2b|s|0#1"))
    assert signals == ["marker", "sandbox_id"] and facts["marker_by"] == "e2b|s|0#1"
    # a new id and no marker, but boot-a's kernel has run on since (uptime advanced with the wall clock)
    seen = json.loads(st.r.hget(st.key(run, "seen"), "boot:fp-boot-a"))
    later = 10.0 + (time.time_ns() - seen["ns"]) / 1e9
    assert ReuseCheck(st, run, "e2b|s|2", 1).verdict("sb-2", ident("boot-a", later)) == \
        (["boot"], {"boot_by": "e2b|s|0"})
    # the same identity at the snapshot's uptime again, 5 s later: a clone of one memory snapshot
    st.first_sighting(run, "boot:fp-boot-c", json.dumps({"member": "e2b|s|c", "sandbox": "sb-c", "uptime_s": 10.0,
                                                         "ns": time.time_ns() - 5_000_000_000}))
    assert ReuseCheck(st, run, "e2b|s|3", 1).verdict("sb-3", ident("boot-c", 10.2)) == \
        ([], {"identity_shared": "e2b|s|c"})
    # ... and one whose uptime advanced those 5 s is the same running kernel
    assert ReuseCheck(st, run, "e2b|s|8", 1).verdict("sb-8", ident("boot-c", 15.05))[0] == ["boot"]
    # the same identity while the first holder is still alive: two sandboxes, so clones
    st.register_sandbox(run, "e2b|s|4", "w", "sb-4")
    assert ReuseCheck(st, run, "e2b|s|4", 1).verdict("sb-4", ident("boot-b", 5.0))[0] == []
    assert ReuseCheck(st, run, "e2b|s|5", 1).verdict("sb-5", ident("boot-b", 5.0 + 60))[1] == \
        {"identity_shared": "e2b|s|4"}
    # an identity the worker shares with its sandboxes (process isolation) is no evidence
    host_like = identity.Identity(raw={"boot_id": "h"}, fingerprint="fp-h", uptime_s=1.0, shares_worker=True)
    assert ReuseCheck(st, run, "e2b|s|6", 1).verdict("sb-6", host_like) == ([], {})
    assert ReuseCheck(st, run, "e2b|s|7", 1).verdict("sb-7", host_like) == ([], {})
    # a redelivered attempt of the same member is not a reuse of someone else's sandbox
    assert ReuseCheck(st, run, "e2b|s|0", 2).verdict("sb-0", ident("boot-a", 10.0))[0] == []


def test_sim_that_hands_out_destroyed_sandboxes_is_caught_and_kept_out_of_the_statistics(tmp_path):
    config = {"providers": {"sim": {"create": {"dist": "fixed", "ms": 5}, "seed": 3,
                                    "reuse": {"probability": 1.0, "keep_id": False, "keep_marker": False}}}}
    with Farm(tmp_path, config=config) as farm:
        farm.worker("sim", concurrency=1)
        run_id = farm.start_run(["sim"], [HELLO], repetitions=6, concurrency=1)
        farm.wait(run_id, timeout=120)
        samples = sorted(farm.store.samples(run_id), key=lambda s: s["started_ns"])
        doc = build(farm.store, run_id)

    assert {s["outcome"] for s in samples} == {"ok"}
    # one worker process, one slot: the first sandbox is new, every later one is it again, with a
    # new id and its marker wiped: only its boot identity (and a kernel that kept running) tells
    assert samples[0]["reused"] is None
    assert [s["reused"] for s in samples[1:]] == ["boot"] * 5
    boots = {s["sandbox"]["identity"]["boot_id"] for s in samples}
    assert len(boots) == 1 and all(s["sandbox"]["identity"]["probe_ms"] >= 0 for s in samples)
    assert doc.reused == {"sim": 5} and doc.counts["reused"] == 5
    tti = [r for r in doc.results if r.phase == "tti"]
    assert tti and all(r.n == 1 for r in tti)  # only the cold sample is in the statistics
    assert any("5 sim sample(s) ran in a sandbox already seen" in w for w in doc.warnings)
    assert doc.to_json()["reused"] == {"sim": 5}


def test_a_fresh_sim_run_flags_nothing(tmp_path):
    with Farm(tmp_path, config={"providers": {"sim": {"seed": 1}}}) as farm:
        farm.worker("sim", concurrency=2)
        run_id = farm.start_run(["sim"], [HELLO], repetitions=8)
        farm.wait(run_id, timeout=120)
        samples = farm.store.samples(run_id)
        doc = build(farm.store, run_id)
    assert [s["reused"] for s in samples] == [None] * 8
    assert len({s["sandbox"]["identity"]["boot_id"] for s in samples}) == 8
    assert doc.reused == {} and "reused" not in doc.counts


def test_the_real_e2b_sdk_against_a_fake_that_hands_out_the_same_sandbox_twice(tmp_path):
    with FakeE2B() as fake:
        fake.recycle = 2
        with Farm(tmp_path) as farm:
            farm.worker("e2b", concurrency=1, env=fake.env())
            run_id = farm.start_run(["e2b"], [HELLO], repetitions=4, concurrency=1)
            farm.wait(run_id, timeout=180)
            samples = sorted(farm.store.samples(run_id), key=lambda s: s["started_ns"])
            env = farm.store.env_facts(run_id, ["e2b"])

    assert {s["outcome"] for s in samples} == {"ok"}, [s["error"] for s in samples]
    ids = [s["sandbox"]["identity"] for s in samples]
    # the fake runs code as host subprocesses: the worker's own kernel and pid namespace
    assert {i["isolation"] for i in ids} == {"process"} and env["e2b"]["isolation"] == "process"
    assert samples[0]["reused"] is None and ids[0]["marker"] == "written"
    # creates 2 and 3 got sandbox 1 back (recycle = 2): same id, its marker still in its home
    assert [s["reused"] for s in samples[1:3]] == ["marker,sandbox_id"] * 2
    assert ids[1]["marker_by"].startswith("e2b|hello|")
    assert samples[3]["reused"] is None  # recycling used up: a new sandbox
