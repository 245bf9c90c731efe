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
