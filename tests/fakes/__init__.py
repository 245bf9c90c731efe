"""Local stand-ins for provider control planes, served on 127.0.0.1 for the real SDKs to talk to.

``FakeServer`` is the shared plumbing (used by the Daytona and Morph fakes; the e2b fake is standalone):
a threaded stdlib HTTP server on port 0 that records every request, checks the bearer key, runs
snippet code in real subprocesses, and can be told to fail a route with a status, stall it, hang it
until the server closes, drop the connection unanswered, or be closed (connection refused).
Subclasses name routes with ``route(method, parts)`` and answer them with ``do_<route>(req)``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]


@dataclass
class Fault:
    status: int | None = None       # answer with this HTTP status
    message: str = "injected"
    delay: float = 0.0              # stall this long first
    hang: bool = False              # never answer (until the server closes)
    drop: bool = False              # close the connection without a response
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    route: str
    args: tuple[str, ...]
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]  # without Authorization: a recorded request never holds the key


@dataclass
class ProcResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class FakeServer:
    """Base class: ``with FakeX() as fake: ...``; ``fake.fail("create", 429)``; ``fake.close()``."""

    name = "fake"

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self.faults: dict[str, list[Fault]] = {}
        self.lock = threading.RLock()
        self.root = tempfile.mkdtemp(prefix=f"fake-{self.name}-")
        self.bin_dir = os.path.join(self.root, "bin")
        os.makedirs(self.bin_dir)
        # Inside a "sandbox" python3 is this interpreter: fast, and no pyenv shim in the way.
        os.symlink(sys.executable, os.path.join(self.bin_dir, "python3"))
        os.symlink(sys.executable, os.path.join(self.bin_dir, "python"))
        self._closing = threading.Event()
        self._procs: set[subprocess.Popen] = set()
        self._server: ThreadingHTTPServer | None = None
        self._url = ""

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "FakeServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"fake-{self.name}",
                         daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        """Stop listening: from now on the port refuses connections. Hung requests are released."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for proc in list(self._procs):
            _kill(proc)

    @property
    def url(self) -> str:
        return self._url

    # --- test controls --------------------------------------------------------------------------
    def fail(self, route: str, status: int | None = None, message: str = "injected", *, delay: float = 0.0,
             hang: bool = False, drop: bool = False, times: int = 1,
             headers: dict[str, str] | None = None) -> None:
        """Make the next ``times`` calls to ``route`` fail, stall, hang or drop."""
        self.faults.setdefault(route, []).append(
            Fault(status, message, delay, hang, drop, times, dict(headers or {})))

    def calls(self, route: str) -> list[Request]:
        return [r for r in self.requests if r.route == route]

    def routes(self) -> list[str]:
        return [r.route for r in self.requests]

    # --- for subclasses -------------------------------------------------------------------------
    def route(self, method: str, parts: list[str]) -> tuple[str, tuple[str, ...]]:
        raise NotImplementedError

    def error_body(self, status: int, message: str, req: Request) -> Any:
        return {"statusCode": status, "message": message}

    def run_process(self, argv: list[str], env: dict[str, str], cwd: str, timeout: float | None) -> ProcResult:
        """Run a real process "inside the sandbox": clean env, own session, killed on timeout."""
        full_env = {"PATH": f"{self.bin_dir}:/usr/bin:/bin", "HOME": cwd, "LANG": "C.UTF-8", **env}
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
            return ProcResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            _kill(proc)
            return ProcResult(-1, "", "", timed_out=True)
        finally:
            self._procs.discard(proc)

    def _take_fault(self, route: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(route) or []
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle on, the body waits for the client's delayed
    # ACK (~40 ms on Linux), a delay no real API adds and every timed call would carry.
    disable_nagle_algorithm = True
    fake: FakeServer

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.fake
        parsed = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        route, args = fake.route(method, parts)
        req = Request(method, parsed.path, route, args, urllib.parse.parse_qs(parsed.query), body,
                      {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"})
        with fake.lock:
            fake.requests.append(req)
        if route == "unknown":
            return self._send(404, fake.error_body(404, f"no route {method} {parsed.path}", req))
        if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return self._send(401, fake.error_body(401, "Invalid credentials", req))
        fault = fake._take_fault(route)
        if fault:
            if fault.hang:
                fake._closing.wait(60)
                self.close_connection = True
                return None
            time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True  # "Remote end closed connection without response"
                return None
            if fault.status:
                return self._send(fault.status, fake.error_body(fault.status, fault.message, req), fault.headers)
        try:
            answer = getattr(fake, f"do_{route}")(req)
        except Exception as exc:  # a bug in the fake shows up as a 500 the test can see, not a hang
            answer = (500, fake.error_body(500, f"fake {fake.name} failed: {type(exc).__name__}: {exc}", req))
        try:
            self._send(*answer)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.close_connection = True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")
