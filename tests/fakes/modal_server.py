"""A fake Modal served over real gRPC, for the real ``modal`` SDK pointed at it by ``MODAL_SERVER_URL``.

Seam: the SDK's own ``server_url`` setting. Modal has no HTTP API; its SDK speaks gRPC (grpclib) to
the control plane and, for execs, to a per-task "command router". This module serves both services
(``modal_proto``'s ``ModalClientBase`` and ``TaskCommandRouterBase``) from one grpclib server on
127.0.0.1, so every SDK layer runs for real: request building, the client's transient-error retries
and server-directed throttle waits, the 0.5 s scheduling poll inside ``Sandbox.create``, stdio
streaming. The SDK accepts a plain-http command router only when its server URL is localhost, which
is what the SDK's authors use for their own tests.

The state machine, with a known boot time (modal 1.6 creates "V2" sandboxes by default):
``SandboxCreateV2`` records the arrival time and answers at once (with the task and router access
when the sandbox is already placed, as at boot 0; else without); the sandbox is
*scheduled* (``SandboxGetTaskIdV2`` answers a task id) ``boot_ms / 2`` after that arrival, and
*ready* (its readiness probe passes: ``SandboxWaitUntilReady`` on the router returns, execs run)
exactly ``boot_ms`` after it. ``SandboxTerminateV2`` ends it; a terminated or killed sandbox answers
NOT_FOUND on the router and a terminated result on ``SandboxWaitV2``. ``SandboxListV2`` pages by
``before_timestamp`` (newest first, ``page_size`` per page), as the SDK expects. Injected faults
answer a gRPC status; RESOURCE_EXHAUSTED carries Modal's ``RPCRetryPolicy(retry_after_secs)``
detail, the wire form of a Retry-After. Execs run ``python -c`` as local processes, in a folder of
their sandbox's own (HOME and working directory). ``snapshot_filesystem`` (the router's
``TaskSnapshotFilesystem``) copies that folder into a new image, answered ``snapshot_ms`` after the
request; a sandbox created from that image starts with the copy (``lose_snapshot_files``: without
it). Paused states are not modelled: Modal has them only as ``_experimental_`` calls, which the
farm does not use.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from grpclib import GRPCError, Status
from grpclib.server import Server
from modal.client import _Client
from modal._utils.grpc_utils import custom_detail_codec
from modal_proto import api_pb2
from modal_proto.api_grpc import ModalClientBase

from tests.fakes.modal_router import CommandRouter, FakeExec, complete

FAKE_TOKENS = {"MODAL_TOKEN_ID": "ak-fake-token-id-0001", "MODAL_TOKEN_SECRET": "as-fake-token-secret-0001"}
SUCCESS = api_pb2.GenericResult.GENERIC_STATUS_SUCCESS
TERMINATED = api_pb2.GenericResult.GENERIC_STATUS_TERMINATED


def _jwt(ttl_s: float = 3600) -> str:
    """An unsigned JWT: the SDK only reads its ``exp`` to know when to refresh."""
    part = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none'})}.{part({'exp': time.time() + ttl_s})}.sig"


@dataclass
class Fault:
    status: Status
    message: str
    retry_after: float | None = None


@dataclass
class FakeSandbox:
    id: str
    app_id: str
    tags: dict[str, str]
    image_id: str
    timeout_secs: int
    arrived: float            # perf_counter at the create request's arrival
    scheduled_at: float       # arrived + boot / 2: a task id exists from here on
    ready_at: float           # arrived + boot: the readiness probe passes, execs run
    created_at: float         # wall clock, what the API pages by
    task_id: str
    ended: bool = False
    execs: dict[str, FakeExec] = field(default_factory=dict)
    home: str = ""           # the sandbox's own folder: HOME and working directory of its execs


class FakeModal:
    """The fake's state and controls. Controls are called from the test's thread; handlers run on
    the server's loop; one lock guards the shared state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.boot_ms = 0
        self.page_size = 100
        self.apps: dict[str, str] = {}
        self.images: set[str] = {"im-prebuilt0001"}
        self.snapshot_files: dict[str, str] = {}  # image id -> the folder a snapshot_filesystem copied
        self.snapshot_ms = 0
        self.lose_snapshot_files = False  # a snapshot that kept nothing of the sandbox's files
        self.root = tempfile.mkdtemp(prefix="fake-modal-")
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.stalls: dict[str, float] = {}
        self.calls: list[tuple[str, Any, int]] = []  # (method, request, x-retry-attempt)
        self._ids = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # --- controls -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, method: str, status: Status, message: str = "injected", *,
                  retry_after: float | None = None, times: int = 1) -> None:
        """The next ``times`` calls of gRPC ``method`` (e.g. "SandboxCreate") answer ``status``."""
        with self.lock:
            self.faults.setdefault(method, []).extend([Fault(status, message, retry_after)] * times)

    def stall(self, method: str, seconds: float) -> None:
        """The next call of ``method`` answers only after ``seconds``, as an overloaded server does."""
        with self.lock:
            self.stalls[method] = seconds

    def alive(self) -> set[str]:
        with self.lock:
            return {sid for sid, sb in self.sandboxes.items() if not sb.ended}

    def kill(self, sandbox_id: str) -> None:
        """The sandbox dies behind the client's back (its container is gone)."""
        with self.lock:
            self.sandboxes[sandbox_id].ended = True

    def add_sandbox(self, tags: dict[str, str], app: str = "sandbox-farm") -> str:
        """A running sandbox nobody holds a handle to, as a crashed worker leaves behind."""
        with self.lock:
            app_id = self.apps.setdefault(app, f"ap-fake{len(self.apps) + 1:04d}")
        return self._new_sandbox(app_id, tags, "im-prebuilt0001", 600, boot_ms=0).id

    def count(self, method: str) -> int:
        with self.lock:
            return sum(1 for name, _, _ in self.calls if name == method)

    def requests(self, method: str) -> list[Any]:
        with self.lock:
            return [req for name, req, _ in self.calls if name == method]

    def attempts(self, method: str) -> list[int]:
        """The ``x-retry-attempt`` the SDK sent with each call of ``method`` (0 = first try)."""
        with self.lock:
            return [attempt for name, _, attempt in self.calls if name == method]

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "FakeModal":
        ready = threading.Event()

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self._server = Server([ControlPlane(self), CommandRouter(self)], status_details_codec=custom_detail_codec)
            self.loop.run_until_complete(self._server.start("127.0.0.1", 0))
            self.port = self._server._server.sockets[0].getsockname()[1]  # grpclib keeps the asyncio server there
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-modal", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("fake Modal server did not start")
        return self

    def stop(self) -> None:
        if self.loop is None or self._server is None:
            return

        async def shutdown() -> None:
            for sb in self.sandboxes.values():
                await self._end(sb)
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- helpers for the handlers ---------------------------------------------------------------
    async def enter(self, method: str, stream: Any) -> Any:
        """Receive the request, record it, then apply any injected stall or fault."""
        request = await stream.recv_message()
        attempt = int(dict(stream.metadata or {}).get("x-retry-attempt", 0) or 0)
        with self.lock:
            self.calls.append((method, request, attempt))
            stall = self.stalls.pop(method, None)
            queue = self.faults.get(method) or []
            fault = queue.pop(0) if queue else None
        if stall:
            await asyncio.sleep(stall)
        if fault is not None:
            details = [api_pb2.RPCRetryPolicy(retry_after_secs=fault.retry_after)] \
                if fault.retry_after is not None else None
            raise GRPCError(fault.status, fault.message, details)
        return request

    def _new_sandbox(self, app_id: str, tags: dict[str, str], image_id: str, timeout_secs: int,
                     boot_ms: int | None = None) -> FakeSandbox:
        now = time.perf_counter()
        boot = self.boot_ms if boot_ms is None else boot_ms
        with self.lock:
            n = next(self._ids)
            sb = FakeSandbox(f"sb-fake{n:06d}", app_id, dict(tags), image_id, timeout_secs, now,
                             now + boot / 2000, now + boot / 1000, time.time(), f"ta-fake{n:06d}")
            sb.home = os.path.join(self.root, sb.id)
            source = self.snapshot_files.get(image_id)
            self.sandboxes[sb.id] = sb
        if source is not None:  # a sandbox from a filesystem snapshot starts with the copied files
            shutil.copytree(source, sb.home)
        else:
            os.makedirs(sb.home)
        return sb

    def snapshot(self, sb: FakeSandbox) -> str:
        """Copy the sandbox's folder into a new image (what snapshot_filesystem makes)."""
        with self.lock:
            image_id = f"im-snap{next(self._ids):06d}"
        dest = os.path.join(self.root, image_id)
        if self.lose_snapshot_files:
            os.makedirs(dest)
        else:
            shutil.copytree(sb.home, dest)
        with self.lock:
            self.snapshot_files[image_id] = dest
            self.images.add(image_id)
        return image_id

    def sandbox(self, sandbox_id: str) -> FakeSandbox:
        with self.lock:
            sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {sandbox_id} not found")
        return sb

    def by_task(self, task_id: str) -> FakeSandbox:
        with self.lock:
            sb = next((s for s in self.sandboxes.values() if s.task_id == task_id), None)
        if sb is None or sb.ended or time.perf_counter() < sb.scheduled_at:
            raise GRPCError(Status.NOT_FOUND, f"Task {task_id} not found")
        return sb

    async def _end(self, sb: FakeSandbox) -> None:
        sb.ended = True
        for ex in sb.execs.values():
            if ex.proc is not None and ex.proc.returncode is None:
                ex.proc.kill()


