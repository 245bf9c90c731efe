"""A local stand-in for the Morph Cloud API, for the real ``morphcloud`` SDK (0.1.116).

Tests point ``MORPH_BASE_URL`` at ``{url}/api``. Routes the installed SDK calls (``Authorization: Bearer``):

    POST   /api/instance?snapshot_id=...        instances.start       -> 200 Instance (pending|ready)
    GET    /api/instance/{id}                   wait_until_ready/get  -> 200 Instance / 404
    DELETE /api/instance/{id}                   Instance.stop         -> 200 / 404
    GET    /api/instance?metadata[k]=v          instances.list        -> 200 {"data": [...]}
    GET    /api/instance/list?page&limit        instances.list_paginated
    POST   /api/instance/{id}/exec              Instance.exec         -> 200 {exit_code, stdout, stderr}
    POST   /api/instance/{id}/snapshot?digest=  Instance.snapshot     -> 200 Snapshot
    GET    /api/snapshot?digest=..., GET /api/snapshot/{id}           snapshots.list / get

``exec`` gets ``{"command": [...]}``: one string is a shell command line (run with ``sh -c``, as the SDK's
own callers rely on), several are an argv. It really runs, in the instance's own directory. A
snapshot of an instance copies that directory, so an instance started from it sees what the warm-up
left behind (and is marked ``warm`` in the fake's records).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import Answer, FakeServer, Request

BASE_SNAPSHOT = "snapshot_farmbase0"


@dataclass
class FakeSnapshot:
    id: str
    home: str                       # files every instance started from it begins with
    digest: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    warm: bool = False              # taken from a running instance
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class FakeInstance:
    id: str
    snapshot_id: str
    metadata: dict[str, str]
    home: str
    warm: bool
    status: str = "ready"
    polls_left: int = 0
    ttl_seconds: int | None = None
    ttl_action: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


class FakeMorph(FakeServer):
    """``with FakeMorph() as fake: monkeypatch.setenv(...fake.env())`` and use the real SDK."""

    name = "morph"

    def __init__(self, api_key: str = "morph_fake_7c1d9e2f4a6b8c0d") -> None:
        super().__init__(api_key)
        self.snapshots: dict[str, FakeSnapshot] = {}
        self.instances: dict[str, FakeInstance] = {}
        self.stopped: list[str] = []
        self.ready_polls = 0  # GETs answering "pending" after a start (the SDK polls once a second)
        self.add_snapshot(BASE_SNAPSHOT)

    def env(self) -> dict[str, str]:
        """Environment that points the real SDK at this server (and away from any user profile)."""
        return {"MORPH_BASE_URL": f"{self.url}/api", "MORPH_API_KEY": self.api_key,
                "MORPH_CONFIG_PATH": os.path.join(self.root, "no-such-config.toml")}

    # --- test controls --------------------------------------------------------------------------
    def add_snapshot(self, snapshot_id: str, digest: str | None = None, warm: bool = False,
                     files: dict[str, str] | None = None) -> str:
        home = os.path.join(self.root, "snapshots", snapshot_id)
        os.makedirs(home)
        for name, text in (files or {}).items():
            with open(os.path.join(home, name), "w") as fh:
                fh.write(text)
        self.snapshots[snapshot_id] = FakeSnapshot(snapshot_id, home, digest, {}, warm)
        return snapshot_id

    def add_instance(self, metadata: dict[str, str]) -> str:
        """Register a running instance, as one a crashed worker would have left behind."""
        return self._new_instance(BASE_SNAPSHOT, metadata).id

    def alive(self) -> list[str]:
        return list(self.instances)

    # --- internals ------------------------------------------------------------------------------
    def _new_instance(self, snapshot_id: str, metadata: dict[str, str]) -> FakeInstance:
        snap = self.snapshots[snapshot_id]
        iid = f"morphvm_{secrets.token_hex(4)}"
        home = os.path.join(self.root, "instances", iid)
        shutil.copytree(snap.home, home)
        inst = FakeInstance(iid, snapshot_id, dict(metadata or {}), home, snap.warm)
        with self.lock:
            self.instances[iid] = inst
        return inst

    def instance_dto(self, inst: FakeInstance) -> dict[str, Any]:
        return {"id": inst.id, "object": "instance", "created": inst.created, "status": inst.status,
                "spec": {"vcpus": 1, "memory": 1024, "disk_size": 4096},
                "refs": {"snapshot_id": inst.snapshot_id, "image_id": "morphvm-minimal"},
                "networking": {"internal_ip": "10.62.0.2", "http_services": []},
                "ttl": {"ttl_seconds": inst.ttl_seconds, "ttl_expire_at": inst.created + (inst.ttl_seconds or 0)
                        if inst.ttl_seconds else None, "ttl_action": inst.ttl_action or "stop"},
                "wake_on": {"wake_on_ssh": False, "wake_on_http": False}, "metadata": inst.metadata}

    def snapshot_dto(self, snap: FakeSnapshot) -> dict[str, Any]:
        return {"id": snap.id, "object": "snapshot", "created": snap.created, "status": "ready",
                "spec": {"vcpus": 1, "memory": 1024, "disk_size": 4096}, "refs": {"image_id": "morphvm-minimal"},
                "digest": snap.digest, "metadata": snap.metadata, "ttl": {"ttl_seconds": None, "ttl_expire_at": None}}

    def error_body(self, status: int, message: str, req: Request) -> Any:
        return {"detail": message}

    def route(self, method: str, parts: list[str]) -> tuple[str, tuple[str, ...]]:
        if parts[:1] != ["api"]:
            return "unknown", ()
        rest = parts[1:]
        table = {("POST", ("instance",)): "start", ("GET", ("instance",)): "list",
                 ("GET", ("instance", "list")): "list_paginated", ("GET", ("snapshot",)): "snapshot_list"}
        if (method, tuple(rest)) in table:
            return table[(method, tuple(rest))], ()
        if len(rest) == 2 and rest[0] == "instance":
            return {"GET": "get", "DELETE": "stop"}.get(method, "unknown"), (rest[1],)
        if len(rest) == 3 and rest[0] == "instance" and method == "POST" and rest[2] in ("exec", "snapshot"):
            return rest[2], (rest[1],)
        if len(rest) == 2 and rest[0] == "snapshot" and method == "GET":
            return "snapshot_get", (rest[1],)
        return "unknown", ()

    def _instance(self, req: Request) -> FakeInstance | None:
        return self.instances.get(req.args[0])

    # --- routes ---------------------------------------------------------------------------------
    def do_start(self, req: Request) -> Answer:
        snapshot_id = req.query.get("snapshot_id", [""])[0]
        if snapshot_id not in self.snapshots:
            return 404, {"detail": f"Snapshot {snapshot_id} not found"}
        body = req.body or {}
        inst = self._new_instance(snapshot_id, body.get("metadata") or {})
        inst.ttl_seconds, inst.ttl_action = body.get("ttl_seconds"), body.get("ttl_action")
        if self.ready_polls:
            inst.status, inst.polls_left = "pending", self.ready_polls
        return 200, self.instance_dto(inst)

    def do_get(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        with self.lock:
            if inst.polls_left > 0:
                inst.polls_left -= 1
                if inst.polls_left == 0:
                    inst.status = "ready"
        return 200, self.instance_dto(inst)

    def do_stop(self, req: Request) -> Answer:
        with self.lock:
            inst = self.instances.pop(req.args[0], None)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        self.stopped.append(inst.id)
        shutil.rmtree(inst.home, ignore_errors=True)
        return 200, {"id": inst.id, "object": "instance", "deleted": True}

    def do_list(self, req: Request) -> Answer:
        wanted = {k[len("metadata["):-1]: v[0] for k, v in req.query.items() if k.startswith("metadata[")}
        rows = [self.instance_dto(i) for i in list(self.instances.values())
                if all(i.metadata.get(k) == v for k, v in wanted.items())]
        return 200, {"object": "list", "data": rows}

    def do_list_paginated(self, req: Request) -> Answer:
        rows = [self.instance_dto(i) for i in list(self.instances.values())]
        limit = int(req.query.get("limit", ["50"])[0])
        return 200, {"instances": rows[:limit], "total": len(rows), "page": 1, "size": min(limit, len(rows)),
                     "total_pages": 1, "has_next": False, "has_prev": False}

    def do_exec(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        if inst.status != "ready":
            return 409, {"detail": f"Instance is {inst.status}"}
        command = (req.body or {}).get("command") or []
        argv = ["/bin/sh", "-c", command[0]] if len(command) == 1 else list(command)
        res = self.run_process(argv, {}, inst.home, 120)
        return 200, {"exit_code": res.exit_code, "stdout": res.stdout, "stderr": res.stderr}

    def do_snapshot(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        sid = f"snapshot_{secrets.token_hex(4)}"
        home = os.path.join(self.root, "snapshots", sid)
        shutil.copytree(inst.home, home)
        snap = FakeSnapshot(sid, home, req.query.get("digest", [None])[0], (req.body or {}).get("metadata") or {},
                            warm=True)
        self.snapshots[sid] = snap
        return 200, self.snapshot_dto(snap)

    def do_snapshot_list(self, req: Request) -> Answer:
        digest = req.query.get("digest", [None])[0]
        rows = [self.snapshot_dto(s) for s in self.snapshots.values() if digest is None or s.digest == digest]
        return 200, {"object": "list", "data": rows}

    def do_snapshot_get(self, req: Request) -> Answer:
        snap = self.snapshots.get(req.args[0])
        if snap is None:
            return 404, {"detail": "Snapshot not found"}
        return 200, self.snapshot_dto(snap)
