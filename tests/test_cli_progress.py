"""Live progress of `farm run` (farm/progress.py): the ETA against a known completion rate, and the
real command in a pipe (plain lines) and in a pseudo-terminal (rich's display, read back through the
pyte terminal emulator: what a person would see), Ctrl-C included. Real runs: embedded Redis, local
prefork workers, the local and sim providers."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pyte

from farm.progress import Eta, Tally, eta_text
from tests.harness import farm_cli

BOOM = '# /// farm\n# name = "boom"\n# ///\nimport sys\nsys.exit("widget factory exploded")\n'
SLOW = '# /// farm\n# name = "slow"\n# ///\nimport time\ntime.sleep(2)\n'
COLS, ROWS = 120, 60


def test_eta_is_exact_for_a_steady_rate_after_a_slow_start():
    """Nothing completes for 10 s (workers boot), then one sample a second: the ETA is the true
    time left from the second completion on, where done/elapsed would say 99 s instead of 18 s."""
    eta = Eta(window_s=30)
    assert eta.update(5.0, 0, 20) is None and eta.update(10.0, 1, 20) is None  # no rate from one point
    assert eta.update(11.0, 2, 20) == 18.0
    assert eta.update(15.0, 6, 20) == 14.0
    assert eta.update(20.0, 6, 20) == 28.0  # stalled 5 s: the rate halves, the ETA grows, never freezes
    steady = Eta(window_s=30)
    for t in range(100):  # 2/s for 100 s, then 1/s: within a window the ETA follows the new rate
        steady.update(float(t), 1 + 2 * t, 1000)
    for t in range(100, 140):
        left = steady.update(float(t), 199 + (t - 99), 1000)
    assert abs(left - (1000 - 239) / 1.0) < 1e-9
    assert eta_text(None) == "ETA ?" and eta_text(8.4) == "ETA 0:08" and eta_text(3725) == "ETA 1:02:05"


def test_tally_counts_per_provider_and_error_class():
    tally = Tally()
    sep = "\x1f"
    tally.add([sep.join(["local", "boom", "0", "error", "snippet_failed"]),
               sep.join(["local", "hello", "0", "ok", ""]), sep.join(["e2b", "hello", "1", "error", "auth"]),
               sep.join(["e2b", "hello", "0", "error", "auth"])])
    assert tally.done == {"local": 2, "e2b": 2} and tally.failed == {"local": 1, "e2b": 2}
    assert tally.classes_text() == "auth 2, snippet_failed 1"
    tally.add([sep.join(["sim", "hello@resume", "0", "skipped", ""])] * 2)  # cannot pause: not a failure
    assert tally.skipped == {"sim": 2} and "sim" not in tally.failed and "skipped" not in tally.classes_text()
    assert tally.run_failed(5) == 3  # the status's failed counts the 2 skipped too


def _snippets(tmp_path):
    folder = tmp_path / "snips"
    folder.mkdir()
    (folder / "boom.py").write_text(BOOM)
    (folder / "slow.py").write_text(SLOW)
    return folder


def test_plain_lines_when_not_a_terminal(tmp_path):
    run = farm_cli("run", "--providers", "local,sim", "--snippets-dir", str(_snippets(tmp_path)), "--snippets",
                   "boom,hello", "-n", "2", "--warmup", "0", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stderr and "\r" not in run.stderr, repr(run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.startswith("progress: ")]
    assert lines and lines[-1] == ("progress: 8/8 done · 2 failed · 0 remaining | local 4/4 (2 failed), sim 4/4 "
                                   "| errors: snippet_failed 2"), run.stderr


def _in_terminal(args, cwd, env, interrupt_when=None, timeout=240):
    """Run the real farm CLI with stderr on a pseudo-terminal; (exit code, bytes written, stdout)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "farm", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave,
                            env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, "TERM": "xterm-256color",
                                 "COLUMNS": str(COLS), **env},
                            # SIGINT answered even when pytest runs in a non-interactive shell's background
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    written, interrupted, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other end closed: the process is gone
                    chunk = b""
                written += chunk
            if interrupt_when and not interrupted and interrupt_when(written):
                proc.send_signal(signal.SIGINT)
                interrupted = True
            if not chunk and proc.poll() is not None:
                break
        stdout = proc.communicate(timeout=60)[0].decode()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, written.decode(errors="replace"), stdout


def _screen(written):
    screen = pyte.Screen(COLS, ROWS)
    pyte.Stream(screen).feed(written.replace("\r\n", "\n").replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


def test_live_display_on_a_terminal_redraws_cleanly_without_colour_under_no_color(tmp_path):
    folder = _snippets(tmp_path)
    args = ["run", "--providers", "local,sim", "--snippets-dir", str(folder), "--snippets", "boom,hello", "-n", "2",
            "--warmup", "0"]
    code, written, stdout = _in_terminal(args, tmp_path, {"NO_COLOR": "1"})
    assert code == 0, written
    assert "\x1b[2K" in written or "\x1b[1A" in written, "redrawn in place"
    assert not re.search(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", written), "no colour under NO_COLOR"
    screen = _screen(written)
    bars = [line for line in screen if re.match(r"^(run|local|sim)  +\S", line)]
    assert bars == [line for line in screen if "failed" in line and "━" in line], screen  # one line per bar
    assert re.match(r"^run +━+ 8/8 2 failed done$", bars[0]), screen
    assert re.match(r"^local +━+ 4/4 2 failed$", bars[1]) and re.match(r"^sim +━+ 4/4 0 failed$", bars[2]), screen
    assert "errors: snippet_failed 2" in screen, screen
    assert "widget factory exploded" in stdout  # the table names the failure

    code, coloured, _ = _in_terminal(["run", "--snippets", "hello", "-n", "1", "--warmup", "0"], tmp_path, {})
    assert code == 0 and re.search(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", coloured), "colour on a colour terminal"


def test_ctrl_c_message_lands_on_its_own_line(tmp_path):
    folder = _snippets(tmp_path)
    code, written, _ = _in_terminal(
        ["run", "--providers", "local", "--snippets-dir", str(folder), "--snippets", "slow", "-n", "40", "--warmup",
         "0", "-c", "1"], tmp_path, {"NO_COLOR": "1"},
        interrupt_when=lambda out: re.search(rb"\b[1-9][0-9]*/40\b", out) is not None)
    assert code == 130, written
    screen = _screen(written)
    (said,) = [line for line in screen if "interrupted" in line]
    assert said.startswith("farm: interrupted: run ") and "farm watch" in said and "/40" not in said, screen
    bar = [line for line in screen if re.match(r"^run  +\S.* [0-9]+/40 0 failed ETA", line)]
    assert bar and screen.index(bar[-1]) < screen.index(said), screen
