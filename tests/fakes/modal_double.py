"""A test double for Modal, which is gRPC-only and so has no HTTP seam to fake.

``install(monkeypatch)`` replaces ``modal.App`` and ``modal.Sandbox`` — the SDK objects the adapter
calls — with doubles that keep their call shapes (``App.lookup``, ``Sandbox.create/exec/terminate/
list/from_id``, ``ContainerProcess.stdout.read()/wait()``). ``modal.Image`` and ``modal.exception``
stay the real SDK's. Execs really run: ``python -c CODE`` starts a local Python process with the
sandbox's env plus the exec's ``env``; an exec past its ``timeout`` gets returncode -1, as Modal's
does. A tripwire makes any real Modal client construction fail at once, so a test that slips past
the double fails in milliseconds instead of waiting out a minute of gRPC retries.

Fake tokens are set only here, alongside the double.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import modal
import modal.client
import modal.exception as mx

FAKE_TOKENS = {"MODAL_TOKEN_ID": "ak-fake-token-id-0001", "MODAL_TOKEN_SECRET": "as-fake-token-secret-0001"}


class RealModalCallError(AssertionError):
    """A test reached the real Modal client."""


@dataclass
class ModalCloud:
    """What the double's Modal holds: apps, live sandboxes, every call, and injected failures."""

    apps: dict[str, "FakeApp"] = field(default_factory=dict)
    sandboxes: dict[str, "FakeSandbox"] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, list[list[Any]]] = field(default_factory=dict)
    root: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="fake-modal-"))
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def fail(self, op: str, exc: BaseException, times: int = 1) -> None:
        """Raise ``exc`` from the next ``times`` calls of ``op`` (app_lookup/create/exec/terminate/list/from_id)."""
        self.faults.setdefault(op, []).append([exc, times])

    def stall(self, op: str, seconds: float) -> None:
        """Make the next call of ``op`` take ``seconds`` before answering, as an unreachable server does."""
        self.faults.setdefault(op, []).append([seconds, 1])

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def kwargs(self, op: str) -> list[dict[str, Any]]:
        return [kw for name, kw in self.calls if name == op]

    def add_sandbox(self, tags: dict[str, str], app: str = "sandbox-farm") -> str:
        """A running sandbox nobody holds a handle to, as a crashed worker leaves behind."""
        if app not in self.apps:
            self.apps[app] = FakeApp(app, f"ap-fake{len(self.apps) + 1:04d}")
        return self._new(app=self.apps[app], image=None, tags=tags, env={}).object_id

    def _enter(self, op: str, **kwargs: Any) -> None:
        self.calls.append((op, kwargs))
        queue = self.faults.get(op) or []
        if queue:
            exc, times = queue[0]
            if times <= 1:
                queue.pop(0)
            else:
                queue[0][1] = times - 1
            if isinstance(exc, (int, float)):
                time.sleep(exc)
                return
            raise exc

    def _new(self, app: Any, image: Any, tags: dict[str, str], env: dict[str, str]) -> "FakeSandbox":
        sid = f"sb-fake{next(self._ids):06d}"
        home = os.path.join(self.root, sid)
        os.makedirs(home)
        sb = FakeSandbox(sid, self, app, image, dict(tags), dict(env), home)
        self.sandboxes[sid] = sb
        return sb

    def close(self) -> None:
        for sb in self.sandboxes.values():
            sb._kill_procs()
        shutil.rmtree(self.root, ignore_errors=True)


class FakeApp:
    """Stands in for ``modal.App``: only ``lookup`` is used by the farm."""

    _cloud: ModalCloud

    def __init__(self, name: str, app_id: str) -> None:
        self.name, self.app_id = name, app_id

    @classmethod
    def lookup(cls, name: str, *, client: Any = None, environment_name: str | None = None,
               create_if_missing: bool = False) -> "FakeApp":
        cls._cloud._enter("app_lookup", name=name, create_if_missing=create_if_missing)
        if name not in cls._cloud.apps:
            if not create_if_missing:
                raise mx.NotFoundError(f"App '{name}' not found in environment 'main'")
            cls._cloud.apps[name] = cls(name, f"ap-fake{len(cls._cloud.apps) + 1:04d}")
        return cls._cloud.apps[name]


class _Stream:
    def __init__(self, proc: "FakeProcess", which: str) -> None:
        self._proc, self._which = proc, which

    def read(self) -> str:
        self._proc._finish()
        return self._proc._out if self._which == "stdout" else self._proc._err


class FakeProcess:
    """Stands in for ``modal.container_process.ContainerProcess``."""

    def __init__(self, popen: subprocess.Popen, timeout: int | None) -> None:
        self._popen, self._timeout = popen, timeout
        self._out = self._err = ""
        self.returncode: int | None = None
        self.stdout, self.stderr = _Stream(self, "stdout"), _Stream(self, "stderr")

    def _finish(self) -> None:
        if self.returncode is not None:
            return
        try:
            out, err = self._popen.communicate(timeout=self._timeout)
            self.returncode = self._popen.returncode
        except subprocess.TimeoutExpired:
            self._popen.kill()
            out, err = self._popen.communicate()
            self.returncode = -1  # what Modal's ContainerProcess.wait() gives for an exec timeout
        self._out, self._err = out.decode(errors="replace"), err.decode(errors="replace")

    def wait(self) -> int:
        self._finish()
        assert self.returncode is not None
        return self.returncode


