"""Record a real `farm run` session, print it, and render it as docs/img/cli-session.svg (and .png).

    .venv/bin/python docs/img/render_session.py [--png]

The run is real (embedded Redis, local workers, the local and sim providers) with one snippet that
fails, in a scratch folder. The command runs on a pseudo-terminal so the live progress is rich's
own; its last frame is read back through the pyte terminal emulator, followed by the table printed
on stdout, then rendered with rich's export_svg. --png screenshots the SVG with headless Chromium.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLS, ROWS = 104, 80
FAILING = '''# /// farm
# name = "fetch"
# description = "Imports a package the sandbox does not have"
# ///
import left_pad  # not installed: the run records the failure with its message
'''
ARGS = ["run", "--providers", "local,sim", "--snippets-dir", "snippets", "--snippets", "hello,fetch",
        "-n", "6", "--warmup", "0", "-c", "1", "--columns", "err,n,p50,p95"]


def record(folder: Path) -> tuple[str, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.Popen([sys.executable, "-m", "farm", *ARGS], cwd=folder, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave,
                            env={**env, "TERM": "xterm-256color", "COLUMNS": str(COLS)})
    os.close(slave)
    written = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        chunk = b""
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            written += chunk
        if not chunk and proc.poll() is not None:
            break
    stdout = proc.communicate()[0].decode()
    os.close(master)
    return written.decode(errors="replace"), stdout


def last_frame(written: str) -> list[str]:
    import pyte

    screen = pyte.Screen(COLS, ROWS)
    pyte.Stream(screen).feed(written.replace("\r\n", "\n").replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


def render(stderr_lines: list[str], stdout: str) -> str:
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=COLS, force_terminal=True, color_system="truecolor", file=open(os.devnull, "w"))
    console.print(Text("$ farm " + " ".join(ARGS), style="bold"))
    for line in stderr_lines:
        text = Text(line)
        text.highlight_regex(r"━+", "green")
        text.highlight_regex(r"[1-9][0-9]* failed", "red")
        text.highlight_regex(r"^errors: .*", "red")
        console.print(text)
    for line in stdout.rstrip("\n").splitlines():
        text = Text(line)
        text.highlight_regex(r"snippet_failed.*", "red")
        console.print(text)
    return console.export_svg(title="farm run")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="farm-session-"))
    try:
        (folder / "snippets").mkdir()
        (folder / "snippets" / "fetch.py").write_text(FAILING)
        written, stdout = record(folder)
        frame = last_frame(written)
        print("\n".join(frame) + "\n" + stdout)  # the text, for README
        (HERE / "cli-session.svg").write_text(render(frame, stdout))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "--png" in sys.argv:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        height = 40 + 20 * (len(frame) + len(stdout.splitlines()) + 3)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={COLS * 9 + 80},{height}", f"--screenshot={HERE / 'cli-session.png'}",
                        (HERE / "cli-session.svg").as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {HERE / 'cli-session.svg'}" + (" and .png" if "--png" in sys.argv else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
