"""The local provider's long-lived interpreter, for the ``resume`` scenario.

A local sandbox normally starts a fresh, confined interpreter per execution (under bubblewrap
even its /tmp and HOME are new each time), so nothing it holds could survive a pause. For the
resume baseline the sandbox gets one long-lived interpreter, started with the same confinement
(providers/confine.py), that runs every later command sent to it over a pipe, each in a forked
child of itself: the marker the resume scenario writes lives in *its* HOME (its private /tmp under
bubblewrap), and is still there only if the interpreter survived.

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
    # Reads length-prefixed JSON requests from its stdin and answers length-prefixed JSON on its
    # stdout, through copies of those descriptors; fds 0-2 then point at /dev/null, so nothing a
    # command does can touch the protocol. Each command runs in a forked child (its stdout/stderr
    # in files, stdin /dev/null): the state lives in this interpreter and its HOME, a command that
    # exits, crashes or calls os._exit ends only its child, and its exit code is the child's.
    CODE = (
        "import json, os, struct, sys, tempfile, traceback\n"
        "inp, out = os.fdopen(os.dup(0), 'rb'), os.fdopen(os.dup(1), 'wb')\n"
        "null = os.open(os.devnull, os.O_RDWR)\n"
        "for fd in (0, 1, 2):\n"
        "    os.dup2(null, fd)\n"
        "while True:\n"
        "    head = inp.read(8)\n"
        "    if len(head) < 8:\n"
        "        break\n"
        "    req = json.loads(inp.read(struct.unpack('<Q', head)[0]))\n"
        "    o, e = tempfile.TemporaryFile(), tempfile.TemporaryFile()\n"
        "    sys.stdout.flush()\n"
        "    sys.stderr.flush()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        inp.close()\n"
        "        out.close()\n"
        "        os.dup2(o.fileno(), 1)\n"
        "        os.dup2(e.fileno(), 2)\n"
        "        os.environ.update(req['env'])\n"
        "        rc = 0\n"
        "        try:\n"
        "            exec(compile(req['code'], '<farm>', 'exec'), {'__name__': '__main__'})\n"
        "        except SystemExit as x:\n"
        "            rc = x.code if isinstance(x.code, int) else (0 if x.code is None else 1)\n"
        "            if not isinstance(x.code, int) and x.code is not None:\n"
        "                print(x.code, file=sys.stderr)\n"
        "        except BaseException:\n"
        "            traceback.print_exc()\n"
        "            rc = 1\n"
        "        sys.stdout.flush()\n"
        "        sys.stderr.flush()\n"
        "        os._exit(rc & 0xFF)\n"
        "    rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
        "    o.seek(0)\n"
        "    e.seek(0)\n"
        "    data = json.dumps({'rc': rc, 'out': o.read().decode('utf-8', 'replace'),\n"
        "                       'err': e.read().decode('utf-8', 'replace')}).encode()\n"
        "    o.close()\n"
        "    e.close()\n"
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