class FakeSandbox:
    """Stands in for ``modal.Sandbox``."""

    _cloud: ModalCloud

    def __init__(self, object_id: str, cloud: ModalCloud, app: Any, image: Any, tags: dict[str, str],
                 env: dict[str, str], home: str) -> None:
        self.object_id, self._cloud_ref, self.app, self.image = object_id, cloud, app, image
        self._tags, self._env, self._home = tags, env, home
        self._procs: list[subprocess.Popen] = []
        self.returncode: int | None = None

    @classmethod
    def create(cls, *args: str, app: Any = None, image: Any = None, tags: dict[str, str] | None = None,
               env: dict[str, str] | None = None, timeout: int = 300, **options: Any) -> "FakeSandbox":
        cls._cloud._enter("create", args=args, app=app, image=image, tags=tags, env=env, timeout=timeout,
                          **options)
        if app is None:
            raise mx.InvalidError("App is required when creating a Sandbox outside a Modal container")
        if not isinstance(app, FakeApp):
            raise TypeError(f"app must be a modal.App, got {type(app).__name__}")
        if image is not None and not isinstance(image, modal.Image):
            raise TypeError(f"image must be a modal.Image, got {type(image).__name__}")
        return cls._cloud._new(app, image, tags or {}, env or {})

    @classmethod
    def list(cls, *, app_id: str | None = None, tags: dict[str, str] | None = None,
             client: Any = None) -> Iterator["FakeSandbox"]:
        cls._cloud._enter("list", app_id=app_id, tags=tags)
        for sb in list(cls._cloud.sandboxes.values()):
            if (app_id is None or getattr(sb.app, "app_id", None) == app_id) and \
                    all(sb._tags.get(k) == v for k, v in (tags or {}).items()):
                yield sb

    @classmethod
    def from_id(cls, sandbox_id: str, client: Any = None) -> "FakeSandbox":
        cls._cloud._enter("from_id", sandbox_id=sandbox_id)
        sb = cls._cloud.sandboxes.get(sandbox_id)
        if sb is None:
            raise mx.NotFoundError(f"Sandbox with id {sandbox_id} not found")
        return sb

    def get_tags(self) -> dict[str, str]:
        return dict(self._tags)

    def exec(self, *args: str, env: dict[str, str | None] | None = None, timeout: int | None = None,
             workdir: str | None = None, **options: Any) -> FakeProcess:
        self._cloud_ref._enter("exec", sandbox=self.object_id, args=args, env=env, timeout=timeout)
        if self.object_id not in self._cloud_ref.sandboxes:
            raise mx.SandboxTerminatedError("Sandbox has already terminated")
        argv = [sys.executable if args[0] == "python" else args[0], *args[1:]]
        merged = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self._home, "LANG": "C.UTF-8",
                  **self._env, **{k: v for k, v in (env or {}).items() if v is not None}}
        popen = subprocess.Popen(argv, cwd=workdir or self._home, env=merged, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._procs.append(popen)
        return FakeProcess(popen, timeout)

    def terminate(self, *, wait: bool = False) -> int | None:
        self._cloud_ref._enter("terminate", sandbox=self.object_id, wait=wait)
        if self._cloud_ref.sandboxes.pop(self.object_id, None) is not None:
            self._kill_procs()
            self._cloud_ref.terminated.append(self.object_id)
            shutil.rmtree(self._home, ignore_errors=True)
            self.returncode = 137  # its main process was killed
        return self.returncode if wait else None

    def _kill_procs(self) -> None:
        for popen in self._procs:
            if popen.poll() is None:
                popen.kill()
                popen.wait()


def _tripwire(*args: Any, **kwargs: Any) -> Any:
    raise RealModalCallError("a test reached the real Modal client; use tests.fakes.modal_double")


def install(monkeypatch: Any, *, tokens: bool = True) -> ModalCloud:
    """Swap the double in for ``modal.App``/``modal.Sandbox`` for one test; returns its state."""
    cloud = ModalCloud()
    monkeypatch.setattr(modal, "App", type("App", (FakeApp,), {"_cloud": cloud}))
    monkeypatch.setattr(modal, "Sandbox", type("Sandbox", (FakeSandbox,), {"_cloud": cloud}))
    # Every real Modal call starts by building a client from the environment or from credentials
    # (patched on the implementation the SDK calls internally and on the public wrapper)
    for name in ("from_env", "from_credentials"):
        monkeypatch.setattr(modal.client._Client, name, classmethod(_tripwire))
        monkeypatch.setattr(modal.client.Client, name, classmethod(_tripwire))
    for name in FAKE_TOKENS:
        if tokens:
            monkeypatch.setenv(name, FAKE_TOKENS[name])
        else:
            monkeypatch.delenv(name, raising=False)
    return cloud
