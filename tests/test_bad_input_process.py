"""Bad input that needs a real process, a real Redis or a special file (issue 19, items 12-14):
each case is one line on stderr, a non-zero exit and no traceback, within a deadline (the shapes
reproduced here used to hang or retry forever)."""

import os
import subprocess
import sys
import time

import pytest

from farm.embedded import redis_server_binary
from farm.waiting import wait_until
from tests.harness import farm_cli

HEADER = '# /// farm\n# name = "{name}"\n# ///\nprint("hi")\n'
BAD_CRON = "schedules:\n  nightly:\n    cron: '{cron}'\n"


def _one_line(proc, expected):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("farm: ") and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("cron,expected", [("61 * * * *", "bad minute field '61'"),
                                           ("0 25 * * *", "bad hour field '25'"),
                                           ("0 2 31 2 *", "never fires")])
@pytest.mark.parametrize("command", ["schedules", "beat"])
def test_bad_cron_is_one_line_in_schedules_and_beat(tmp_path, command, cron, expected):
    (tmp_path / "config.yml").write_text(BAD_CRON.format(cron=cron))
    proc = farm_cli(command, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    _one_line(proc, f"schedules.nightly: cron '{cron}'")
    assert expected in proc.stderr


@pytest.fixture
def password_redis(tmp_path):
    """A real redis-server that requires a password, on a unix socket."""
    sock = tmp_path / "pw.sock"
    proc = subprocess.Popen([redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--requirepass", "the-right-one"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        assert proc.poll() is None, "redis-server exited"
        return sock.exists()

    wait_until(listening, 60, "redis-server's socket", 0.05)
    yield sock
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.parametrize("case", ["refused", "wrong password", "no password"])
def test_worker_gives_up_on_unreachable_redis(tmp_path, password_redis, case):
    """`farm worker` used to leave Celery retrying forever; now it is one line and exit 3."""
    url = {"refused": "redis://127.0.0.1:1/0",
           "wrong password": f"unix://{password_redis}?password=hunter2-wrong",
           "no password": f"unix://{password_redis}"}[case]
    start = time.monotonic()
    proc = farm_cli("worker", "--provider", "local", cwd=tmp_path, env={"REDIS_URL": url}, timeout=90)
    assert proc.returncode == 3, proc.stderr
    _one_line(proc, "credentials" if "password" in case else "cannot reach Redis")
    assert "hunter2-wrong" not in proc.stderr
    assert time.monotonic() - start < 60  # gave up, did not retry


def test_garbage_redis_url_is_not_amqp(tmp_path):
    proc = farm_cli("worker", "--provider", "local", cwd=tmp_path, env={"REDIS_URL": "garbage"}, timeout=60)
    assert proc.returncode == 3 and "amqp" not in proc.stderr
    _one_line(proc, "not a Redis URL")


@pytest.mark.parametrize("layout", ["farm", "aisb"])
def test_fifo_named_like_a_snippet_is_skipped(tmp_path, layout):
    """A FIFO named x.py used to block the CLI forever on open(); it is skipped with a warning."""
    folder = tmp_path / "snips"
    if layout == "farm":
        folder.mkdir()
        (folder / "good.py").write_text(HEADER.format(name="good"))
        os.mkfifo(folder / "x.py")
    else:
        (folder / "tests").mkdir(parents=True)
        (folder / "tests" / "test_good.py").write_text("def test_good():\n    return \"print('hi')\"\n")
        os.mkfifo(folder / "tests" / "test_x.py")
        os.mkfifo(folder / "x.py")
    proc = farm_cli("snippets", "--snippets-dir", str(folder), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "good" in proc.stdout and "Traceback" not in proc.stderr
    assert "x.py: not a regular file" in proc.stderr


def test_control_characters_never_reach_the_terminal(tmp_path):
    """An ANSI escape or carriage return in --label is stripped from `farm runs` and reports; the
    data folder the run left is private to its owner."""
    label = "nightly\x1b[2J\x1b[31m red\r\x07fake\x1b]0;title\x07"
    ran = farm_cli("run", "--snippets", "hello", "-n", "1", "--warmup", "0", "--label", label, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stderr.split()[1]
    runs = farm_cli("runs", cwd=tmp_path)
    report = farm_cli("report", run_id, "--format", "json", cwd=tmp_path)
    html = farm_cli("report", run_id, "--format", "html", "-o", "-", cwd=tmp_path)
    for out in (runs.stdout, report.stdout, html.stdout):
        assert "nightly" in out and "red" in out and "fake" in out, out[:2000]
        assert not any(ch in out for ch in "\x1b\r\x07"), repr(out[:2000])
    _assert_private(tmp_path / ".farm")


def _assert_private(data_dir):
    """Issue 19, item 15: the AOF, logs and socket are the owner's only (0700 folders, 0600 files)."""
    import stat

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    checked = 0
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        checked += 1
    assert any(p.name.endswith(".aof") for p in data_dir.rglob("*")) and checked >= 4
