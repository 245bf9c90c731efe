"""The local provider's long-lived interpreter, for the ``resume`` scenario.

A local sandbox normally starts a fresh, confined interpreter per execution (under bubblewrap
even its /tmp and HOME are new each time), so nothing it holds could survive a pause. For the
resume baseline the sandbox gets one long-lived interpreter, started with the same confinement
(providers/confine.py), that executes every later command sent to it over a pipe: the marker the
resume scenario writes lives in *its* HOME, and is still there only if the interpreter survived.

Pausing stops every process of that interpreter's tree with SIGSTOP (bubblewrap puts the
interpreter in a session of its own, so the tree, not one process group, is signalled) and
reports paused once /proc shows each of them stopped; resuming sends SIGCONT and reports running
once none is stopped. Both are read from /proc every ≤ POLL_MAX_S: that is the stated resolution.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from providers.errors import ProviderError
from providers.polling import poll_until

_HEAD = struct.Struct("<Q")


@dataclass
class Executed:
    exit_code: int
    stdout: str
    stderr: str


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return found


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, T, ...), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


class Resident:
    """One long-lived interpreter: ``execute`` code in it, ``stop``/``cont`` its process tree."""

    POLL_FIRST_S = 0.0002
    POLL_MAX_S = 0.001
    # Reads length-prefixed code from stdin, runs it with stdout/stderr captured and answers with
    # length-prefixed JSON on the original stdout. SystemExit is an exit code, not the end.
    CODE = (
        "import contextlib, io, json, os, struct, sys, traceback\n"
        "inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), 'wb')\n"
        "while True:\n"
        "    head = inp.read(8)\n"
        "    if len(head) < 8:\n"
        "        break\n"
        "    req = json.loads(inp.read(struct.unpack('<Q', head)[0]))\n"
        "    o, e, rc = io.StringIO(), io.StringIO(), 0\n"
        "    saved = dict(os.environ)\n"
        "    os.environ.update(req['env'])\n"
        "    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):\n"
        "        try:\n"
        "            exec(compile(req['code'], '<farm>', 'exec'), {'__name__': '__main__'})\n"
        "        except SystemExit as x:\n"
        "            rc = x.code if isinstance(x.code, int) else (0 if x.code is None else 1)\n"
        "        except BaseException:\n"
        "            traceback.print_exc()\n"
        "            rc = 1\n"
        "    os.environ.clear()\n"
        "    os.environ.update(saved)\n"
        "    data = json.dumps({'rc': rc, 'out': o.getvalue(), 'err': e.getvalue()}).encode()\n"
        "    out.write(struct.pack('<Q', len(data)) + data)\n"
        "    out.flush()\n")

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    @classmethod
    def start(cls, argv: list[str], cwd: Path, env: Mapping[str, str]) -> "Resident":
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        return cls(proc)

    # --- commands ---------------------------------------------------------------------------------
    def execute(self, code: str, env: Mapping[str, str], timeout: float) -> Executed:
        if self.proc.poll() is not None:  # what it held went with it: not a slow sandbox, a lost one
            raise ProviderError("state_lost", f"local: the long-lived interpreter is gone (exit {self.proc.returncode})")
        request = json.dumps({"code": code, "env": dict(env)}).encode()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(_HEAD.pack(len(request)) + request)
            self.proc.stdin.flush()
            head = self._read(_HEAD.size, timeout)
            answer = json.loads(self._read(_HEAD.unpack(head)[0], timeout))
        except (BrokenPipeError, EOFError) as exc:
            raise ProviderError("state_lost", f"local: the long-lived interpreter died ({type(exc).__name__})") from None
        return Executed(int(answer["rc"]), answer["out"], answer["err"])

    def _read(self, size: int, timeout: float) -> bytes:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        data = b""
        while len(data) < size:
            if not select.select([fd], [], [], timeout)[0]:
                self.kill()
                raise ProviderError("timeout", f"local: no answer from the long-lived interpreter in {timeout:g} s")
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    # --- pause and resume -------------------------------------------------------------------------
    def tree(self) -> list[int]:
        pids, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo += _children(pid)
        return pids

    def _signal(self, pids: list[int], sig: signal.Signals) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGSTOP every process of the tree; return once /proc shows all of them stopped."""
        pids = self.tree()
        self._signal(pids, signal.SIGSTOP)
        polled = poll_until(lambda: True if all(_state(p) in ("T", "t", None) for p in pids) else None,
                            timeout=timeout, what="local pause", first_s=self.POLL_FIRST_S, max_s=self.POLL_MAX_S)
        return {"pause_polls": polled.polls, "paused_processes": len(pids)}

    def cont(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGCONT every process of the tree; return once /proc shows none of them stopped."""
        pids = self.tree()
        self._signal(pids, signal.SIGCONT)
        polled = poll_until(lambda: True if not any(_state(p) in ("T", "t") for p in pids) else None,
                            timeout=timeout, what="local resume", first_s=self.POLL_FIRST_S, max_s=self.POLL_MAX_S)
        return {"resume_polls": polled.polls}

    def kill(self) -> None:
        pids = self.tree()
        self._signal(pids, signal.SIGKILL)
        self._signal(pids, signal.SIGCONT)  # a stopped process dies only once continued on old kernels
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
