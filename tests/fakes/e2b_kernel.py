"""The fake e2b code interpreter's kernel: one cell in a fresh Python process, reported as Jupyter would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Runs one cell the way a kernel would report it: output streams, and an uncaught exception
# (SystemExit too: IPython catches it) becomes a JSON error record on the pipe named by argv[1].
_CELL_RUNNER = r"""
import json, os, sys, traceback
code = sys.stdin.read()
try:
    exec(compile(code, "<cell>", "exec"), {"__name__": "__main__"})
except BaseException as exc:
    sys.stdout.flush(); sys.stderr.flush()
    with os.fdopen(int(sys.argv[1]), "w") as fh:
        json.dump({"name": type(exc).__name__, "value": str(exc),
                   "traceback": "".join(traceback.format_exception(exc))[-4000:]}, fh)
"""


def run_cell(code: str, home: str, env: dict[str, str], procs: set) -> tuple[str, str, dict | None]:
    """Run ``code`` in ``home`` with exactly ``env``; (stdout, stderr, error record or None).
    The process sits in ``procs`` while it runs, so the server can kill it when it closes."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", _CELL_RUNNER, str(write_fd)], cwd=home, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(write_fd,))
    os.close(write_fd)
    procs.add(proc)
    try:
        out, err = proc.communicate(code.encode(), timeout=60)
    finally:
        procs.discard(proc)
    with os.fdopen(read_fd) as fh:
        raw = fh.read()
    return out.decode(errors="replace"), err.decode(errors="replace"), json.loads(raw) if raw else None
