"""A distributed `farm run` for a provider no live worker serves says so, with how to start one,
and keeps saying it until a worker comes; then the run finishes (issue 20). Real Redis, real
`python -m farm run` process, real prefork worker."""

import os
import subprocess
import sys
import threading
import time

from farm.waiting import wait_until


def test_run_without_worker_says_so_until_one_starts(farm, tmp_path):
    env = {**os.environ, "REDIS_URL": farm.url}
    proc = subprocess.Popen([sys.executable, "-m", "farm", "run", "--providers", "local", "--snippets", "hello",
                             "-n", "2", "--warmup", "0"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    notices: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: notices.extend(
        (time.monotonic(), line) for line in proc.stderr if "no live worker" in line), daemon=True)
    started = time.monotonic()
    try:
        reader.start()
        try:  # a deadline for a loaded machine, not a window
            wait_until(lambda: len(notices) >= 2 or proc.poll() is not None, 120, "two notices", 0.2)
        except TimeoutError:
            pass
        assert len(notices) >= 2, f"notices: {notices}, exit {proc.poll()}"
        first = notices[0][1]
        assert "farm.local" in first and "farm worker --provider local" in first
        assert notices[1][0] - notices[0][0] >= 5  # repeated, not flooded
        farm.worker("local", concurrency=1)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "2 ok / 0 failed" in out, out
    assert notices[0][0] - started < 60
