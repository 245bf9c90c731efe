"""farm beat: real beat processes, a real worker, the test's own redis-server."""

import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from farm.beat import beat_schedule, next_fire_times
from farm.celery_app import make_app
from farm.config import parse_config
from tests.harness import farm_cli

CONFIG = """
schedules:
  tick:
    every_s: 2
    providers: [local]
    snippets: [hello]
    repetitions: 1
    warmup: 0
  nightly:
    cron: "0 2 * * *"
    timezone: Europe/Berlin
    snippets: [hello, primes]
"""


def test_two_beats_fire_each_period_once_and_runs_complete(farm, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    farm.worker("local", concurrency=2)
    env = {"REDIS_URL": farm.url, "FARM_DATA_DIR": str(tmp_path / "beatdata")}
    started = time.time()  # wall clock, as beat's periods are
    beats = [subprocess.Popen([sys.executable, "-m", "farm", "beat"], cwd=tmp_path, env={**__import__("os").environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    def fired():  # (runs started, periods guarded)
        runs = sum(farm.store.status(r).label == "schedule:tick" for r in farm.store.recent_runs(100))
        return runs, sum(1 for _ in farm.store.r.scan_iter("farm:schedule:tick:*"))

    try:  # until three periods fired (beat boots slowly on a loaded machine), with a deadline; stop
        # between firings (every guard has its run), so SIGTERM never lands inside one
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs, guards = fired()
            if runs >= 3 and runs == guards:
                break
            time.sleep(0.1)
    finally:
        for b in beats:
            b.send_signal(signal.SIGTERM)
        for b in beats:
            b.wait(timeout=20)
    stopped = time.time()
    store = farm.store
    runs = [r for r in store.recent_runs(100) if store.status(r).label == "schedule:tick"]
    guards = sorted(int(k.rsplit(":i", 1)[1]) for k in store.r.scan_iter("farm:schedule:tick:*"))
    logs = [b.stderr.read() for b in beats]
    assert len(runs) >= 3, logs
    fired_lines = [line for log in logs for line in log.splitlines() if "schedule tick started run" in line]
    assert len(fired_lines) >= 3, logs  # a normal firing is logged at INFO, never as a WARNING
    assert all(" INFO/" in line and "WARNING" not in line for line in fired_lines), fired_lines
    # one run per fired period, never two; a period whose guard was taken just as SIGTERM arrived
    # may have no run (the stop landed inside that firing), so at most one guard more than runs
    assert len(runs) <= len(guards) <= len(runs) + 1
    # each guard is a 2 s period of calendar time inside the test's own window; a period may be
    # skipped when a loaded machine starves both beats past it (beat does not catch up, on purpose)
    assert all(int(started // 2) <= g <= int(stopped // 2) for g in guards), (guards, started, stopped)
    assert not any(k for k in store.r.scan_iter("farm:schedule:nightly:*"))  # 02:00 Berlin: not due
    for run_id in runs:
        farm.wait(run_id, timeout=60)
        assert store.status(run_id).ok == 1
        assert store.manifest(run_id)["label"] == "schedule:tick"
    listed = farm_cli("runs", cwd=tmp_path, env={"REDIS_URL": farm.url})
    assert sum(line.endswith("  schedule:tick") for line in listed.stdout.splitlines()) == len(runs), listed.stdout


def test_stale_cron_run_is_not_fired_after_a_late_restart():
    # hourly, at the minute half an hour away from now: the last due time is always ~30 min ago
    minute = (datetime.now(timezone.utc).minute + 30) % 60
    config = parse_config({"schedules": {"hourly": {"cron": f"{minute} * * * *"}}})
    app = make_app("redis://127.0.0.1:1/0")  # never connected: only the schedule maths runs
    entry = beat_schedule(config, app)["hourly"]["schedule"]
    three_hours_ago = datetime.now(timezone.utc) - timedelta(hours=3)
    app.conf.beat_cron_starting_deadline = None
    assert entry.is_due(three_hours_ago).is_due            # without a deadline beat would catch up
    app.conf.beat_cron_starting_deadline = 600              # 10 min: the ~30 min old run is stale
    assert not entry.is_due(three_hours_ago).is_due        # with it, the stale run is skipped


def test_farm_schedules_lists_next_fire_times(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    out = farm_cli("schedules", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first.startswith("tick") and "every 2 s" in first
    assert second.startswith("nightly") and "cron '0 2 * * *' Europe/Berlin" in second
    assert "T02:00:00+0" in second and "local × hello,primes" in second  # +01:00 or +02:00 (DST)
    config = parse_config({"schedules": {"n": {"cron": "30 6 * * 1", "timezone": "UTC"}}})
    monday = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)  # a Monday, 06:00
    (_name, _s, nxt), = next_fire_times(config, monday)
    assert nxt == datetime(2026, 11, 30, 6, 30, tzinfo=timezone.utc)
    bad = farm_cli("schedules", cwd=tmp_path, env={"FARM_CONFIG": str(tmp_path / "bad.yml")})
    assert bad.returncode == 2


def test_beat_rejects_unknown_snippet_in_schedule(tmp_path):
    (tmp_path / "config.yml").write_text("schedules:\n  n:\n    every_s: 5\n    snippets: [helo]\n")
    out = farm_cli("beat", cwd=tmp_path)
    assert out.returncode == 2 and "schedules.n: unknown snippet 'helo'" in out.stderr


def test_sweep_schedule_reclaims_leaked_sandboxes(farm, tmp_path):
    """A `kind: sweep` schedule, fired the way beat fires it, reclaims what runs leaked."""
    import json as json_lib

    from farm.beat import fire

    ledger = tmp_path / "ledger"
    leaky = {"seed": 5, "ledger_dir": str(ledger), "fail_phases": ["destroy"],
             "failures": {"provider_error": 0.5}}
    farm.config = parse_config({"providers": {"sim": leaky},
                                "schedules": {"hourly-sweep": {"kind": "sweep", "cron": "0 * * * *",
                                                               "providers": ["sim"]}}})
    farm.worker("sim", concurrency=1)
    run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=10)
    farm.wait(run_id)
    leaked = [s["leaked"] for s in farm.store.samples(run_id) if s["leaked"]]
    assert leaked
    fired = fire(farm.store, farm.scheduler, farm.config, "hourly-sweep")
    assert fired.swept == len(leaked)
    assert fire(farm.store, farm.scheduler, farm.config, "hourly-sweep").skipped  # once per period
    reclaimed = farm.store.r.hget(f"farm:run:{run_id}:sweep", "sim:reclaimed")
    assert int(reclaimed) == len(leaked)
    last = json_lib.loads(farm.store.r.hget("farm:sweep:last", "sim"))
    assert last["deleted"] == len(leaked) and last["error"] == ""
