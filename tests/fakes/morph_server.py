"""A local stand-in for the Morph Cloud API, for the real ``morphcloud`` SDK (0.1.116).

Tests point ``MORPH_BASE_URL`` at ``{url}/api``. Routes (``Authorization: Bearer``), named as in ``calls()``:

    start           POST   /api/instance?snapshot_id=...      -> 200 Instance (pending until booted)
    get             GET    /api/instance/{id}                 -> 200 Instance / 404 once gone
    stop            DELETE /api/instance/{id}                 -> 200 (gone stop_ms later) / 404
    list            GET    /api/instance?metadata[k]=v        -> 200 {"data": [...]}
    list_paginated  GET    /api/instance/list?page&limit&metadata[k]=v -> 200 {"instances", "has_next", ...}
    exec            POST   /api/instance/{id}/exec            -> 200 {exit_code, stdout, stderr} / 409 unless ready
    pause, resume   POST   /api/instance/{id}/pause|resume    -> 200 Instance (paused; resume boots again)
    snapshot        POST   /api/instance/{id}/snapshot?digest= -> 200 Snapshot of the instance's files
    snapshot_create POST   /api/snapshot {image_id, vcpus, memory, disk_size, digest} -> 200 Snapshot (same
                                                               digest: the existing one, as the SDK documents)
    snapshot_list, snapshot_get   GET /api/snapshot?digest=..., GET /api/snapshot/{id}

State machine (the truth tests measure against): an instance is ``pending`` until exactly ``boot_ms``
after its start request arrived, then ``ready`` (or ``error`` when ``boot_fails``); after a stop it
is still answered for ``stop_ms``, then 404 (assumption morph.gone-after-stop); ``pause`` makes it
``paused`` and ``resume`` boots it again; ``ttl_seconds`` after its start (times ``ttl_unit_s``)
its ``ttl_action`` happens: stopped, or paused. ``page_size`` caps every page of ``/instance/list`` (the
server's own maximum). A snapshot is ``pending`` for ``snapshot_ms``, then ``ready``.

``exec`` gets ``{"command": [...]}``: one string is a shell command line run with ``sh -c``
(assumption morph.exec-shell; ``exec_through_shell = False`` breaks it on purpose), several are an
argv. It really runs, in the instance's own directory, with ``apt-get`` shadowed so a set-up
command can never touch the host. A snapshot of an instance copies that directory, so an instance
started from it sees what the warm-up left behind.
"""

from __future__ import annotations

import os
import secrets
import shlex
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
    image_id: str = "morphvm-minimal"
    spec: dict[str, int] = field(default_factory=lambda: {"vcpus": 1, "memory": 1024, "disk_size": 4096})
    ttl_seconds: int | None = None
    ready_at: float = 0.0           # perf_counter time it turns ready
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class FakeInstance:
    id: str
    snapshot_id: str
    metadata: dict[str, str]
    home: str
    warm: bool
    ready_at: float = 0.0           # perf_counter time the boot ends
    fails: bool = False             # the boot ends in "error"
    paused: bool = False
    paused_at: float = 0.0          # perf_counter time a pause ends ("saving" until then)
    gone_at: float | None = None    # set by a stop: answered until then, 404 after
    expires_at: float | None = None  # its TTL: then ttl_action happens
    ttl_seconds: int | None = None
    ttl_action: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def status(self, now: float) -> str:
        if self.paused:
            return "paused" if now >= self.paused_at else "saving"
        if now < self.ready_at:
            return "pending"
        return "error" if self.fails else "ready"


