"""The ``resume`` scenario (issue 14, item 2) through workers/measure.py's timing site: ground truth
from sim (pause and resume that take exactly N ms), a lost marker is a failure, a provider that
cannot pause is skipped with its reason, and a real `farm run --scenario cold,resume` on sim.

Error stated: sim's pause and resume are ``time.sleep`` of the configured duration, so a measured
value is never below it; above it is the sleep's overshoot plus the farm's own overhead (one
Python call), which is bounded here loosely (SLACK_MS) because the machine may be loaded."""

import json
import os

from farm.snippets import library
from providers.sim import SimProvider
from providers.base import SandboxSpec
from tests.harness import farm_cli
from workers.measure import measure_resume

TIMEOUTS = {"create": 30, "ready": 30, "setup": 30, "run": 30}
SLACK_MS = 250  # overshoot bound on a loaded machine; the lower bound is exact
SPEC = SandboxSpec(labels={"farm": "sandbox-farm"})


def _sim(**settings):
    return SimProvider({"pause": {"dist": "fixed", "ms": 40}, "resume": {"dist": "fixed", "ms": 70},
                        "ready": {"dist": "fixed", "ms": 5}, **settings})


def test_sim_pause_and_resume_are_measured_within_the_sleep_resolution():
    out = measure_resume(_sim(), SPEC, library()["hello"], {}, TIMEOUTS)
    assert out["outcome"] == "ok", out
    assert 40e6 <= out["pause_ns"] <= (40 + SLACK_MS) * 1e6
    assert 70e6 <= out["resume_ns"] <= (70 + SLACK_MS) * 1e6
    # tti_resume = resume + the first command (sim's ready draw: 5 ms) that found the marker
    assert out["resume_ns"] + 5e6 <= out["tti_resume_ns"] <= out["resume_ns"] + (5 + SLACK_MS) * 1e6
    assert out["run_ns"] is not None and out["destroy_ns"] is not None
    # the set-up is recorded, untimed: no create/ready phases on a resume sample
    assert "create_ns" not in out and "ready_ns" not in out
    assert set(out["sandbox"]["setup"]) == {"create_ms", "ready_ms"}
    assert out["sandbox"]["resume_kind"] == "simulated"


