"""Embedded `farm run` checks each planned provider on this host before creating the run: a missing
SDK or credential is one line, exit 2, no run. Distributed runs do not check this host (the workers
elsewhere may have what it lacks). Real `python -m farm` processes, real Redis."""

import os
import subprocess
import sys
import threading

from farm.waiting import wait_until
from tests.harness import farm_cli

RUN = ("run", "--providers", "e2b,local", "--snippets", "hello", "-n", "1", "--warmup", "0")
SECRET = "e2b_sentinel_value_never_printed_7f3a"


def _no_runs(cwd):
    runs = farm_cli("runs", cwd=cwd)
    assert runs.returncode == 0 and "no runs yet" in runs.stdout, (runs.stdout, runs.stderr)


def test_embedded_run_without_the_key_is_refused_before_any_run(tmp_path):
    done = farm_cli(*RUN, cwd=tmp_path, env={"E2B_API_KEY": "", "REDIS_URL": ""})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        "farm: e2b: E2B_API_KEY is not set: create a key in the e2b dashboard and export it (or put it in .env)"]
    assert "Traceback" not in done.stderr
    _no_runs(tmp_path)


def test_embedded_run_without_the_sdk_is_refused_and_shows_no_secret(tmp_path):
    # the seam: an `e2b` package on PYTHONPATH whose import fails as an uninstalled one does
    shadow = tmp_path / "shadow" / "e2b"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'e2b\'", name="e2b")\n')
    path = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    work = tmp_path / "work"
    work.mkdir()
    done = farm_cli(*RUN, cwd=work, env={"E2B_API_KEY": SECRET, "REDIS_URL": "", "PYTHONPATH": path})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        "farm: provider 'e2b' needs the 'e2b' package: pip install 'sandbox-farm[e2b]'"]
    assert SECRET not in done.stdout + done.stderr
    _no_runs(work)


def test_distributed_run_does_not_check_this_hosts_keys(farm, tmp_path):
    """With REDIS_URL the run is created and the usual notice says no worker serves farm.e2b."""
    env = {**os.environ, "REDIS_URL": farm.url, "E2B_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "farm", *RUN], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(proc.stderr), daemon=True)
    try:
        reader.start()
        wait_until(lambda: any("farm.e2b" in line for line in seen) or proc.poll() is not None,
                   120, "the no-live-worker notice", 0.2)
        assert any("no live worker" in line and "farm.e2b" in line for line in seen), seen
        assert not any("E2B_API_KEY" in line for line in seen), seen
        assert farm.store.active_runs(), "the run was created"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