class FakeMorph(FakeServer):
    """``with FakeMorph() as fake: monkeypatch.setenv(...fake.env())`` and use the real SDK."""

    name = "morph"

    def __init__(self, api_key: str = "morph_fake_7c1d9e2f4a6b8c0d") -> None:
        super().__init__(api_key)
        self.snapshots: dict[str, FakeSnapshot] = {}
        self.instances: dict[str, FakeInstance] = {}
        self.stopped: list[str] = []
        self.boot_ms = 0.0            # start request -> "ready"
        self.boot_fails = False       # boots end in "error"
        self.stop_ms = 0.0            # stop -> 404
        self.snapshot_ms = 0.0        # snapshot request -> "ready"
        self.pause_ms = 0.0           # pause request -> "paused" ("saving" until then)
        self.resume_ms: float | None = None  # resume request -> "ready" (None: boot_ms)
        self.lose_on_resume = False   # a resume that comes back without the instance's files
        self.page_size = 50           # the server's largest page of /instance/list
        self.ttl_unit_s = 1.0         # real seconds per TTL second (tests shrink it)
        self.exec_through_shell = True
        with open(os.path.join(self.bin_dir, "apt-get"), "w") as fh:
            fh.write("#!/bin/sh\necho 'fake morph: no apt-get here' >&2\nexit 100\n")
        os.chmod(os.path.join(self.bin_dir, "apt-get"), 0o755)
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

    def add_instance(self, metadata: dict[str, str], snapshot_id: str = BASE_SNAPSHOT) -> str:
        """Register a running instance, as one a crashed worker would have left behind."""
        return self._new_instance(snapshot_id, metadata, time.perf_counter()).id

    def kill(self, instance_id: str) -> None:
        """The instance ends behind the client's back (its TTL, a host failure): 404 from now on."""
        with self.lock:
            inst = self.instances.pop(instance_id)
        shutil.rmtree(inst.home, ignore_errors=True)

    def alive(self) -> list[str]:
        """Instances not stopped (a stopping one counts as gone: nobody can use it any more)."""
        self._reap()
        return [i.id for i in list(self.instances.values()) if i.gone_at is None]

    # --- internals ------------------------------------------------------------------------------
    def _new_instance(self, snapshot_id: str, metadata: dict[str, str], arrived: float) -> FakeInstance:
        snap = self.snapshots[snapshot_id]
        iid = f"morphvm_{secrets.token_hex(4)}"
        home = os.path.join(self.root, "instances", iid)
        shutil.copytree(snap.home, home)
        inst = FakeInstance(iid, snapshot_id, dict(metadata or {}), home, snap.warm,
                            ready_at=arrived + self.boot_ms / 1000, fails=self.boot_fails)
        with self.lock:
            self.instances[iid] = inst
        return inst

    def _reap(self) -> None:
        """Apply what time did: expired TTLs (stop, or pause) and finished stops."""
        now = time.perf_counter()
        with self.lock:
            for inst in [i for i in self.instances.values() if i.expires_at is not None and now >= i.expires_at]:
                inst.expires_at = None
                if inst.ttl_action == "pause":
                    inst.paused = True
                else:
                    inst.gone_at = now
            for inst in [i for i in self.instances.values() if i.gone_at is not None and now >= i.gone_at]:
                del self.instances[inst.id]
                shutil.rmtree(inst.home, ignore_errors=True)

    def _instance(self, req: Request) -> FakeInstance | None:
        self._reap()
        return self.instances.get(req.args[0])

    def instance_dto(self, inst: FakeInstance) -> dict[str, Any]:
        return {"id": inst.id, "object": "instance", "created": inst.created, "status": inst.status(time.perf_counter()),
                "spec": {"vcpus": 1, "memory": 1024, "disk_size": 4096},
                "refs": {"snapshot_id": inst.snapshot_id, "image_id": "morphvm-minimal"},
                "networking": {"internal_ip": "10.62.0.2", "http_services": []},
                "ttl": {"ttl_seconds": inst.ttl_seconds, "ttl_expire_at": inst.created + (inst.ttl_seconds or 0)
                        if inst.ttl_seconds else None, "ttl_action": inst.ttl_action or "stop"},
                "wake_on": {"wake_on_ssh": False, "wake_on_http": False}, "metadata": inst.metadata}

    def snapshot_dto(self, snap: FakeSnapshot) -> dict[str, Any]:
        status = "ready" if time.perf_counter() >= snap.ready_at else "pending"
        return {"id": snap.id, "object": "snapshot", "created": snap.created, "status": status,
                "spec": dict(snap.spec), "refs": {"image_id": snap.image_id}, "digest": snap.digest,
                "metadata": snap.metadata, "ttl": {"ttl_seconds": snap.ttl_seconds, "ttl_expire_at": None}}

    def error_body(self, status: int, message: str, req: Request) -> Any:
        return {"detail": message}

    def route(self, method: str, parts: list[str]) -> tuple[str, tuple[str, ...]]:
        if parts[:1] != ["api"]:
            return "unknown", ()
        rest = tuple(parts[1:])
        table = {("POST", ("instance",)): "start", ("GET", ("instance",)): "list",
                 ("GET", ("instance", "list")): "list_paginated", ("GET", ("snapshot",)): "snapshot_list",
                 ("POST", ("snapshot",)): "snapshot_create"}
        if (method, rest) in table:
            return table[(method, rest)], ()
        if len(rest) == 2 and rest[0] == "instance":
            return {"GET": "get", "DELETE": "stop"}.get(method, "unknown"), (rest[1],)
        if len(rest) == 3 and rest[0] == "instance" and method == "POST" and \
                rest[2] in ("exec", "snapshot", "pause", "resume"):
            return rest[2], (rest[1],)
        if len(rest) == 2 and rest[0] == "snapshot" and method == "GET":
            return "snapshot_get", (rest[1],)
        return "unknown", ()

    # --- routes ---------------------------------------------------------------------------------
    def do_start(self, req: Request) -> Answer:
        arrived = time.perf_counter()  # the boot clock starts when the request is handled
        snapshot_id = req.query.get("snapshot_id", [""])[0]
        snap = self.snapshots.get(snapshot_id)
        if snap is None:
            return 404, {"detail": f"Snapshot {snapshot_id} not found"}
        if arrived < snap.ready_at:
            return 409, {"detail": f"Snapshot {snapshot_id} is pending"}
        body = req.body or {}
        inst = self._new_instance(snapshot_id, body.get("metadata") or {}, arrived)
        inst.ttl_seconds, inst.ttl_action = body.get("ttl_seconds"), body.get("ttl_action")
        if inst.ttl_seconds:
            inst.expires_at = arrived + inst.ttl_seconds * self.ttl_unit_s
        return 200, self.instance_dto(inst)

    def do_get(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        return 200, self.instance_dto(inst)

    def do_stop(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None or inst.gone_at is not None:
            return 404, {"detail": "Instance not found"}
        with self.lock:
            inst.gone_at = time.perf_counter() + self.stop_ms / 1000
            self.stopped.append(inst.id)
        self._reap()
        return 200, {"id": inst.id, "object": "instance", "deleted": True}

    def _matching(self, req: Request) -> list[FakeInstance]:
        self._reap()
        wanted = {k[len("metadata["):-1]: v[0] for k, v in req.query.items() if k.startswith("metadata[")}
        return [i for i in list(self.instances.values())
                if i.gone_at is None and all(i.metadata.get(k) == v for k, v in wanted.items())]

    def do_list(self, req: Request) -> Answer:
        return 200, {"object": "list", "data": [self.instance_dto(i) for i in self._matching(req)]}

    def do_list_paginated(self, req: Request) -> Answer:
        rows = self._matching(req)
        limit = max(1, min(int(req.query.get("limit", ["50"])[0]), self.page_size))
        page = max(1, int(req.query.get("page", ["1"])[0]))
        chunk = rows[(page - 1) * limit: page * limit]
        pages = max(1, -(-len(rows) // limit))
        return 200, {"instances": [self.instance_dto(i) for i in chunk], "total": len(rows), "page": page,
                     "size": len(chunk), "total_pages": pages, "has_next": page < pages, "has_prev": page > 1}

    def do_exec(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        status = inst.status(time.perf_counter())
        if status != "ready" or inst.gone_at is not None:
            return 409, {"detail": f"Instance is {status if inst.gone_at is None else 'stopping'}"}
        command = (req.body or {}).get("command") or []
        if len(command) == 1:
            argv = ["/bin/sh", "-c", command[0]] if self.exec_through_shell else shlex.split(command[0])
        else:
            argv = list(command)
        try:
            res = self.run_process(argv, {}, inst.home, 120)
        except OSError as exc:  # no such program: what a shell-less exec of a shell line would meet
            return 200, {"exit_code": 127, "stdout": "", "stderr": f"{argv[0]}: {exc.strerror}"}
        return 200, {"exit_code": res.exit_code, "stdout": res.stdout, "stderr": res.stderr}

    def do_pause(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        inst.paused, inst.paused_at = True, time.perf_counter() + self.pause_ms / 1000
        return 200, self.instance_dto(inst)

    def do_resume(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        took = self.boot_ms if self.resume_ms is None else self.resume_ms
        inst.paused, inst.ready_at = False, time.perf_counter() + took / 1000
        if self.lose_on_resume:
            shutil.rmtree(inst.home, ignore_errors=True)
            os.makedirs(inst.home)
        return 200, self.instance_dto(inst)

    def do_snapshot(self, req: Request) -> Answer:
        inst = self._instance(req)
        if inst is None:
            return 404, {"detail": "Instance not found"}
        sid = f"snapshot_{secrets.token_hex(4)}"
        home = os.path.join(self.root, "snapshots", sid)
        shutil.copytree(inst.home, home)
        body = req.body or {}
        snap = FakeSnapshot(sid, home, req.query.get("digest", [None])[0], body.get("metadata") or {}, warm=True,
                            ttl_seconds=body.get("ttl_seconds"), ready_at=time.perf_counter() + self.snapshot_ms / 1000)
        self.snapshots[sid] = snap
        return 200, self.snapshot_dto(snap)

    def do_snapshot_create(self, req: Request) -> Answer:
        body = req.body or {}
        digest = body.get("digest")
        existing = [s for s in self.snapshots.values() if digest and s.digest == digest]
        if existing:
            return 200, self.snapshot_dto(existing[0])
        sid = f"snapshot_{secrets.token_hex(4)}"
        home = os.path.join(self.root, "snapshots", sid)
        os.makedirs(home)
        spec = {"vcpus": body.get("vcpus", 1), "memory": body.get("memory", 128), "disk_size": body.get("disk_size", 700)}
        snap = FakeSnapshot(sid, home, digest, body.get("metadata") or {}, image_id=body.get("image_id") or
                            "morphvm-minimal", spec=spec, ready_at=time.perf_counter() + self.snapshot_ms / 1000)
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