def test_a_resume_that_loses_the_marker_is_a_state_lost_failure_not_a_fast_resume():
    out = measure_resume(_sim(lose_state=1.0), SPEC, library()["hello"], {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "state_lost" and out["error_phase"] == "resume"
    assert "marker" in out["error"]
    assert "tti_resume_ns" not in out and "run_ns" not in out  # no resume time is reported for it
    assert out["destroy_ns"] is not None  # and the sandbox is still destroyed


def test_a_provider_that_cannot_pause_is_skipped_with_its_reason_never_a_zero():
    out = measure_resume(SimProvider({}), SPEC, library()["hello"], {}, TIMEOUTS)
    assert out == {"outcome": "skipped",
                   "error": "sim: set providers.sim.pause and providers.sim.resume to simulate pausing"}


def test_a_failed_pause_is_recorded_in_its_phase_and_the_sandbox_destroyed():
    out = measure_resume(_sim(failures={"provider_error": 1.0}, fail_phases=["pause"]), SPEC,
                         library()["hello"], {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_phase"] == "pause" and "pause_ns" not in out
    assert out["destroy_ns"] is not None


def test_farm_run_with_cold_and_resume_reports_each_scenario_in_its_own_rows(tmp_path):
    (tmp_path / "config.yml").write_text(json.dumps({
        "plan": {"providers": ["sim"]},
        "providers": {"sim": {"pause": {"dist": "fixed", "ms": 20}, "resume": {"dist": "fixed", "ms": 30},
                              "create": {"dist": "fixed", "ms": 10}}}}))
    run = farm_cli("run", "--scenario", "cold,resume", "--snippets", "hello", "-n", "3", "--warmup", "0",
                   "-c", "1", "--json", cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["document_version"] >= 8 and doc["manifest"]["plan"]["scenarios"] == ["cold", "resume"]
    assert doc["status"]["planned"] == 6 and doc["counts"]["ok"] == 6
    rows = {(r["scenario"], r["phase"]): r for r in doc["results"]}
    assert rows[("resume", "resume")]["n"] == 3 and rows[("resume", "resume")]["min_ms"] >= 30
    assert rows[("resume", "pause")]["min_ms"] >= 20 and ("resume", "tti_resume") in rows
    assert ("cold", "create") in rows and ("cold", "pause") not in rows and ("resume", "create") not in rows
    assert "2 scenario(s) (cold, resume)" in run.stderr

    table = farm_cli("report", doc["run_id"], cwd=tmp_path)
    assert table.returncode == 0 and "hello@resume" in table.stdout and "tti_resume" in table.stdout
    assert "cost sim: no price configured (6 sandboxes" in table.stdout  # resume samples' sandboxes count
    csv = farm_cli("report", doc["run_id"], "--format", "csv", cwd=tmp_path)
    assert sum(",resume," in line for line in csv.stdout.splitlines()) == 3

    history = farm_cli("history", "--provider", "sim", "--snippet", "hello", "--phase", "resume",
                       "--scenario", "resume", "--json", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    assert [e["n"] for e in json.loads(history.stdout)] == [3]

    bad = farm_cli("run", "--scenario", "cold,resum", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'resume'" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_local_pauses_and_resumes_its_long_lived_interpreter_and_keeps_the_marker():
    from providers.local import LocalProvider
    from providers.local_resident import _state

    provider = LocalProvider({})
    out = measure_resume(provider, SPEC, library()["hello"], {}, TIMEOUTS)
    assert out["outcome"] == "ok", out
    assert out["pause_ns"] > 0 and out["resume_ns"] > 0 and out["tti_resume_ns"] > out["resume_ns"]
    assert out["sandbox"]["pause_polls"] >= 1 and out["sandbox"]["paused_processes"] >= 1
    assert "hello" in out["output"].lower() or out["exit_code"] == 0

    # while paused the interpreter answers nothing; after resume it still holds what it was given
    sandbox = provider.create(SPEC)
    try:
        provider.prepare_pause(sandbox)
        assert provider.run(sandbox, "x = 1\nimport os\nopen(os.path.expanduser('~/m'), 'w').write('kept')\n",
                            {}, 30).ok
        provider.pause(sandbox)
        resident = sandbox.info["resident"]
        assert all(_state(p) in ("T", "t") for p in resident.tree())
        provider.resume(sandbox)
        got = provider.run(sandbox, "import os\nprint(open(os.path.expanduser('~/m')).read())\n", {}, 30)
        assert got.ok and got.stdout.strip() == "kept"
    finally:
        provider.destroy(sandbox)
    assert resident.proc.poll() is not None  # destroy ends the interpreter


def test_local_interpreter_killed_during_the_pause_is_state_lost():
    import signal as sig

    import pytest

    from providers.base import ProviderError
    from providers.local import LocalProvider

    provider = LocalProvider({})
    sandbox = provider.create(SPEC)
    try:
        provider.prepare_pause(sandbox)
        provider.pause(sandbox)
        resident = sandbox.info["resident"]
        for pid in resident.tree():
            os.kill(pid, sig.SIGKILL)
        resident.proc.wait()
        provider.resume(sandbox)
        with pytest.raises(ProviderError) as err:
            provider.run(sandbox, "print(1)", {}, 30)
        assert err.value.error_class == "state_lost"
    finally:
        provider.destroy(sandbox)


def test_local_long_lived_interpreter_survives_hostile_commands():
    from providers.local import LocalProvider

    provider = LocalProvider({})
    sandbox = provider.create(SPEC)
    try:
        provider.prepare_pause(sandbox)
        hostile = ("import os, sys\nos.write(1, b'\\x00' * 9)\nprint(sys.stdin.read() == '', flush=True)\n"
                   "os.write(2, b'to fd 2')\nos._exit(3)\n")
        got = provider.run(sandbox, hostile, {}, 30)
        assert got.exit_code == 3 and "True" in got.stdout and "to fd 2" in got.stderr
        assert provider.run(sandbox, "raise SystemExit('bye')", {}, 30).exit_code == 1
        assert provider.run(sandbox, "import os\nprint(os.environ['K'])", {"K": "v"}, 30).stdout.strip() == "v"
        assert provider.run(sandbox, "import os\nprint(os.environ.get('K'))", {}, 30).stdout.strip() == "None"
        after = provider.run(sandbox, "print('still here')", {}, 30)
        assert after.ok and after.stdout.strip() == "still here"
    finally:
        provider.destroy(sandbox)


class _SlowRegister:
    """A sandbox register whose Redis answers after exactly ``ms`` (a partition healing, a full Redis)."""

    def __init__(self, ms):
        self.ms, self.calls = ms, []

    def created(self, sandbox_id):
        import time
        time.sleep(self.ms / 1000)
        self.calls.append(("created", sandbox_id))

    def released(self, sandbox_id):
        self.calls.append(("released", sandbox_id))


WAIT_MS = 1000  # far above sim's phases (5-70 ms sleeps), so a phase holding the wait cannot pass


def test_a_total_that_waited_on_the_farms_own_redis_says_how_long():
    """Ground truth: the register's created() takes exactly WAIT_MS. ``total`` spans it (it spans the
    sandbox's life), and ``sandbox.farm_wait_ms`` says how much of it was the farm's own wait, so
    it is never read as the provider's; no phase contains it."""
    from workers.measure import measure
    for lifecycle in (measure, measure_resume):
        register = _SlowRegister(WAIT_MS)
        out = lifecycle(_sim(), SPEC, library()["hello"], {}, TIMEOUTS, register=register)
        assert out["outcome"] == "ok", out
        assert [c[0] for c in register.calls] == ["created", "released"]
        assert WAIT_MS <= out["sandbox"]["farm_wait_ms"] <= WAIT_MS + 4 * SLACK_MS  # a sleep's overshoot, loaded
        assert out["total_ns"] >= out["sandbox"]["farm_wait_ms"] * 1e6
        phases = [v for k, v in out.items() if k.endswith("_ns") and k != "total_ns"]
        assert all(v < WAIT_MS * 1e6 for v in phases), out  # sim's phases are 5-70 ms sleeps: none holds it
    quick = measure(_sim(), SPEC, library()["hello"], {}, TIMEOUTS, register=_SlowRegister(0))
    assert "farm_wait_ms" not in (quick.get("sandbox") or {})  # round trips, not a wait: nothing recorded
