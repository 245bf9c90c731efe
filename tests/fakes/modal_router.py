"""The fake Modal's task command router: the per-task gRPC service the SDK execs through.

Served next to the control plane by tests/fakes/modal_server.py (same port); see that module.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from grpclib import GRPCError, Status
from modal_proto import task_command_router_pb2 as sr_pb2
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

if TYPE_CHECKING:
    from tests.fakes.modal_server import FakeModal


@dataclass
class FakeExec:
    proc: asyncio.subprocess.Process | None
    stdout: bytes = b""
    stderr: bytes = b""
    code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def complete(cls: type) -> type:
    """Make every RPC this fake does not model answer UNIMPLEMENTED (so a new SDK call shows up loudly)."""
    for name in list(getattr(cls, "__abstractmethods__", ())):
        async def unimplemented(self: Any, stream: Any, _name: str = name) -> None:
            raise GRPCError(Status.UNIMPLEMENTED, f"{_name} is not modelled by the fake Modal")
        setattr(cls, name, unimplemented)
    cls.__abstractmethods__ = frozenset()
    return cls


@complete
class CommandRouter(TaskCommandRouterBase):
    """The per-task router the SDK execs through: start, stdio, wait, poll."""

    def __init__(self, fake: FakeModal) -> None:
        self.fake = fake

    async def SandboxWaitUntilReady(self, stream: Any) -> None:
        """Returns the moment the readiness probe passes (the server waits; the client does not poll)."""
        req = await self.fake.enter("SandboxWaitUntilReady", stream)
        sb = self.fake.by_task(req.task_id)
        wait = sb.ready_at - time.perf_counter()
        if wait > req.timeout:
            await asyncio.sleep(req.timeout)
            raise GRPCError(Status.DEADLINE_EXCEEDED, "sandbox not ready within the timeout")
        if wait > 0:
            await asyncio.sleep(wait)
        if sb.ended:
            raise GRPCError(Status.NOT_FOUND, f"Task {req.task_id} not found")
        await stream.send_message(sr_pb2.SandboxWaitUntilReadyTcrResponse())

    async def TaskExecStart(self, stream: Any) -> None:
        req = await self.fake.enter("TaskExecStart", stream)
        sb = self.fake.by_task(req.task_id)
        if time.perf_counter() < sb.ready_at:  # the container is still starting: the exec waits for it
            await asyncio.sleep(sb.ready_at - time.perf_counter())
        if req.exec_id not in sb.execs:  # the SDK may resend a start with the same id
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": sb.home,
                   **{k: v for s in req.secret_sources if s.HasField("env") for k, v in s.env.contents.items()}}
            argv = [sys.executable if req.command_args[0] == "python" else req.command_args[0],
                    *req.command_args[1:]]
            proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=sb.home, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            ex = sb.execs[req.exec_id] = FakeExec(proc)
            asyncio.ensure_future(self._run(ex, req.timeout_secs or None))
        await stream.send_message(sr_pb2.TaskExecStartResponse())

    async def TaskSnapshotFilesystem(self, stream: Any) -> None:
        """snapshot_filesystem: the sandbox's files copied into a new image, ``snapshot_ms`` after the request."""
        req = await self.fake.enter("TaskSnapshotFilesystem", stream)
        arrived = time.perf_counter()
        sb = self.fake.by_task(req.task_id)
        image_id = self.fake.snapshot(sb)
        wait = arrived + self.fake.snapshot_ms / 1000 - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        await stream.send_message(sr_pb2.TaskSnapshotFilesystemResponse(image_id=image_id))

    async def _run(self, ex: FakeExec, timeout: float | None) -> None:
        try:
            ex.stdout, ex.stderr = await asyncio.wait_for(ex.proc.communicate(), timeout)
            ex.code = ex.proc.returncode
        except asyncio.TimeoutError:
            ex.proc.kill()
            await ex.proc.wait()
            ex.code = -1
        ex.done.set()

    def _exec(self, task_id: str, exec_id: str) -> FakeExec:
        ex = self.fake.by_task(task_id).execs.get(exec_id)
        if ex is None:
            raise GRPCError(Status.NOT_FOUND, f"exec {exec_id} not found")
        return ex

    async def TaskExecStdioRead(self, stream: Any) -> None:
        req = await self.fake.enter("TaskExecStdioRead", stream)
        ex = self._exec(req.task_id, req.exec_id)
        await ex.done.wait()
        data = ex.stdout if req.file_descriptor == sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDOUT else ex.stderr
        if data[req.offset:]:
            await stream.send_message(sr_pb2.TaskExecStdioReadResponse(data=data[req.offset:]))

    async def TaskExecWait(self, stream: Any) -> None:
        req = await self.fake.enter("TaskExecWait", stream)
        ex = self._exec(req.task_id, req.exec_id)
        await ex.done.wait()
        await stream.send_message(sr_pb2.TaskExecWaitResponse(code=ex.code))

    async def TaskExecPoll(self, stream: Any) -> None:
        req = await self.fake.enter("TaskExecPoll", stream)
        ex = self._exec(req.task_id, req.exec_id)
        await stream.send_message(sr_pb2.TaskExecPollResponse(code=ex.code) if ex.done.is_set()
                                  else sr_pb2.TaskExecPollResponse())


