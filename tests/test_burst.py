"""The burst scenario: N creates released at one instant by a barrier in a real redis-server, across
two real prefork worker processes, each sample's start skew and the group's spread recorded (and
checked against the samples' own timestamps). The spread's target (< 50 ms) is bench/burst.py's."""

import json
import time

from farm.report import build
from farm.snippets import Snippet
from tests.harness import Farm
from workers.burst import burst_group

HELLO = Snippet(name="hello", code="print('hi')\n")
N = 50


def test_plan_items_form_consecutive_groups_the_last_one_short():
    assert [burst_group(i, 4, 10) for i in (0, 3, 4, 8, 9)] == [(0, 4), (0, 4), (1, 4), (2, 2), (2, 2)]


def test_the_barrier_releases_a_group_once_all_have_arrived_and_late_ones_at_once(farm):
    st, run = farm.store, "run-barrier"
    assert st.burst_arrive(run, "sim:0", "a", 3, 100) == (None, 1, False)
    assert st.burst_arrive(run, "sim:0", "a", 3, 100) == (None, 1, False)  # a redelivery is not a second arrival
    assert st.burst_arrive(run, "sim:0", "b", 3, 100)[0] is None
    before = time.time_ns()
    release, arrived, late = st.burst_arrive(run, "sim:0", "c", 3, 100)
    assert arrived == 3 and not late and release >= before + 50_000_000  # the instant lies ~100 ms ahead
    assert st.burst_wait(run, "sim:0", 1) == release == st.burst_wait(run, "sim:0", 1)  # a and b wake
    assert st.burst_wait(run, "sim:0", 0.05) is None  # nothing more to hand out
    assert st.burst_arrive(run, "sim:0", "d", 3, 100) == (release, 4, True)
    for start in (release + 7, release + 2, release + 30):
        st.burst_started(run, "sim:0", start)
    group = st.burst_groups(run)["sim:0"]
    assert group["first_ns"] == release + 2 and group["last_ns"] == release + 30 and group["spread_ns"] == 28
    assert group["started"] == 3 and group["size"] == 3


def test_a_burst_of_50_on_sim_across_two_worker_processes(tmp_path):
    config = {"providers": {"sim": {"create": {"dist": "fixed", "ms": 50}, "seed": 4}}, "defaults": {"retries": 0}}
    with Farm(tmp_path, config) as farm:
        first = farm.worker("sim", concurrency=N // 2)
        second = farm.worker("sim", concurrency=N // 2)
        run_id = farm.scheduler.create_run(farm.config, ["sim"], [HELLO], repetitions=N, warmup=0, concurrency=N,
                                           scenarios=("burst",), burst=N)
        farm.wait(run_id, timeout=300)
        samples = farm.store.samples(run_id)
        groups = farm.store.burst_groups(run_id)
        doc = build(farm.store, run_id)
        pids = {first.proc.pid, second.proc.pid}

    assert len(samples) == N and {s["outcome"] for s in samples} == {"ok"}, [s["error"] for s in samples]
    assert {s["scenario"] for s in samples} == {"burst"} and len(pids) == 2
    assert len({s["worker"] for s in samples}) > N // 2  # pool processes of both workers took part
    records = [s["burst"] for s in samples]
    (release,) = {r["release_ns"] for r in records}
    assert {r["group"] for r in records} == {"sim:0"} and {r["size"] for r in records} == {N}
    starts = [r["start_ns"] for r in records]
    for r in records:
        assert r["start_ns"] >= release and not r["late"]  # nobody started before the instant
        assert r["skew_ms"] == round((r["start_ns"] - release) / 1e6, 3)
    for s in samples:  # the timed create began at the release: the task started before it
        assert s["started_ns"] < s["burst"]["start_ns"] and s["create_ns"] >= 50e6
    group = groups["sim:0"]
    assert group["started"] == N and group["release_ns"] == release
    assert group["first_ns"] == min(starts) and group["last_ns"] == max(starts)
    assert group["spread_ns"] == max(starts) - min(starts)  # the recorded spread, from the samples' own clocks
    summary = doc.burst["sim"]
    assert summary["in_burst"] == N and summary["spread_ms_max"] == group["spread_ns"] / 1e6
    assert summary["skew_ms"]["max"] == max(r["skew_ms"] for r in records)
    assert {r.snippet for r in doc.results} == {"hello"} and any(r.phase == "tti" and r.n == N for r in doc.results)


def test_cold_and_burst_runs_of_one_plan_through_the_cli_and_compared_across_scenarios(tmp_path):
    from tests.harness import farm_cli

    config = tmp_path / "config.yml"
    config.write_text("plan:\n  providers: [sim]\nproviders:\n  sim:\n    create: {dist: fixed, ms: 20}\n")
    runs = {}
    for scenario in (["--scenario", "cold", "-n", "4"], ["--scenario", "burst", "--burst", "4"]):
        out = farm_cli("--config", str(config), "run", "--snippets", "hello", "--warmup", "0", *scenario, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        runs[scenario[1]] = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("run "))
        if scenario[1] == "burst":
            assert "burst sim: 1 group(s) of 4, 4 released; largest spread (first to last start)" in out.stdout
    plain = farm_cli("--config", str(config), "compare", runs["cold"], runs["burst"], "--json", cwd=tmp_path)
    assert plain.returncode == 4 and json.loads(plain.stdout)["series"] == []  # like with like: none shared
    across = farm_cli("--config", str(config), "compare", runs["cold"], runs["burst"], "--json",
                      "--across-scenarios", cwd=tmp_path)
    series = json.loads(across.stdout)["series"]
    tti = next(e for e in series if e["phase"] == "tti")
    assert tti["scenario"] == "cold vs burst" and tti["snippet"] == "hello" and tti["n_a"] == tti["n_b"] == 4
    bad = farm_cli("--config", str(config), "run", "--scenario", "cold,burst", "--burst", "4", cwd=tmp_path)
    assert bad.returncode == 2 and "runs alone" in bad.stderr and "Traceback" not in bad.stderr
