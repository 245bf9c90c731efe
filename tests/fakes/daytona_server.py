"""A local stand-in for the Daytona API and its toolbox proxy, for the real ``daytona`` SDK (0.226).

Tests point ``DAYTONA_API_URL`` at ``{url}/api``; every sandbox record's ``toolboxProxyUrl`` points back
at ``{url}/toolbox``, so toolbox calls come here too. Routes the installed SDK calls:

    POST   /api/sandbox                          Daytona.create           -> 200 Sandbox
    GET    /api/sandbox/{id}                     refresh_data / get       -> 200 Sandbox / 404
    DELETE /api/sandbox/{id}                     Sandbox.delete           -> 200 Sandbox (destroying)
    GET    /api/sandbox?labels={json}&cursor&limit   Daytona.list         -> 200 {items, nextCursor}
    GET    /api/warm-pools, POST /api/warm-pools (201), DELETE /api/warm-pools/{id} (204)
    POST   /toolbox/{id}/process/code-run        process.code_run         -> 200 {exitCode, result} / 408

The state machine, with a known truth (each rule names the adapter's assumption it encodes,
providers/daytona/live.py): a cold create answers ``creating`` [cold-answer-not-started], then GETs
answer ``starting`` until exactly ``boot_ms`` after the create request arrived, then ``started``
[boot-states]. DELETE answers ``destroying``; ``destroy_polls`` GETs later ``destroyed`` (or 404 with
``gone_as_404``) [delete-ends-gone]; ``delete_into_error`` makes the next delete fail into ``error``
with desired state ``destroyed``, which the list shows only with ``includeErroredDeleted``.
Lists page by ``nextCursor`` (``page_size``). Every answer carries a ``Date`` header from this
machine's clock, as ``createdAt`` does [server-clock].

code-run really runs the code in a fresh Python process with the sandbox's env plus the request's
``envs``, merges stdout and stderr (as the daemon does), and answers 408 when ``timeout`` passes
[toolbox-408-is-run-timeout]. Warm pools keep ready (started) members created ``pool_age_s`` before
now; a plain create (same snapshot, no env, volumes or secrets) claims one and answers it started
with its own ``createdAt`` [pool-claim-answer]. Whether the claimed record still carries
``warmPoolId`` is a switch (``claim_reports_pool_id``): the API docs say it is set only while the
member is unclaimed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.fakes import Answer, FakeServer, Request

DEFAULT_SNAPSHOT = "daytonaio/sandbox:0.4.3"


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass
class FakeSandbox:
    id: str
    snapshot: str
    target: str
    labels: dict[str, str]
    env: dict[str, str]
    home: str
    state: str = "started"
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    warm_pool_id: str | None = None   # what the record reports (set while an unclaimed pool member)
    member: bool = False              # an unclaimed pool member: not listed, not "alive"
    from_pool: str | None = None      # the pool it was claimed from (the fake's own bookkeeping)
    polls_left: int = 0               # GETs still answering "destroying"
    ready_at: float = 0.0             # perf_counter time at which a booting sandbox becomes "started"
    desired: str = "started"
    error_reason: str | None = None
    auto_delete_interval: int | None = None
    auto_stop_interval: int | None = None
    ttl_minutes: int | None = None
    settles_at: float = 0.0           # pausing/stopping/resuming/starting after pause|stop|start: then ``settles_to``
    settles_to: str = ""


@dataclass
class FakePool:
    id: str
    snapshot: str
    target: str
    pool: int
    members: list[str] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class FakeDaytona(FakeServer):
    """``with FakeDaytona() as fake: monkeypatch.setenv(...fake.env())`` and use the real SDK."""

    name = "daytona"

    def __init__(self, api_key: str = "dtn_fake_5e3f1b2c9a7d4e6f8a0b", target: str = "us",
                 snapshots: tuple[str, ...] = (DEFAULT_SNAPSHOT, "farm-python")) -> None:
        super().__init__(api_key)
        self.target = target
        self.snapshots = set(snapshots)
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.pools: dict[str, FakePool] = {}
        self.deleted: list[str] = []
        self.boot_ms = 0              # a cold create is "started" exactly this long after its request arrived
        self.destroy_polls = 1        # GETs answering "destroying" after a delete
        self.delete_into_error = False  # the next delete leaves the sandbox in "error" (desired: destroyed)
        self.gone_as_404 = False      # after destroy, GET answers 404 instead of state "destroyed"
        self.pool_age_s = 300.0       # how long ago pool members were started
        self.pause_ms = 0             # pause/stop request -> "paused"/"stopped" exactly this long after it arrived
        self.resume_ms = 0            # start request (from paused or stopped) -> "started" exactly this long after
        self.lose_on_resume = False   # a start that comes back without the sandbox's files
        self.can_pause = True         # False: pause answers 400 (a sandbox class that cannot pause)
        self.claim_reports_pool_id = False
        self.page_size = 100

    def env(self) -> dict[str, str]:
        """Environment that points the real SDK at this server."""
        return {"DAYTONA_API_URL": f"{self.url}/api", "DAYTONA_API_KEY": self.api_key}

    # --- test controls --------------------------------------------------------------------------
    def add_sandbox(self, labels: dict[str, str], state: str = "started") -> str:
        """Register a running sandbox, as one a crashed worker would have left behind."""
        sbx = self._new_sandbox(DEFAULT_SNAPSHOT, self.target, labels, {})
        sbx.state = state
        return sbx.id

    def add_pool(self, snapshot: str, size: int) -> str:
        """A warm pool set up before the run, already full."""
        pool = FakePool(f"wp-{secrets.token_hex(4)}", snapshot, self.target, size)
        with self.lock:
            self.pools[pool.id] = pool
            self._fill(pool)
        return pool.id

    def alive(self) -> list[str]:
        return [s.id for s in self.sandboxes.values() if s.state != "destroyed" and not s.member]

    def kill(self, sandbox_id: str) -> None:
        """The sandbox's runner dies: the record goes to "error" and its toolbox stops answering."""
        with self.lock:
            sbx = self.sandboxes[sandbox_id]
            sbx.state, sbx.error_reason = "error", "runner unreachable"

    def set_state(self, sandbox_id: str, state: str) -> None:
        """Move a sandbox to any API state (e.g. "paused", "stopped", "archived")."""
        with self.lock:
            self.sandboxes[sandbox_id].state = state

    # --- internals ------------------------------------------------------------------------------
    def _new_sandbox(self, snapshot: str, target: str, labels: dict[str, str], env: dict[str, str],
                     created: datetime | None = None) -> FakeSandbox:
        sid = secrets.token_hex(8)
        home = os.path.join(self.root, sid)
        os.makedirs(home)
        sbx = FakeSandbox(sid, snapshot, target, dict(labels), dict(env), home)
        if created:
            sbx.created = created
        with self.lock:
            self.sandboxes[sid] = sbx
        return sbx

    def _fill(self, pool: FakePool) -> None:
        while len(pool.members) < pool.pool:
            born = datetime.now(timezone.utc) - timedelta(seconds=self.pool_age_s)
            member = self._new_sandbox(pool.snapshot, pool.target, {"code-toolbox-language": "python"}, {}, born)
            member.warm_pool_id, member.member = pool.id, True
            pool.members.append(member.id)

    def record(self, sbx: FakeSandbox, listing: bool = False) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": sbx.id, "organizationId": "org-fake", "name": sbx.id, "snapshot": sbx.snapshot,
            "user": "daytona", "labels": sbx.labels, "public": False, "networkBlockAll": False,
            "target": sbx.target, "cpu": 1, "gpu": 0, "memory": 1, "disk": 3, "state": sbx.state,
            "desiredState": sbx.desired, "errorReason": sbx.error_reason,
            "createdAt": _iso(sbx.created), "updatedAt": _iso(datetime.now(timezone.utc)),
            "warmPoolId": sbx.warm_pool_id, "autoDeleteInterval": sbx.auto_delete_interval,
            "autoStopInterval": sbx.auto_stop_interval,
            "autoDestroyAt": _iso(sbx.created + timedelta(minutes=sbx.ttl_minutes)) if sbx.ttl_minutes else None,
            "toolboxProxyUrl": f"{self.url}/toolbox", "daemonVersion": "0.226.1",
        }
        if not listing:
            rec.update(env=sbx.env, kvm=False, volumes=[])
        return rec

    def error_body(self, status: int, message: str, req: Request) -> Any:
        if req.route == "code_run":  # the daemon's ErrorResponse
            return {"message": message, "path": req.path, "statusCode": status, "method": req.method,
                    "timestamp": _iso(datetime.now(timezone.utc))}
        return {"statusCode": status, "message": message, "error": _REASONS.get(status, "Error")}

    def route(self, method: str, parts: list[str]) -> tuple[str, tuple[str, ...]]:
        if parts[:1] == ["api"]:
            rest = parts[1:]
            if rest == ["sandbox"]:
                return {"POST": "create", "GET": "list"}.get(method, "unknown"), ()
            if len(rest) == 2 and rest[0] == "sandbox":
                return {"GET": "get", "DELETE": "delete"}.get(method, "unknown"), (rest[1],)
            if len(rest) == 3 and rest[0] == "sandbox" and rest[2] in ("pause", "stop", "start") and method == "POST":
                return rest[2], (rest[1],)
            if rest == ["warm-pools"]:
                return {"POST": "pool_create", "GET": "pool_list"}.get(method, "unknown"), ()
            if len(rest) == 2 and rest[0] == "warm-pools" and method == "DELETE":
                return "pool_delete", (rest[1],)
        if len(parts) == 4 and parts[0] == "toolbox" and parts[2:] == ["process", "code-run"] and method == "POST":
            return "code_run", (parts[1],)
        return "unknown", ()

    # --- control plane --------------------------------------------------------------------------
    def do_create(self, req: Request) -> Answer:
        arrived = time.perf_counter()
        body = req.body or {}
        snapshot = body.get("snapshot") or DEFAULT_SNAPSHOT
        if snapshot not in self.snapshots:
            return 404, self.error_body(404, f"Snapshot {snapshot} not found", req)
        target = body.get("target") or self.target
        labels, env = body.get("labels") or {}, body.get("env") or {}
        plain = not env and not body.get("volumes") and not body.get("secrets")
        with self.lock:
            pool = next((p for p in self.pools.values() if p.snapshot == snapshot and p.target == target
                         and p.members), None)
            if pool and plain:  # a warm-pool claim: an already started sandbox, relabelled
                sbx = self.sandboxes[pool.members.pop(0)]
                sbx.labels.update(labels)
                sbx.warm_pool_id = pool.id if self.claim_reports_pool_id else None
                sbx.member = False
                sbx.from_pool = pool.id
                rec = self.record(sbx)
                self._fill(pool)
                return 200, rec
        sbx = self._new_sandbox(snapshot, target, labels, env)
        sbx.auto_delete_interval = body.get("autoDeleteInterval")
        sbx.auto_stop_interval = body.get("autoStopInterval")
        sbx.ttl_minutes = body.get("ttlMinutes")
        sbx.state, sbx.ready_at = "creating", arrived + self.boot_ms / 1000
        return 200, self.record(sbx)

    def do_get(self, req: Request) -> Answer:
        sbx = self.sandboxes.get(req.args[0])
        if sbx is None or (sbx.state == "destroyed" and self.gone_as_404):
            return 404, self.error_body(404, f"Sandbox with ID or name {req.args[0]} not found", req)
        with self.lock:
            if sbx.settles_to and time.perf_counter() >= sbx.settles_at:
                sbx.state, sbx.settles_to = sbx.settles_to, ""
            elif sbx.state in ("creating", "starting") and not sbx.settles_to:
                sbx.state = "started" if time.perf_counter() >= sbx.ready_at else "starting"
            elif sbx.polls_left > 0:
                sbx.polls_left -= 1
            elif sbx.state == "destroying":
                sbx.state = "destroyed"
                shutil.rmtree(sbx.home, ignore_errors=True)
        return 200, self.record(sbx)

    def _transition(self, req: Request, allowed: tuple[str, ...], passing: str, to: str, ms: float) -> Answer:
        arrived = time.perf_counter()
        sbx = self.sandboxes.get(req.args[0])
        if sbx is None or sbx.state == "destroyed":
            return 404, self.error_body(404, f"Sandbox with ID or name {req.args[0]} not found", req)
        if sbx.state not in allowed:
            return 400, self.error_body(400, f"Sandbox is {sbx.state}", req)
        with self.lock:
            sbx.state, sbx.settles_to, sbx.settles_at = passing, to, arrived + ms / 1000
        return 200, self.record(sbx)

    def do_pause(self, req: Request) -> Answer:
        if not self.can_pause:
            return 400, self.error_body(400, "Sandbox class does not support pausing", req)
        return self._transition(req, ("started",), "pausing", "paused", self.pause_ms)

    def do_stop(self, req: Request) -> Answer:
        return self._transition(req, ("started",), "stopping", "stopped", self.pause_ms)

    def do_start(self, req: Request) -> Answer:
        sbx = self.sandboxes.get(req.args[0])
        passing = "resuming" if sbx is not None and sbx.state == "paused" else "starting"
        answer = self._transition(req, ("paused", "stopped"), passing, "started", self.resume_ms)
        if answer[0] == 200 and self.lose_on_resume and sbx is not None:
            shutil.rmtree(sbx.home, ignore_errors=True)
            os.makedirs(sbx.home)
        return answer

    def do_delete(self, req: Request) -> Answer:
        sbx = self.sandboxes.get(req.args[0])
        if sbx is None or sbx.state == "destroyed":
            return 404, self.error_body(404, f"Sandbox with ID or name {req.args[0]} not found", req)
        with self.lock:
            sbx.desired, sbx.polls_left = "destroyed", self.destroy_polls
            if self.delete_into_error:  # the runner failed the delete: the record stays, errored
                self.delete_into_error = False
                sbx.state, sbx.error_reason = "error", "failed to remove the container"
                return 200, self.record(sbx)
            sbx.state = "destroying"
            self.deleted.append(sbx.id)
        return 200, self.record(sbx)

    def do_list(self, req: Request) -> Answer:
        wanted = json.loads(req.query.get("labels", ["{}"])[0])
        limit = min(int(req.query.get("limit", [self.page_size])[0]), self.page_size)
        start = int(req.query.get("cursor", ["0"])[0])
        errored_deleted = req.query.get("includeErroredDeleted", ["false"])[0] == "true"
        rows = [s for s in self.sandboxes.values() if s.state != "destroyed" and not s.member
                and (errored_deleted or not (s.state == "error" and s.desired == "destroyed"))
                and all(s.labels.get(k) == v for k, v in wanted.items())]
        page = rows[start:start + limit]
        more = start + limit < len(rows)
        return 200, {"items": [self.record(s, listing=True) for s in page],
                     "nextCursor": str(start + limit) if more else None}

    def _pool_dto(self, pool: FakePool) -> dict[str, Any]:
        return {"id": pool.id, "organizationId": "org-fake", "snapshot": pool.snapshot, "target": pool.target,
                "pool": pool.pool, "currentSize": len(pool.members), "cpu": 1, "mem": 1, "disk": 3,
                "osUser": "daytona", "env": {}, "errorReason": None, "createdAt": _iso(pool.created),
                "updatedAt": _iso(pool.created)}

    def do_pool_list(self, req: Request) -> Answer:
        return 200, [self._pool_dto(p) for p in self.pools.values()]

    def do_pool_create(self, req: Request) -> Answer:
        body = req.body or {}
        snapshot, target = body.get("snapshot"), body.get("target") or self.target
        if snapshot not in self.snapshots:
            return 404, self.error_body(404, f"Snapshot {snapshot} not found", req)
        with self.lock:
            if any(p.snapshot == snapshot and p.target == target for p in self.pools.values()):
                return 409, self.error_body(409, "A warm pool for this snapshot and region already exists", req)
            pool = FakePool(f"wp-{secrets.token_hex(4)}", snapshot, target, int(body.get("pool") or 0))
            self.pools[pool.id] = pool
            self._fill(pool)
        return 201, self._pool_dto(pool)

    def do_pool_delete(self, req: Request) -> Answer:
        with self.lock:
            pool = self.pools.pop(req.args[0], None)
        if pool is None:
            return 404, self.error_body(404, "Warm pool not found", req)
        for sid in pool.members:
            self.sandboxes.pop(sid, None)
        return 204, None

    # --- the toolbox daemon inside the sandbox -----------------------------------------------------
    def do_code_run(self, req: Request) -> Answer:
        sbx = self.sandboxes.get(req.args[0])
        if sbx is None or sbx.state != "started":
            return 404, self.error_body(404, f"sandbox {req.args[0]} is not running", req)
        body = req.body or {}
        if body.get("language") != "python":
            return 400, self.error_body(400, f"unsupported language {body.get('language')!r}", req)
        timeout = body.get("timeout")
        res = self.run_process([os.path.join(self.bin_dir, "python3"), "-c", body.get("code", "")],
                               {**sbx.env, **(body.get("envs") or {})}, sbx.home, timeout or 60)
        if res.timed_out:
            return 408, self.error_body(408, f"execution timed out after {timeout}s", req)
        return 200, {"exitCode": res.exit_code, "result": res.stdout + res.stderr, "artifacts": {"charts": []}}


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