@complete
class ControlPlane(ModalClientBase):
    """The control-plane RPCs the farm's calls reach: hello, app, image, sandbox lifecycle and list."""

    def __init__(self, fake: FakeModal) -> None:
        self.fake = fake

    async def ClientHello(self, stream: Any) -> None:
        await self.fake.enter("ClientHello", stream)
        await stream.send_message(api_pb2.ClientHelloResponse())

    async def AuthTokenGet(self, stream: Any) -> None:
        await self.fake.enter("AuthTokenGet", stream)
        await stream.send_message(api_pb2.AuthTokenGetResponse(token=_jwt()))

    async def AppGetOrCreate(self, stream: Any) -> None:
        req = await self.fake.enter("AppGetOrCreate", stream)
        with self.fake.lock:
            app_id = self.fake.apps.get(req.app_name)
            if app_id is None:
                if req.object_creation_type != api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
                    raise GRPCError(Status.NOT_FOUND, f"App '{req.app_name}' not found in environment 'main'")
                app_id = self.fake.apps[req.app_name] = f"ap-fake{len(self.fake.apps) + 1:04d}"
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app_id))

    async def EnvironmentGetOrCreate(self, stream: Any) -> None:
        await self.fake.enter("EnvironmentGetOrCreate", stream)
        await stream.send_message(api_pb2.EnvironmentGetOrCreateResponse(
            environment_id="en-fake0001", metadata=api_pb2.EnvironmentMetadata(
                name="main", settings=api_pb2.EnvironmentSettings(image_builder_version="2025.06"))))

    async def ImageGetOrCreate(self, stream: Any) -> None:
        await self.fake.enter("ImageGetOrCreate", stream)
        image_id = f"im-fakebuilt{self.fake.count('ImageGetOrCreate'):04d}"
        with self.fake.lock:
            self.fake.images.add(image_id)
        await stream.send_message(api_pb2.ImageGetOrCreateResponse(
            image_id=image_id, result=api_pb2.GenericResult(status=SUCCESS)))

    async def ImageFromId(self, stream: Any) -> None:
        req = await self.fake.enter("ImageFromId", stream)
        if req.image_id not in self.fake.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {req.image_id} not found")
        await stream.send_message(api_pb2.ImageFromIdResponse(image_id=req.image_id))

    async def SandboxCreateV2(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxCreateV2", stream)
        if req.definition.image_id not in self.fake.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {req.definition.image_id} not found")
        sb = self.fake._new_sandbox(req.app_id, {t.tag_name: t.tag_value for t in req.tags},
                                    req.definition.image_id, req.definition.timeout_secs)
        if time.perf_counter() >= sb.scheduled_at:  # placed at once: the answer carries task and router
            await stream.send_message(api_pb2.SandboxCreateV2Response(
                sandbox_id=sb.id, task_id=sb.task_id,
                command_router_access=api_pb2.CommandRouterAccess(url=self.fake.url, jwt=_jwt())))
        else:
            await stream.send_message(api_pb2.SandboxCreateV2Response(sandbox_id=sb.id))

    async def SandboxGetTaskIdV2(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxGetTaskIdV2", stream)
        sb = self.fake.sandbox(req.sandbox_id)
        if sb.ended:
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse(
                task_result=api_pb2.GenericResult(status=TERMINATED)))
        elif time.perf_counter() >= sb.scheduled_at:
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse(task_id=sb.task_id))
        else:  # still being scheduled: no task yet
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse())

    async def SandboxWaitV2(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxWaitV2", stream)
        sb = self.fake.sandbox(req.sandbox_id)
        deadline = time.perf_counter() + req.timeout
        while not sb.ended and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        result = api_pb2.GenericResult(status=TERMINATED) if sb.ended else api_pb2.GenericResult()
        await stream.send_message(api_pb2.SandboxWaitResponse(result=result))

    async def SandboxTerminateV2(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxTerminateV2", stream)
        sb = self.fake.sandbox(req.sandbox_id)
        await self.fake._end(sb)
        await stream.send_message(api_pb2.SandboxTerminateResponse())

    async def SandboxTagsGetV2(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxTagsGetV2", stream)
        sb = self.fake.sandbox(req.sandbox_id)
        await stream.send_message(api_pb2.SandboxTagsGetResponse(
            tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sb.tags.items()]))

    async def SandboxListV2(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxListV2", stream)
        wanted = {t.tag_name: t.tag_value for t in req.tags}
        with self.fake.lock:
            found = [sb for sb in self.fake.sandboxes.values()
                     if (req.include_finished or not sb.ended)
                     and (not req.app_id or sb.app_id == req.app_id)
                     and (not req.before_timestamp or sb.created_at < req.before_timestamp)
                     and all(sb.tags.get(k) == v for k, v in wanted.items())]
            page = sorted(found, key=lambda sb: sb.created_at, reverse=True)[:self.fake.page_size]
        await stream.send_message(api_pb2.SandboxListResponse(sandboxes=[
            api_pb2.SandboxInfo(id=sb.id, created_at=sb.created_at, app_id=sb.app_id,
                                tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sb.tags.items()])
            for sb in page]))

    async def SandboxGetCommandRouterAccess(self, stream: Any) -> None:
        req = await self.fake.enter("SandboxGetCommandRouterAccess", stream)
        if req.sandbox_id:
            task_id = self.fake.sandbox(req.sandbox_id).task_id
        else:
            task_id = req.task_id
        self.fake.by_task(task_id)
        await stream.send_message(api_pb2.SandboxGetCommandRouterAccessResponse(jwt=_jwt(), url=self.fake.url))


@contextmanager
def serve(monkeypatch: Any = None) -> Iterator[FakeModal]:
    """A fresh fake: the SDK pointed at it by ``MODAL_SERVER_URL``, fake tokens set (through the
    test's ``monkeypatch``, or a private one restored on exit, for bench/).

    The SDK keeps one client per process (``Client.from_env``) bound to the server URL it first
    saw, so the cached client is dropped before and after.
    """
    import pytest  # the test runner's environment patcher; bench/ runs with the test extra

    with pytest.MonkeyPatch.context() as own:
        patch = monkeypatch or own
        fake = FakeModal().start()
        throttle_was_set = "MODAL_MAX_THROTTLE_WAIT" in os.environ
        patch.setenv("MODAL_SERVER_URL", fake.url)
        for name, value in FAKE_TOKENS.items():
            patch.setenv(name, value)
        _Client._set_env_client(None)
        try:
            yield fake
        finally:
            _Client._set_env_client(None)
            fake.stop()
            if not throttle_was_set:  # the adapter sets Modal's throttle setting process-wide
                os.environ.pop("MODAL_MAX_THROTTLE_WAIT", None)
