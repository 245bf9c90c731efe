"""Modal on its real SDK (gRPC only): Sandbox.create on an App, exec per run, terminate, list by tags.

What the SDK does inside a timed call, and what the farm does about it (providers/README.md#modal):

- ``Sandbox.create`` (modal 1.6, "V2" sandboxes) returns as soon as Modal accepted the request,
  before the container runs. The farm owns readiness: every sandbox gets a readiness probe (`true`,
  run by Modal's worker every ``scheduling_poll_ms``) and create ends when ``wait_until_ready``
  returns, a server-side wait. Before that the SDK polls for the sandbox's task id every 0.5 s; the
  adapter shortens that poll to ``scheduling_poll_ms`` (the one SDK private it changes, see
  ``fine_scheduling_poll``).
- Server-directed throttle waits are switched off (``MODAL_MAX_THROTTLE_WAIT=0``, Modal's own
  setting): a throttled call raises RESOURCE_EXHAUSTED at once and is classified ``rate_limited``
  with the server's retry-after, instead of sleeping inside the timed call.
- Every RPC is retried up to 3 times on transient gRPC statuses, with no setting to stop it. The
  SDK logs each resend; the adapter counts them (``RetryCounter``) into the sample's
  ``sdk_attempts``.
- ``create`` has no deadline of its own: the adapter bounds create-until-ready by ``timeouts.create``
  and terminates a sandbox that was not ready in time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import modal
import modal.exception as mx
from modal.config import config as modal_config

from providers.base import Assumption, Provider, ProviderError, RunResult, Sandbox, SandboxSpec, cap_output
from providers.errors import Failure, first_line
from providers.modal import SPEC

T = TypeVar("T")
SDK_SCHEDULING_POLL_S = 0.5  # what modal 1.6 polls at when the constant cannot be changed


class ModalProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})  # Modal sandboxes have outbound network unless blocked

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._app: Any = None
        self._prebuilt: Any = None   # the hydrated pre-built image (warm: image), resolved untimed
        self._prepared = False
        self._poll_s = SDK_SCHEDULING_POLL_S

    # --- setup (untimed) --------------------------------------------------------------------------
    def prepare(self) -> None:
        if self._prepared:
            return
        # Modal's supported setting: 0 = raise RESOURCE_EXHAUSTED instead of sleeping as told; a
        # value the user set is kept, and the facts show it
        os.environ.setdefault("MODAL_MAX_THROTTLE_WAIT", "0")
        self._poll_s = fine_scheduling_poll(self.settings.scheduling_poll_ms / 1000)
        RETRIES.install()
        self._prepared = True

    def _ready(self) -> None:
        """The gate in front of every Modal call: credentials (both tokens), then prepare()."""
        if not self._prepared:
            self.check()

    def _ensure_app(self) -> Any:
        self._ready()
        if self._app is None:  # once per process, normally from warm() before anything is timed
            self._app = self.call("app lookup", modal.App.lookup, self.settings.app, create_if_missing=True)
        return self._app

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Look the App up and resolve the pre-built image outside any timed phase."""
        self._ensure_app()
        if self.settings.warm != "image":
            return None
        self._prebuilt_image()
        return {"image_id": self.settings.image_id, "image": "prebuilt"}

    def _prebuilt_image(self) -> Any:
        if self._prebuilt is None:
            # Image.from_id is lazy: unresolved, every create would look it up inside the timed call.
            # build() on an existing image only resolves it (Modal's documented way to pre-build one).
            app = self._ensure_app()
            self._prebuilt = self.call("image lookup", lambda: modal.Image.from_id(self.settings.image_id).build(app))
        return self._prebuilt

    # --- the protocol -----------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        prebuilt = self.settings.warm == "image"
        # cold: a fresh definition per create, resolved by Modal inside create (that is what cold means here)
        image = self._prebuilt_image() if prebuilt else modal.Image.debian_slim(python_version=self.settings.python)
        sb, facts = self._start(image, spec.labels, spec.timeout_s)
        facts["image"] = "prebuilt" if prebuilt else "definition"
        # a pre-built image is still a cold container start: warm stays None, the facts say prebuilt
        return Sandbox(id=sb.object_id, handle=sb, warm=None, facts=facts, info={"labels": dict(spec.labels)})

    def _start(self, image: Any, labels: Mapping[str, str], timeout_s: float) -> tuple[Any, dict[str, Any]]:
        """Sandbox.create from ``image`` and wait until Modal's readiness probe passes."""
        app = self._ensure_app()
        options = {k: getattr(self.settings, k) for k in ("region", "cpu", "memory") if getattr(self.settings, k)}
        # The probe is Modal's own readiness signal: its worker runs `true` in the container every
        # scheduling_poll_ms until it succeeds, and wait_until_ready returns when it has
        probe = modal.Probe.with_exec("true", interval_ms=self.settings.scheduling_poll_ms)
        made: list[Any] = []
        accepted_at: list[float] = []

        async def create_until_ready() -> Any:
            # env vars go per exec, never at create: the sandbox stays the same whatever a snippet gets
            made.append(await modal.Sandbox.create.aio(
                app=app, image=image, tags=dict(labels), timeout=self.settings.sandbox_timeout,
                readiness_probe=probe, **options))
            accepted_at.append(time.perf_counter())
            await made[0].wait_until_ready.aio(timeout=max(1, math.ceil(timeout_s)))
            return made[0]

        retries_before, start = RETRIES.count, time.perf_counter()
        try:
            sb = self._bounded("create", timeout_s, create_until_ready)
        except BaseException:
            if made:  # created but never usable in time (or interrupted): end it rather than leave it running
                self._terminate_quietly(made[0])
            raise
        # accepted_ms: when Sandbox.create returned (Modal accepted the request), a plain fact beside the phase
        return sb, {"sdk_attempts": 1 + RETRIES.count - retries_before,
                    "accepted_ms": round(1000 * (accepted_at[0] - start), 1)}

    def _bounded(self, what: str, timeout_s: float, make: Callable[[], Awaitable[T]]) -> T:
        """Run an SDK coroutine with a deadline (the SDK's own create waits up to 21 minutes)."""
        async def bounded() -> T:
            return await asyncio.wait_for(make(), timeout_s)

        with self.guard(what):
            try:
                return asyncio.run(bounded())
            except asyncio.TimeoutError:
                raise ProviderError("timeout", f"modal {what}: sandbox not ready within {timeout_s:g} s "
                                    "(timeouts.create)") from None

    def _terminate_quietly(self, handle: Any) -> None:
        try:
            handle.terminate()
        except Exception:  # noqa: BLE001 - its lifetime bound (sandbox_timeout) and `farm sweep` remain
            pass

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        def execute() -> tuple[int, str, str]:
            proc = sandbox.handle.exec("python", "-c", code, env=dict(env) or None,
                                       timeout=max(1, math.ceil(timeout)))
            stdout, stderr = proc.stdout.read(), proc.stderr.read()
            return proc.wait(), stdout, stderr

        exit_code, stdout, stderr = self.call("run", execute)
        if exit_code == -1:  # Modal reports an exec past its timeout as returncode -1, not an exception
            raise ProviderError("timeout", f"modal run: snippet still running after {timeout:g} s")
        return RunResult(exit_code=exit_code, stdout=cap_output(stdout), stderr=cap_output(stderr))

    def destroy(self, sandbox: Sandbox) -> None:
        # wait=True: return only once Modal reports the sandbox has exited
        self.call("destroy", sandbox.handle.terminate, wait=True)

    # --- pause and resume: the public snapshot_filesystem path, its own kind ------------------------
    # Modal's public API has no pause (pause and memory snapshots are _experimental_). What it offers:
    # snapshot_filesystem() -> an image, and a new sandbox from that image. So "pause" here is the
    # snapshot plus terminating the original (nothing left running), and "resume" a cold boot of a
    # copy: a new sandbox, new id, the files kept, memory not. Samples say so (resume_kind).
    def pause_support(self) -> str | None:
        return None

    def pause(self, sandbox: Sandbox) -> None:
        image = self.call("pause", sandbox.handle.snapshot_filesystem, timeout=self.settings.snapshot_timeout_s)
        self.call("pause", sandbox.handle.terminate, wait=True)
        sandbox.info["snapshot_image"] = image
        sandbox.facts.update(pause_kind="snapshot_filesystem, then terminate (Modal has no public pause)",
                             snapshot_image=image.object_id)

    def resume(self, sandbox: Sandbox) -> None:
        image = sandbox.info.get("snapshot_image")
        if image is None:
            raise ProviderError("provider_error", "modal resume: no filesystem snapshot to start from")
        sb, facts = self._start(image, sandbox.info.get("labels", {}), self.settings.snapshot_timeout_s)
        sandbox.facts.update(resume_kind="modal snapshot_filesystem -> new sandbox from the image (a cold boot of "
                                         "a copy: files kept, memory not; not a resume of the same sandbox)",
                             resume_from=sandbox.id, resume_sdk_attempts=facts["sdk_attempts"])
        sandbox.id, sandbox.handle = sb.object_id, sb

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        # Scoped to the configured App: Modal deprecates environment-wide listing. Sandboxes left
        # under another app name are swept by running with that ``app`` setting. The SDK pages.
        self._ready()

        def find() -> list[str]:
            try:
                app = self._app or modal.App.lookup(self.settings.app)
            except mx.NotFoundError:  # the app never existed: nothing of ours can be left in it
                return []
            return [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id, tags=dict(labels))]

        return self.call("list", find)

    def delete_by_id(self, sandbox_id: str) -> None:
        self._ready()

        def terminate() -> None:
            try:
                modal.Sandbox.from_id(sandbox_id).terminate(wait=True)
            except mx.NotFoundError:  # already gone (e.g. ended between list and delete): nothing to do
                pass

        self.call("destroy", terminate)

    # --- description ------------------------------------------------------------------------------
    def endpoint(self) -> str:
        return str(modal_config["server_url"])

    def ping(self, timeout: float) -> bool:
        """Look the App up (found or not, Modal answered and took the tokens) within ``timeout``.

        The SDK retries an unreachable server for about a minute with no per-call limit, so the
        lookup runs on a daemon thread and the check gives up after ``timeout``.
        """
        self._ready()
        outcome: list[BaseException | None] = []

        def lookup() -> None:
            try:
                modal.App.lookup(self.settings.app)
                outcome.append(None)
            except mx.NotFoundError:
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
                outcome.append(exc)

        thread = threading.Thread(target=lookup, name="modal-ping", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome:
            raise ProviderError("timeout", f"modal ping: no answer from {self.endpoint()} within {timeout:g} s")
        if outcome[0] is not None:
            raise self.error("ping", outcome[0])
        return True

    def facts(self) -> dict[str, Any]:
        s = self.settings
        return {
            "app": s.app, "warm_mode": s.warm, "region": s.region, "endpoint": self.endpoint(),
            "image": s.image_id if s.warm == "image" else f"debian_slim(python={s.python})",
            "cpu": s.cpu, "memory_mb": s.memory, "sandbox_timeout_s": s.sandbox_timeout,
            "timing": {
                "create": "Sandbox.create with a readiness probe (`true` every scheduling_poll_ms), then "
                          "wait_until_ready: ends when Modal's worker saw the container run a process",
                "resolution_ms": max(round(self._poll_s * 1000), s.scheduling_poll_ms),
                "deadline": "timeouts.create; a sandbox not ready by then is terminated",
                "warm_signal": "none: every sample is a cold create; warm: image only records image=prebuilt",
                "hidden_retries": "each RPC retried up to 3x on transient gRPC statuses (not configurable); "
                                  "counted per sample in sandbox.sdk_attempts",
                "throttle_wait_s": os.environ.get("MODAL_MAX_THROTTLE_WAIT"),
                "leak_bound": f"sandbox timeout {s.sandbox_timeout} s (Modal ends the sandbox)",
                "pause_resume": "its own kind, not a resume: pause = snapshot_filesystem then terminate(wait=True); "
                                "resume = a new sandbox from the snapshot image until its readiness probe passes "
                                "(a cold boot of a copy: files kept, memory not); Modal's pause is _experimental_",
            },
        }

    def assumptions(self) -> list[Assumption]:
        from providers.modal.live import ASSUMPTIONS
        return list(ASSUMPTIONS)

    # --- failures ---------------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> Failure:
        detail = first_line(f"{type(exc).__name__}: {exc}")
        for types, error_class, status in ERROR_TABLE:
            if isinstance(exc, types):
                return Failure(error_class, detail, status, server_retry_after(exc))
        return super().classify(exc)


# Modal's exception classes (gRPC statuses underneath) -> the farm's classes, first match wins
ERROR_TABLE: tuple[tuple[tuple[type[BaseException], ...], str, int | None], ...] = (
    ((mx.AuthError,), "auth", 401),
    ((mx.PermissionDeniedError,), "auth", 403),
    ((mx.NotFoundError,), "not_found", 404),
    ((mx.ResourceExhaustedError,), "rate_limited", 429),
    ((mx.SandboxTerminatedError,), "provider_error", None),  # the sandbox died: not a timeout
    ((mx.TimeoutError, TimeoutError), "timeout", None),     # SandboxTimeoutError, ExecTimeoutError, ...
    ((mx.ConnectionError, OSError), "network", None),
    ((mx.Error,), "provider_error", None),  # any other Modal answer (also keeps its deprecated .status unread)
)


def server_retry_after(exc: BaseException) -> float | None:
    """The wait Modal asked for: its RESOURCE_EXHAUSTED carries an ``RPCRetryPolicy`` status detail
    (the gRPC form of Retry-After). The SDK keeps the decoded details only on the private
    ``_grpc_details`` of the exception it raises; this is the one place that reads it."""
    for detail in getattr(exc, "_grpc_details", None) or ():
        seconds = getattr(detail, "retry_after_secs", None)
        if isinstance(seconds, (int, float)) and seconds > 0:
            return float(seconds)
    return None


def fine_scheduling_poll(interval_s: float) -> float:
    """Make ``Sandbox.create`` check scheduling every ``interval_s`` instead of every 0.5 s.

    modal 1.6 polls ``SandboxGetTaskId`` at the module constant ``_TASK_ID_POLL_INTERVAL`` and offers
    no setting for it; at 0.5 s every create would be quantised to half-seconds. This is the only
    private the adapter changes. Returns the interval in force: the SDK's own when the constant
    has moved (the facts then state the coarser resolution).
    """
    from modal.sandbox import _common, _impl_v1, _impl_v2

    modules = (_common, _impl_v1, _impl_v2)
    if not all(isinstance(getattr(m, "_TASK_ID_POLL_INTERVAL", None), float) for m in modules):
        return SDK_SCHEDULING_POLL_S
    for module in modules:
        module._TASK_ID_POLL_INTERVAL = interval_s
    return interval_s


class RetryCounter(logging.Filter):
    """Counts the SDK's hidden RPC resends, which it reports only in its debug log.

    Installed once per process on Modal's loggers (``modal-utils`` logs control-plane resends,
    ``modal-client`` the command router's): each is opened to DEBUG so the resend records arrive,
    and every record below the level that was in force is dropped here, so what Modal prints is
    unchanged. A worker process runs one sample at a time, so the difference of ``count`` around a
    call is that call's resends.
    """

    LOGGERS = ("modal-utils", "modal-client")
    MARKERS = ("Retryable failure", "Server-side retry")

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._shown: dict[str, int] = {}

    def install(self) -> None:
        for name in self.LOGGERS:
            if name in self._shown:
                continue
            logger = logging.getLogger(name)
            self._shown[name] = logger.getEffectiveLevel()
            logger.addFilter(self)
            logger.setLevel(logging.DEBUG)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            text = str(record.msg)
            # control-plane resends, throttle resends, and the command router's own retry loop (execs)
            if text.startswith(self.MARKERS) or ("failed after" in text and "retrying in" in text):
                self.count += 1
        return record.levelno >= self._shown.get(record.name, logging.WARNING)


RETRIES = RetryCounter()
