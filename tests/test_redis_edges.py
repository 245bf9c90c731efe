"""Redis edges through the real CLI against a real redis-server (the `farm` fixture's, used as a
distributed farm's Redis via REDIS_URL): Redis full, and Redis emptied under a running `farm run`."""

import os
import subprocess
import sys

from farm.waiting import wait_until


def _farm_run(farm, tmp_path, *args):
    env = {**os.environ, "REDIS_URL": farm.url}
    return subprocess.Popen([sys.executable, "-m", "farm", "run", "--snippets", "hello", *args], cwd=tmp_path,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_redis_full_at_creation_is_one_line_and_exit_3(farm, tmp_path):
    farm.store.raw.config_set("maxmemory", 1)  # every write that needs memory is refused (noeviction)
    try:
        proc = _farm_run(farm, tmp_path, "-n", "3")
        out, err = proc.communicate(timeout=120)
    finally:
        farm.store.raw.config_set("maxmemory", 0)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "Redis is full" in err and "the run was not created" in err
    assert farm.store.recent_runs() == []  # nothing half-created is left listed


def test_redis_emptied_mid_run_is_one_line_and_exit_3(farm, tmp_path):
    proc = _farm_run(farm, tmp_path, "-n", "5")  # no worker: the run stays open until Redis is emptied
    try:
        run_id = wait_until(lambda: next(iter(farm.store.active_runs()), None), 120, "farm run to create its run")
        farm.store.raw.flushall()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "KeyError" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("farm: ") and f"no longer holds run {run_id}" in last, err


# --- the follower never waits forever: stalled, with the reason, exit 6 (farm/stall.py) ------------

def _stall_config(tmp_path, seconds=3):
    path = tmp_path / "stall.yml"
    path.write_text(f"defaults:\n  stall_after_s: {seconds}\n")
    return str(path)


def _farm(farm, tmp_path, *args):
    env = {**os.environ, "REDIS_URL": farm.url}
    return subprocess.run([sys.executable, "-m", "farm", "--config", _stall_config(tmp_path), *args],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=180)


def _stalled_line(proc):
    assert proc.returncode == 6, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("farm: stalled: "), proc.stderr
    return last


def test_watch_reports_stalled_when_redis_stays_full(farm, tmp_path):
    run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=3)
    farm.store.raw.config_set("maxmemory", 1)
    try:
        proc = _farm(farm, tmp_path, "watch", run_id)
    finally:
        farm.store.raw.config_set("maxmemory", 0)
    last = _stalled_line(proc)
    assert "Redis is full" in last and f"farm watch {run_id}" in last, proc.stderr
    notices = [ln for ln in proc.stderr.splitlines() if ln.startswith("farm: Redis is full")]
    assert len(notices) == 1, proc.stderr  # said once, as soon as it was seen
    assert farm.store.status(run_id).state != "finished"  # kept, to be followed again


def test_run_reports_stalled_when_no_worker_serves_it(farm, tmp_path):
    proc = _farm(farm, tmp_path, "run", "--providers", "sim", "--snippets", "hello", "-n", "2")
    last = _stalled_line(proc)
    assert "no live worker consumes farm.sim" in last and "farm worker --provider sim" in last, proc.stderr
    run_id = next(iter(farm.store.active_runs()))
    assert f"farm watch {run_id}" in last


def test_watch_reports_stalled_when_live_workers_commit_nothing(tmp_path):
    from tests.harness import Farm

    with Farm(tmp_path / "f", {"providers": {"sim": {"run": {"dist": "fixed", "ms": 600_000}}}}) as farm:
        farm.worker("sim", concurrency=1)
        run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=2, concurrency=1)
        proc = _farm(farm, tmp_path, "watch", run_id)
    last = _stalled_line(proc)
    assert "workers are live but none committed a sample" in last, proc.stderr


def test_watch_of_a_run_emptied_under_it_is_one_line_and_exit_3(farm, tmp_path):
    run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=3)
    env = {**os.environ, "REDIS_URL": farm.url}
    proc = subprocess.Popen([sys.executable, "-m", "farm", "watch", run_id], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: farm.store.r.exists("farm:lock:reconciler") or proc.poll() is not None, 120,
                   "farm watch to follow the run")
        farm.store.raw.flushall()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.startswith("farm: ")]) == 1, err
    assert f"no longer holds run {run_id}" in err.strip().splitlines()[-1], err
