"""Embedded lifecycle through the real CLI: one supervisor per data folder owns the embedded Redis;
commands join it, the last one out stops it, and nothing outlives a SIGKILLed `farm run`."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from farm.waiting import wait_until

ENV = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FARM_REDIS_URL", "FARM_DATA_DIR")}


def _farm(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "farm", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` with its command line (zombies count as gone)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_two_runs_in_one_folder_share_redis_and_both_finish(tmp_path):
    runs = [_farm("run", "--snippets", "hello", "-n", str(n), "--warmup", "0", "--json", cwd=tmp_path)
            for n in (4, 12)]
    outputs = [proc.communicate(timeout=600) for proc in runs]
    for proc, (out, err), n in zip(runs, outputs, (4, 12)):
        assert proc.returncode == 0, err[-2000:]
        doc = json.loads(out)
        assert doc["status"]["done"] == doc["status"]["planned"] == n, doc["status"]
    sock = tmp_path / ".farm" / "redis.sock"
    assert not sock.exists() or not _pings(sock)  # the last one out stopped Redis


def _pings(sock: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.ConnectionError, OSError):
        return False


def test_sigkilled_run_leaves_no_redis_or_worker_behind(tmp_path):
    proc = _farm("run", "--snippets", "hello", "-n", "500", "--warmup", "0", cwd=tmp_path)
    try:
        family = wait_until(lambda: (lambda d: d if any("celery" in c for c in d.values())
                                     and any("redis-server" in c for c in d.values()) else None)(
                                         _descendants(proc.pid)),
                            120, "farm run to boot its Redis and worker")
        wait_until(lambda: _pings(tmp_path / ".farm" / "redis.sock"), 60, "the embedded Redis")
    except BaseException:
        proc.kill()
        raise
    family.update(_descendants(proc.pid))  # pool children forked meanwhile
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        wait_until(lambda: not _alive(family), 90, "redis-server and workers to exit after SIGKILL")
    finally:
        for pid in _alive(family):
            os.kill(pid, signal.SIGKILL)
    assert not _pings(tmp_path / ".farm" / "redis.sock")
