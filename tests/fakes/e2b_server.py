"""A local stand-in for the e2b control plane, the sandbox edge and the code interpreter.

The real ``e2b`` SDK talks HTTP through a Rust (pyqwest) transport that respx cannot see, so tests
point ``E2B_API_URL`` and ``E2B_SANDBOX_URL`` at this server instead. It answers the routes the
installed SDK (e2b 2.63, e2b-code-interpreter 2.11) calls:

    POST   /v2/sandboxes                 Sandbox.create          -> 201 Sandbox (templateID, alias)
    GET    /v2/sandboxes?metadata&state&limit&nextToken  list    -> 200 [ListedSandbox], x-next-token
    GET    /sandboxes/{id}               Sandbox.get_info        -> 200 SandboxDetail / 404
    POST   /sandboxes/{id}/pause         Sandbox.pause           -> 204 once paused (``pause_ms`` after it arrived)
    POST   /v2/sandboxes/{id}/connect    Sandbox.connect         -> 200 Sandbox; a paused one resumes: its code
                                                                    interpreter answers ``resume_ms`` after the request
                                                                    arrived (``lose_on_resume``: its files are gone)
    DELETE /sandboxes/{id}               Sandbox.kill            -> 204 / 404
    POST   /sandboxes/{id}/snapshots     Sandbox.create_snapshot -> 201 SnapshotInfo
    DELETE /templates/{id}               Sandbox.delete_snapshot -> 204
    POST   /execute                      Sandbox.run_code        -> 200 JSON lines, streamed (chunked)
    GET    /health                       envd (port 49983) or code-interpreter (49999) health

Its state machine, with the truth known: a sandbox becomes usable (the code interpreter answers
/health and /execute) exactly ``boot_ms`` after its create request arrived. Until then the edge
answers its port with 502 "port is not open"; a sandbox that is gone (or paused) gets 502 "... was
not found" (the SDK's own constants name both messages). ``answer`` says when the create answer
leaves: "usable" (default; assumption ``create_answer_means_usable``: e2b answers once the sandbox
runs) or "at_once" (the sandbox still booting: what the farm's readiness poll guards against).
A 429 carries ``Retry-After``; lists are paged (``limit``, ``nextToken`` -> ``x-next-token``).

``commands.run`` is not served: it is a Connect-RPC stream (``/process.Process/Start``) the adapter
does not use. ``/execute`` really runs the code in a fresh Python process with the request's
``env_vars``, and streams what the code-interpreter server streams: ``number_of_executions``,
``stdout``/``stderr`` messages, an ``error`` (name/value/traceback, as Jupyter reports an uncaught
exception, ``SystemExit`` included), then ``end_of_execution``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.e2b_kernel import run_cell

DEFAULT_TEMPLATE = "code-interpreter-v1"



JUPYTER_PORT = "49999"
NOT_FOUND = "The sandbox was not found"          # e2b.exceptions.SANDBOX_NOT_FOUND_MESSAGE
PORT_CLOSED = "The sandbox is running but port is not open"  # ...SANDBOX_PORT_NOT_OPEN_MESSAGE


@dataclass
class Fault:
    """An injected answer for one route: an HTTP status, or a delay before answering."""

    status: int | None = None
    message: str = "injected"
    delay: float = 0.0
    times: int = 1
    retry_after: float | None = None  # sent as the Retry-After header (whole seconds or not)


@dataclass
class FakeSandbox:
    id: str
    template: str
    metadata: dict[str, str]
    env: dict[str, str]
    token: str
    home: str
    usable_at: float = 0.0           # perf_counter when the code interpreter starts answering
    lifetime_s: int = 300            # the create's ``timeout``: e2b kills it then
    state: str = "running"           # running | paused
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def row(self) -> dict[str, Any]:
        return {"templateID": self.template, "sandboxID": self.id, "clientID": "fake-client",
                "startedAt": self.started.isoformat(),
                "endAt": (self.started + timedelta(seconds=self.lifetime_s)).isoformat(),
                "cpuCount": 2, "memoryMB": 512, "diskSizeMB": 1024, "state": self.state,
                "envdVersion": "0.4.2", "metadata": self.metadata}


class FakeE2B:
    """``with FakeE2B() as fake: monkeypatch.setenv(**fake.env())`` and use the real SDK."""

    def __init__(self, api_key: str = "e2b_fake_0123456789abcdef",
                 templates: tuple[str, ...] = (DEFAULT_TEMPLATE,)) -> None:
        self.api_key = api_key
        self.templates: set[str] = set(templates)
        self.snapshots: set[str] = set()
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.killed: list[str] = []
        self.requests: list[dict[str, Any]] = []  # method, route, body (JSON) or query
        self.faults: dict[str, list[Fault]] = {}
        self.boot_ms = 0
        self.answer = "usable"           # when the create answer leaves: "usable" | "at_once"
        self.page_size: int | None = None  # None: the client's limit decides
        self.recycle = 0                 # hand out this many killed sandboxes again (same id, same files)
        self.pause_ms = 0                # a pause answers (state paused) exactly this long after it arrived
        self.resume_ms = 0               # a resumed sandbox's interpreter answers exactly this long after connect arrived
        self.lose_on_resume = False      # a resume that comes back without the sandbox's files
        self._parked: list[FakeSandbox] = []
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self._server: ThreadingHTTPServer | None = None
        self._root = tempfile.mkdtemp(prefix="fake-e2b-")
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "FakeE2B":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-e2b", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        with self._lock:  # a handler still stalling on an injected delay must not create after this
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        for proc in list(self._procs):
            proc.kill()
        shutil.rmtree(self._root, ignore_errors=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment that points the real SDK at this server (plain HTTP/1.1 on 127.0.0.1)."""
        return {"E2B_API_URL": self.url, "E2B_SANDBOX_URL": self.url, "E2B_HTTP_VERSION": "1.1",
                "E2B_API_KEY": self.api_key}

    # --- test controls --------------------------------------------------------------------------
    def fail(self, route: str, status: int | None = None, message: str = "injected", *, delay: float = 0.0,
             times: int = 1, retry_after: float | None = None) -> None:
        """Make the next ``times`` calls to ``route`` (create/list/kill/execute/snapshot) fail or stall."""
        self.faults.setdefault(route, []).append(Fault(status, message, delay, times, retry_after))

    def add_sandbox(self, metadata: dict[str, str], template: str = DEFAULT_TEMPLATE, state: str = "running") -> str:
        """Register a sandbox, as one a crashed worker would have left behind."""
        sbx = self._new_sandbox(template, metadata, {}, time.perf_counter(), 300)
        sbx.state = state
        return sbx.id

    def vanish(self, sid: str) -> None:
        """The sandbox dies behind the client's back (its lifetime ran out, or e2b lost it)."""
        with self._lock:
            sbx = self.sandboxes.pop(sid, None)
        if sbx is not None:
            shutil.rmtree(sbx.home, ignore_errors=True)

    def routes(self) -> list[str]:
        return [r["route"] for r in self.requests]

    # --- internals ------------------------------------------------------------------------------
    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(route) or []
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault

    def _new_sandbox(self, template: str, metadata: dict[str, str], env: dict[str, str], arrived: float,
                     lifetime_s: int) -> FakeSandbox:
        with self._lock:
            if self.recycle > 0 and self._parked:  # a provider that reuses sandboxes: the same one again
                self.recycle -= 1
                sbx = self._parked.pop(0)
                sbx.metadata, sbx.env, sbx.usable_at = dict(metadata), dict(env), arrived + self.boot_ms / 1000
                self.sandboxes[sbx.id] = sbx
                return sbx
        sid = f"i{secrets.token_hex(8)}"
        home = os.path.join(self._root, sid)
        with self._lock:
            if self._closed:
                raise ConnectionAbortedError("fake e2b server is closed")
            os.makedirs(home)
            sbx = self.sandboxes[sid] = FakeSandbox(sid, template, dict(metadata), dict(env), secrets.token_hex(12),
                                                    home, arrived + self.boot_ms / 1000, lifetime_s)
        return sbx

    def _usable(self, sid: str) -> tuple[FakeSandbox | None, str]:
        """The sandbox behind an edge request, or why the edge would refuse it."""
        sbx = self.sandboxes.get(sid)
        if sbx is None or sbx.state != "running":
            return None, NOT_FOUND
        if time.perf_counter() < sbx.usable_at:
            return None, PORT_CLOSED
        return sbx, ""

    def _run_cell(self, sbx: FakeSandbox, code: str, env: dict[str, str]) -> tuple[str, str, dict | None]:
        proc_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": sbx.home, "LANG": "C.UTF-8",
                    **sbx.env, **env}
        return run_cell(code, sbx.home, proc_env, self._procs)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    fake: FakeE2B

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    # --- plumbing -------------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, retry_after: float | None = None) -> None:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._send(status, {"code": status, "message": message}, headers)

    def _handle(self, method: str) -> None:
        arrived = time.perf_counter()  # the truth a boot time is measured from
        parsed = urllib.parse.urlsplit(self.path)
        parts = [p for p in parsed.path.split("/") if p]
        route, arg = _route(method, parts)
        body = self._body() if method == "POST" else {}
        self.fake.requests.append({"route": route, "method": method, "path": parsed.path, "body": body,
                                   "query": urllib.parse.parse_qs(parsed.query),
                                   "headers": {k.lower(): v for k, v in self.headers.items()
                                               if k.lower() != "x-api-key"}})
        if route == "unknown":
            return self._error(404, f"no route {method} {parsed.path}")
        if route not in ("execute", "health") and self.headers.get("X-API-KEY") != self.fake.api_key:
            return self._error(401, "Invalid API key")
        fault = self.fake._take_fault(route)
        if fault:
            time.sleep(fault.delay)
            if fault.status:
                return self._error(fault.status, fault.message, fault.retry_after)
        if route == "create":
            return self._do_create(body, arrived)
        if route in ("pause", "connect"):  # timed from arrival: the truth a pause/resume is measured from
            return getattr(self, f"_do_{route}")(arg, body, None, arrived)
        getattr(self, f"_do_{route}")(arg, body, urllib.parse.parse_qs(parsed.query))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- control plane --------------------------------------------------------------------------
    def _do_create(self, body: dict[str, Any], arrived: float) -> None:
        template = body.get("templateID", "")
        if template not in self.fake.templates | self.fake.snapshots:
            return self._error(404, f"template '{template}' not found")
        sbx = self.fake._new_sandbox(template, body.get("metadata") or {}, body.get("envVars") or {}, arrived,
                                     int(body.get("timeout") or 300))
        if self.fake.answer == "usable":  # e2b answers once the sandbox runs
            time.sleep(max(sbx.usable_at - time.perf_counter(), 0.0))
        self._send(201, {"templateID": template, "alias": template, "sandboxID": sbx.id,
                         "clientID": "fake-client", "envdVersion": "0.4.2", "envdAccessToken": sbx.token,
                         "domain": None})

    def _do_list(self, _: str, __: Any, query: dict[str, list[str]]) -> None:
        # The SDK sends metadata as one url-encoded "k=v&k2=v2" string in the ``metadata`` parameter,
        # and states comma-separated; no state means running and paused (the SDK's documented default).
        wanted = dict(urllib.parse.parse_qsl(query.get("metadata", [""])[0]))
        wanted = {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in wanted.items()}
        states = set(query.get("state", ["running,paused"])[0].split(","))
        rows = [sbx.row() for sbx in sorted(list(self.fake.sandboxes.values()), key=lambda s: s.id)
                if sbx.state in states and all(sbx.metadata.get(k) == v for k, v in wanted.items())]
        start = int(query.get("nextToken", ["0"])[0])
        size = min(int(query.get("limit", ["100"])[0]), self.fake.page_size or 100)
        page = rows[start:start + size]
        more = start + size < len(rows)
        self._send(200, page, {"x-next-token": str(start + size)} if more else None)

    def _do_info(self, sid: str, _: Any, __: Any) -> None:
        sbx = self.fake.sandboxes.get(sid)
        if sbx is None:
            return self._error(404, f"sandbox '{sid}' not found")
        self._send(200, {**sbx.row(), "envdAccessToken": sbx.token, "domain": None})

    def _do_pause(self, sid: str, _: Any, __: Any, arrived: float = 0.0) -> None:
        sbx = self.fake.sandboxes.get(sid)
        if sbx is None:
            return self._error(404, f"sandbox '{sid}' not found")
        if sbx.state == "paused":
            return self._error(409, f"sandbox '{sid}' is already paused")
        time.sleep(max(arrived + self.fake.pause_ms / 1000 - time.perf_counter(), 0.0))
        sbx.state = "paused"
        self._send(204)

    def _do_connect(self, sid: str, _: Any, __: Any, arrived: float = 0.0) -> None:
        sbx = self.fake.sandboxes.get(sid)
        if sbx is None:
            return self._error(404, f"sandbox '{sid}' not found")
        if sbx.state == "paused":  # resume: the edge refuses the port until the interpreter is back
            sbx.state, sbx.usable_at = "running", arrived + self.fake.resume_ms / 1000
            if self.fake.lose_on_resume:
                shutil.rmtree(sbx.home, ignore_errors=True)
                os.makedirs(sbx.home)
        self._send(200, {"templateID": sbx.template, "alias": sbx.template, "sandboxID": sbx.id,
                         "clientID": "fake-client", "envdVersion": "0.4.2", "envdAccessToken": sbx.token,
                         "domain": None})

    def _do_kill(self, sid: str, _: Any, __: Any) -> None:
        with self.fake._lock:
            sbx = self.fake.sandboxes.pop(sid, None)
        if sbx is None:
            return self._error(404, f"sandbox '{sid}' not found")
        self.fake.killed.append(sid)
        if self.fake.recycle > 0:  # kept, files and all, for a later create
            with self.fake._lock:
                self.fake._parked.append(sbx)
        else:
            shutil.rmtree(sbx.home, ignore_errors=True)
        self._send(204)

    def _do_snapshot(self, sid: str, _: Any, __: Any) -> None:
        if sid not in self.fake.sandboxes:
            return self._error(404, f"sandbox '{sid}' not found")
        snap = f"snap-{secrets.token_hex(6)}"
        self.fake.snapshots.add(snap)
        self._send(201, {"snapshotID": snap, "names": []})

    def _do_delete_template(self, tid: str, _: Any, __: Any) -> None:
        self.fake.snapshots.discard(tid)
        self._send(204)

    # --- inside the sandbox ---------------------------------------------------------------------
    def _do_health(self, *_: Any) -> None:
        sid = self.headers.get("E2b-Sandbox-Id", "")
        if self.headers.get("E2b-Sandbox-Port") != JUPYTER_PORT:  # envd: up once the sandbox runs
            return self._send(204) if sid in self.fake.sandboxes else self._error(502, NOT_FOUND)
        sbx, refusal = self.fake._usable(sid)
        if sbx is None:  # the edge, not the code interpreter, answers these
            return self._error(502, refusal)
        self._send(200, "Request was successful")

    def _do_execute(self, _: str, body: dict[str, Any], __: Any) -> None:
        sbx, refusal = self.fake._usable(self.headers.get("E2b-Sandbox-Id", ""))
        if sbx is None:
            return self._error(502, refusal)
        if self.headers.get("X-Access-Token") != sbx.token:
            return self._error(401, "invalid envd access token")
        stdout, stderr, error = self.fake._run_cell(sbx, body.get("code", ""), body.get("env_vars") or {})
        stamp = datetime.now(timezone.utc).isoformat()
        lines = [{"type": "number_of_executions", "execution_count": 1}]
        lines += [{"type": "stdout", "text": t, "timestamp": stamp} for t in stdout.splitlines(True)]
        lines += [{"type": "stderr", "text": t, "timestamp": stamp} for t in stderr.splitlines(True)]
        if error:
            lines.append({"type": "error", **error})
        lines.append({"type": "end_of_execution"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in lines:
                data = (json.dumps(line) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.close_connection = True


def _route(method: str, parts: list[str]) -> tuple[str, str]:
    """Name the SDK call a request belongs to, and its path argument (a sandbox or template id)."""
    table = {
        ("POST", ("v2", "sandboxes")): "create", ("GET", ("v2", "sandboxes")): "list",
        ("POST", ("execute",)): "execute", ("GET", ("health",)): "health",
    }
    if (method, tuple(parts)) in table:
        return table[(method, tuple(parts))], ""
    if method == "DELETE" and len(parts) == 2 and parts[0] == "sandboxes":
        return "kill", parts[1]
    if method == "GET" and len(parts) == 2 and parts[0] == "sandboxes":
        return "info", parts[1]
    if method == "POST" and len(parts) == 3 and parts[0] == "sandboxes" and parts[2] == "pause":
        return "pause", parts[1]
    if method == "POST" and len(parts) == 4 and parts[:2] == ["v2", "sandboxes"] and parts[3] == "connect":
        return "connect", parts[2]
    if method == "POST" and len(parts) == 3 and parts[0] == "sandboxes" and parts[2] == "snapshots":
        return "snapshot", parts[1]
    if method == "DELETE" and len(parts) == 2 and parts[0] == "templates":
        return "delete_template", urllib.parse.unquote(parts[1])
    return "unknown", ""
