"""Morph Cloud on its own SDK (``morphcloud``): instances start from a base snapshot (cold) or from a
snapshot of a warmed-up instance (``mode: snapshot``). Settings: ``providers/morph/__init__.py``;
phases, resolution and leak bound: providers/README.md. Credentials: MORPH_API_KEY. Endpoint:
MORPH_BASE_URL (default: the SDK's).

The farm owns readiness: create is ``POST /instance`` through the SDK's HTTP client, then the
instance's status is read with ``poll_until`` until it says ``ready`` (the SDK's ``instances.start``
sleeps a whole second before each check). Destroy is ``DELETE /instance/{id}``, then status reads
until the API answers 404.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx
from morphcloud.api import ApiError, Instance, MorphCloudClient
from morphcloud.config import resolve_settings

from providers.base import (WARM_UNKNOWN, Assumption, Failure, Provider, ProviderError, RunResult, Sandbox,
                            SandboxSpec, cap_output, default_failure)
from providers.morph import SPEC
from providers.morph import sdk
from providers.morph.assumptions import ASSUMPTIONS
from providers.morph.shell import shell_command
from providers.morph.snapshots import ensure_base, ensure_warm
from providers.polling import DEFAULT_MAX_S, poll_until

__all__ = ["MorphProvider", "shell_command"]

READY, ERROR, PAUSED = "ready", "error", "paused"  # instance states that end a wait
PAGE_LIMIT = 100                     # instances asked for per page of /instance/list
MAX_PAGES = 10_000                   # a server that always says has_next cannot loop us forever
MIN_CALL_S = 0.05                    # the shortest timeout a call inside a deadline gets
ABANDON_S = 5.0                      # bound on stopping an instance whose create failed


class MorphProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.snapshot_id: str | None = self.settings.snapshot_id       # set by warm() when the farm makes it
        self.warm_snapshot_id: str | None = self.settings.warm_snapshot_id
        self._client: MorphCloudClient | None = None

    # --- setup ----------------------------------------------------------------------------------
    def prepare(self) -> None:
        if self._client is None:
            self._client = self.call("client", sdk.make_client, self.settings.http_timeout_s)

    def client(self) -> MorphCloudClient:
        if self._client is None:
            self.check()
        assert self._client is not None
        return self._client

    def api(self, method: str, path: str, *, deadline: float | None = None, timeout: float | None = None,
            **kwargs: Any) -> Any:
        """One call through the SDK's HTTP client, bounded by ``http_timeout_s`` and the deadline."""
        limit = self.settings.http_timeout_s if timeout is None else timeout
        if deadline is not None:
            limit = min(limit, max(deadline - time.perf_counter(), MIN_CALL_S))
        return sdk.request(self.client(), method, path, limit, **kwargs)

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Untimed, once per worker process: the base snapshot (made from the minimal image when no
        ``snapshot_id`` is set) and, in snapshot mode, the warm snapshot; both reused by digest."""
        facts: dict[str, Any] = {}
        with self.guard("prepare"):
            if self.snapshot_id is None:
                self.snapshot_id, facts["base_snapshot"] = ensure_base(self)
            if self.mode == "snapshot":
                self.warm_snapshot_id, facts["warm_snapshot"] = ensure_warm(self, self.snapshot_id)
        return facts or None

    @property
    def mode(self) -> str:
        return self.settings.mode

    # --- the protocol ---------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        start_from = self._start_point()
        with self.guard("create"):
            inst, polls = self.start_instance(start_from, dict(spec.labels), spec.timeout_s)
        booted_from = inst.refs.snapshot_id  # the provider's record of what it booted, not our request
        if booted_from != start_from:
            warm: str | None = WARM_UNKNOWN
        else:
            warm = "snapshot" if self.mode == "snapshot" else None
        return Sandbox(id=inst.id, handle=inst, warm=warm, info={"snapshot": start_from},
                       facts={"polls": polls, "booted_from": booted_from})

    def start_instance(self, snapshot_id: str, metadata: dict[str, str], timeout_s: float) -> tuple[Instance, int]:
        """``POST /instance``, then the farm's readiness poll, all within ``timeout_s``; returns the
        ready instance and the status reads it took. One that never gets ready is stopped."""
        deadline = time.perf_counter() + timeout_s
        body = {"metadata": metadata, "ttl_seconds": self.settings.ttl_seconds, "ttl_action": self.settings.ttl_action}
        data = self.api("POST", "/instance", deadline=deadline, params={"snapshot_id": snapshot_id}, json=body)
        try:
            polls = 0
            if data.get("status") != READY:
                polled = poll_until(lambda: self._ready(data["id"], deadline),
                                    timeout=round(max(deadline - time.perf_counter(), 0.0), 3),
                                    what=f"morph create: instance {data['id']} (create deadline {timeout_s:g} s)")
                data, polls = polled.value, polled.polls
            return sdk.instance(self.client(), data), polls
        except BaseException:  # the soft time limit included: a half-made instance must not outlive us
            self.abandon(data["id"])
            raise

    def _ready(self, instance_id: str, deadline: float) -> dict[str, Any] | None:
        data = self.api("GET", f"/instance/{instance_id}", deadline=deadline)
        if data.get("status") == ERROR:
            raise ProviderError("provider_error", f"morph create: instance {instance_id} reported status "
                                "'error' while booting")
        return data if data.get("status") == READY else None

    def abandon(self, instance_id: str) -> None:
        """Stop an instance on the way out of a failure, never raising."""
        try:
            self.api("DELETE", f"/instance/{instance_id}", timeout=ABANDON_S)
        except Exception:  # noqa: BLE001 - best effort: its TTL and `farm sweep` are the backstop
            pass

    def _start_point(self) -> str:
        if self.mode == "snapshot":
            if not self.warm_snapshot_id:  # never fall back to a cold start and call it warm
                raise ProviderError("config", "morph: mode snapshot but no warm snapshot in this worker: set "
                                    "providers.morph.warm_snapshot_id, or let warm() prepare one first")
            return self.warm_snapshot_id
        if not self.snapshot_id:
            raise ProviderError("config", "morph: no base snapshot in this worker: set providers.morph.snapshot_id, "
                                "or let warm() make one from image_id first")
        return self.snapshot_id

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        command = shell_command(self.settings.python, code, env)
        with self.guard("run"):
            resp = sandbox.handle.exec(command, timeout=timeout)
        return RunResult(exit_code=resp.exit_code, stdout=cap_output(resp.stdout), stderr=cap_output(resp.stderr))

    # --- pause and resume (the resume scenario) ----------------------------------------------------
    def pause_support(self) -> str | None:
        return None

    def pause(self, sandbox: Sandbox) -> None:
        """``POST /instance/{id}/pause``, then status reads until ``paused`` (not the SDK's 1 s waits)."""
        sandbox.facts["pause_polls"] = self._transition(sandbox, "pause", PAUSED)

    def resume(self, sandbox: Sandbox) -> None:
        """``POST /instance/{id}/resume``, then status reads until ``ready``."""
        polls = self._transition(sandbox, "resume", READY)
        sandbox.facts.update(resume_kind="morph POST /instance/{id}/resume", resume_polls=polls)

    def _transition(self, sandbox: Sandbox, verb: str, wanted: str) -> int:
        """POST the verb, then read the status until ``wanted``; how many reads it took."""
        deadline = time.perf_counter() + self.settings.http_timeout_s * 4
        with self.guard(verb):
            self.api("POST", f"/instance/{sandbox.id}/{verb}", deadline=deadline)
            polled = poll_until(lambda: self._status_is(sandbox.id, wanted, deadline),
                                timeout=round(max(deadline - time.perf_counter(), 0.0), 3),
                                what=f"morph {verb}: instance {sandbox.id}")
        return polled.polls

    def _status_is(self, instance_id: str, wanted: str, deadline: float) -> bool | None:
        status = self.api("GET", f"/instance/{instance_id}", deadline=deadline).get("status")
        if status == ERROR:
            raise ProviderError("provider_error", f"morph: instance {instance_id} reported status 'error'")
        return True if status == wanted else None

    def destroy(self, sandbox: Sandbox) -> None:
        with self.guard("destroy"):
            self.stop_instance(sandbox.id)

    def stop_instance(self, instance_id: str, missing_ok: bool = False) -> int:
        """``DELETE /instance/{id}``, then status reads until the API answers 404 (within
        ``destroy_wait_s``); returns the reads it took. Already gone is an error unless ``missing_ok``."""
        deadline = time.perf_counter() + self.settings.destroy_wait_s
        try:
            self.api("DELETE", f"/instance/{instance_id}", deadline=deadline)
        except ApiError as exc:
            if missing_ok and exc.status_code == 404:
                return 0
            raise
        return poll_until(lambda: self._gone(instance_id, deadline), timeout=self.settings.destroy_wait_s,
                          what=f"morph destroy: instance {instance_id} still listed").polls

    def _gone(self, instance_id: str, deadline: float) -> bool | None:
        try:
            self.api("GET", f"/instance/{instance_id}", deadline=deadline)
        except ApiError as exc:
            if exc.status_code == 404:
                return True
            raise
        return None

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Every instance whose metadata matches, whatever its state, page by page."""
        found: list[str] = []
        with self.guard("list"):
            for page in range(1, MAX_PAGES + 1):
                answer = self.client().instances.list_paginated(page=page, limit=PAGE_LIMIT, metadata=dict(labels))
                found += [i.id for i in answer.instances if i.id not in found]
                if not answer.instances or not answer.has_next:
                    break
        return found

    def delete_by_id(self, sandbox_id: str) -> None:
        with self.guard("delete"):
            self.stop_instance(sandbox_id, missing_ok=True)

    def close(self) -> None:
        if self._client is not None:
            sdk.close(self._client)
            self._client = None

    # --- description ----------------------------------------------------------------------------
    def endpoint(self) -> str | None:
        parts = urlsplit(os.environ.get("MORPH_BASE_URL") or resolve_settings().base_url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def ping(self, timeout: float) -> bool:
        with self.guard("ping"):
            self.api("GET", "/instance/list", timeout=timeout, params={"page": 1, "limit": 1})
        return True

    def facts(self) -> dict[str, Any]:
        s = self.settings
        return {"sdk": "morphcloud", "sdk_version": version("morphcloud"),
                "api_host": urlsplit(self.endpoint() or "").netloc,
                "region": None,  # Morph offers no region choice
                "snapshot": self.snapshot_id, "warm_snapshot": self.warm_snapshot_id, "mode": self.mode,
                "transport_shards": os.environ.get("MORPH_HTTP_TRANSPORT_SHARDS"),
                "timing": {
                    "create": "POST /instance through the SDK's HTTP client, then GET /instance/{id} until "
                              "status 'ready' (the farm's poll; the SDK's 1 s readiness sleeps are not used)",
                    "resolution_ms": DEFAULT_MAX_S * 1000,
                    "warm_signal": "the instance's refs.snapshot_id: the warm snapshot -> 'snapshot', the base "
                                   "snapshot -> cold, anything else -> unknown",
                    "hidden_retries": "none: the SDK's exec resend is off, httpx does not retry, no SDK wait "
                                      "runs inside a timed call",
                    "destroy": "DELETE /instance/{id}, then GET until 404, same resolution",
                    "pause_resume": "POST /instance/{id}/pause, then GET until status 'paused'; POST "
                                    "/instance/{id}/resume, then GET until 'ready'; same resolution (the SDK's "
                                    "Instance.pause/resume waits are 1 s-granular and not used)",
                    "leak_bound": f"every instance carries ttl_seconds={s.ttl_seconds}, ttl_action={s.ttl_action}; "
                                  "farm sweep reads /instance/list by metadata, every page"}}

    def assumptions(self) -> list[Assumption]:
        return list(ASSUMPTIONS)

    # --- failures -------------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> Failure:
        """One ApiError class carries the status (and, raised by our hook, the headers); the SDK's
        exec timeout is builtin TimeoutError; httpx's own errors are timeouts or network."""
        if isinstance(exc, ApiError):
            generic = default_failure(exc)
            detail = exc.detail or " ".join(str(exc.response_body).split())
            return Failure(generic.error_class, f"HTTP {exc.status_code}: {detail}", exc.status_code,
                           generic.retry_after)
        if isinstance(exc, httpx.TimeoutException):
            return Failure("timeout", f"{type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TransportError):
            return Failure("network", f"{type(exc).__name__}: {exc}")
        return default_failure(exc)
