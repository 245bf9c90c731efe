"""Daytona through the SDK's generated clients: create without the SDK's wait, readiness polled by
the farm, warm-pool claims proven from the create answer, per-exec env, destroy until gone.

Settings: providers/daytona/__init__.py (providers/README.md explains each). Credentials:
DAYTONA_API_KEY. Endpoint: DAYTONA_API_URL (else the SDK default). Why the generated clients and
not ``daytona.Daytona``: providers/daytona/wire.py.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

import daytona_api_client as api
import httpx
from daytona import CodeRunParams

from providers.base import (FARM_MARKER, Assumption, Failure, Provider, ProviderError, RunResult, Sandbox,
                            SandboxSpec, cap_output, default_failure)
from providers.daytona import SPEC
from providers.daytona import live
from providers.daytona.wire import (BOOTING, GONE, api_message, claim_signal, control_client, header,
                                    sdk_sandbox, state_of, toolbox_client, transport_class)
from providers.errors import harness_exception, retry_after_seconds, status_of
from providers.polling import DEFAULT_MAX_S, Polled, poll_until

DEFAULT_API_URL = "https://app.daytona.io/api"
LIST_PAGE = 200  # the API's largest page
ABORT_CLEANUP_S = 5.0  # a soft time limit leaves the task seconds before the hard one: one short delete


class DaytonaProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.target: str | None = self.settings.target or os.environ.get("DAYTONA_TARGET") or None
        self.api_url = os.environ.get("DAYTONA_API_URL") or DEFAULT_API_URL
        self._sandboxes: api.SandboxApi | None = None

    # --- setup (untimed) ------------------------------------------------------------------------
    def prepare(self) -> None:
        if self._sandboxes is None:
            key = os.environ["DAYTONA_API_KEY"]
            control = control_client(self.api_url, key)
            self._sandboxes, self._pools = api.SandboxApi(control), api.WarmPoolsApi(control)
            self._toolbox, self._http = toolbox_client(key), httpx.Client()

    @property
    def sandboxes(self) -> api.SandboxApi:
        if self._sandboxes is None:
            self.check()
        assert self._sandboxes is not None
        return self._sandboxes

    def endpoint(self) -> str | None:
        parts = urlsplit(self.api_url)  # rebuilt from parts: user:password@ never shown
        return f"{parts.scheme}://{_host(parts)}{parts.path}"

    def facts(self) -> dict[str, Any]:
        s = self.settings
        return {"api_host": _host(urlsplit(self.api_url)), "target": self.target, "snapshot": s.snapshot,
                "mode": s.mode, "timing": {
                    "create": "POST /sandbox (no SDK wait), then GET /sandbox/{id} until state started",
                    "resolution_ms": DEFAULT_MAX_S * 1000,
                    "warm_signal": "create answer: warmPoolId, or started with createdAt before the answer's "
                                   "Date minus the round trip (Daytona's clock); else unknown",
                    "hidden_retries": "none on the control plane (urllib3 retries off); the toolbox resends "
                                      "once a request the daemon dropped without answering (never ran)",
                    "destroy": "DELETE /sandbox/{id}, then GET until destroyed or 404",
                    "pause_resume": f"POST /sandbox/{{id}}/{s.pause_with} then GET until "
                                    f"{'paused' if s.pause_with == 'pause' else 'stopped'}; POST /sandbox/{{id}}/start "
                                    "then GET until started; same resolution",
                    "leak_bound": f"auto-stop {s.auto_stop_minutes} min idle, auto-delete "
                                  f"{s.auto_delete_minutes} min after stop, ttl {s.ttl_minutes or 'off'} min"}}

    def assumptions(self) -> list[Assumption]:
        return live.ASSUMPTIONS

    def ping(self, timeout: float) -> bool:
        with self.guard("ping"):
            self.sandboxes.list_sandboxes(labels=json.dumps(FARM_MARKER), limit=1, _request_timeout=timeout)
        return True

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """warm_pool mode: find the pool for our snapshot (or create it when pool_size > 0)."""
        if self.settings.mode != "warm_pool":
            return None
        with self.guard("warm pool"):
            pool, created = self._find_pool(), False
            if pool is None:
                pool, created = self._create_pool()
            if pool.current_size < 1:
                pool = poll_until(lambda: self._pool_with_members(pool.id), timeout=self.settings.pool_fill_timeout_s,
                                  what="daytona warm pool fill", max_s=1.0).value
        return {"warm_pool": pool.id, "snapshot": pool.snapshot, "target": pool.target, "pool": pool.pool,
                "ready": pool.current_size, "created_by_farm": created}

    def _create_pool(self) -> tuple[Any, bool]:
        s = self.settings
        if s.pool_size <= 0:
            raise ProviderError("config", f"daytona: no warm pool for snapshot {s.snapshot!r}"
                                f"{f' in {self.target}' if self.target else ''}: create one, or set "
                                "providers.daytona.pool_size to let the farm create it")
        try:
            return self._pools.create_warm_pool(api.CreateWarmPool(snapshot=s.snapshot, pool=s.pool_size,
                                                                   target=self.target)), True
        except api.ApiException as exc:  # 409: another worker created it a moment ago
            pool = self._find_pool() if exc.status == 409 else None
            if pool is None:
                raise
            return pool, False

    def _find_pool(self) -> Any:
        return next((p for p in self._pools.list_warm_pools() if p.snapshot == self.settings.snapshot
                     and (not self.target or p.target == self.target)), None)

    def _pool_with_members(self, pool_id: str) -> Any:
        return next((p for p in self._pools.list_warm_pools() if p.id == pool_id and p.current_size >= 1), None)

    # --- the protocol ---------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        deadline = time.perf_counter() + spec.timeout_s
        with self.guard("create"):
            sent = time.perf_counter()
            answer = self.sandboxes.create_sandbox_with_http_info(self.create_body(spec),
                                                                  _request_timeout=spec.timeout_s)
            round_trip = time.perf_counter() - sent
            record = answer.data
            warm = claim_signal(record, header(answer.headers, "date"), round_trip)
            try:  # an answer already started (a claim) needs no status check
                polled = Polled(record, 0, 0.0) if state_of(record) == "started" else \
                    poll_until(lambda: self._started(record.id, deadline), what="daytona create",
                               timeout=max(deadline - time.perf_counter(), 0.0))
            except BaseException as exc:  # the sandbox exists: delete it, and say so in the one error
                if harness_exception(exc) is not None:  # the sample is over (soft limit): leave nothing booting
                    self._cleanup(record.id, timeout=ABORT_CLEANUP_S)
                    raise
                error = exc if isinstance(exc, ProviderError) else self.error("create", exc)
                raise ProviderError(error.error_class, f"{error}{self._cleanup(record.id)}", status=error.status,
                                    retry_after=error.retry_after) from None
            handle = sdk_sandbox(polled.value, self._toolbox, self.sandboxes, self._http)
        return Sandbox(id=record.id, handle=handle, warm=warm,
                       info={"target": record.target, "snapshot": record.snapshot},
                       facts={"polls": polled.polls, "answered_state": state_of(record),
                              "accepted_ms": round(round_trip * 1000, 1), "created_at": record.created_at})

    def create_body(self, spec: SandboxSpec) -> api.CreateSandbox:
        """Labels, snapshot, target and the lifetime bound; no env, volumes or secrets: a create that
        sets any of them is never served from a warm pool (env goes with each code run instead)."""
        s = self.settings
        return api.CreateSandbox(snapshot=s.snapshot, target=self.target, env={},
                                 labels={**spec.labels, "code-toolbox-language": "python"},
                                 auto_stop_interval=s.auto_stop_minutes, auto_delete_interval=s.auto_delete_minutes,
                                 ttl_minutes=s.ttl_minutes or None)

    def _started(self, sandbox_id: str, deadline: float) -> Any:
        """One readiness check: the record once started, None while booting; any other state is a
        failed boot (an error, not a slow one)."""
        record = self.sandboxes.get_sandbox(sandbox_id, _request_timeout=_remaining(deadline))
        state = state_of(record)
        if state == "started":
            return record
        if state in BOOTING:
            return None
        reason = f": {record.error_reason}" if getattr(record, "error_reason", None) else ""
        raise ProviderError("provider_error", f"daytona create: sandbox {sandbox_id} went {state} while "
                            f"starting{reason}")

    def _cleanup(self, sandbox_id: str, timeout: float | None = None) -> str:
        """A create that failed after the sandbox existed: delete it without waiting, and say so."""
        try:
            self.sandboxes.delete_sandbox(sandbox_id, _request_timeout=timeout or self.settings.destroy_timeout_s)
            return f" (sandbox {sandbox_id} created before the failure was deleted)"
        except Exception:
            return f" (sandbox {sandbox_id} created before the failure may be left: run `farm sweep`)"

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        with self.guard("run"):
            resp = sandbox.handle.process.code_run(code, params=CodeRunParams(env=dict(env) or None),
                                                   timeout=max(1, math.ceil(timeout)))
        if resp.exit_code is None:
            raise ProviderError("provider_error", "daytona run: the toolbox answered without an exit code")
        # The toolbox returns stdout and stderr as one stream.
        return RunResult(exit_code=int(resp.exit_code), stdout=cap_output(resp.result or ""), merged_output=True)

    # --- pause and resume (the resume scenario) ----------------------------------------------------
    def pause_support(self) -> str | None:
        return None

    def pause(self, sandbox: Sandbox) -> None:
        """``POST /sandbox/{id}/pause`` (or ``/stop``, per ``pause_with``), then GET until paused/stopped."""
        verb = self.settings.pause_with
        settled = "paused" if verb == "pause" else "stopped"
        deadline = time.perf_counter() + self.settings.pause_timeout_s
        with self.guard("pause"):
            call = self.sandboxes.pause_sandbox if verb == "pause" else self.sandboxes.stop_sandbox
            call(sandbox.id, _request_timeout=self.settings.pause_timeout_s)
            polled = poll_until(lambda: self._state_is(sandbox.id, settled, ("pausing", "stopping"), deadline),
                                timeout=self.settings.pause_timeout_s, what=f"daytona {verb} of {sandbox.id}")
        sandbox.facts.update(pause_with=verb, pause_polls=polled.polls)

    def resume(self, sandbox: Sandbox) -> None:
        """``POST /sandbox/{id}/start``, then GET until started (the toolbox answers from then on)."""
        deadline = time.perf_counter() + self.settings.pause_timeout_s
        with self.guard("resume"):
            self.sandboxes.start_sandbox(sandbox.id, _request_timeout=self.settings.pause_timeout_s)
            polled = poll_until(lambda: self._state_is(sandbox.id, "started", ("resuming", "starting"), deadline),
                                timeout=self.settings.pause_timeout_s, what=f"daytona start of {sandbox.id}")
        sandbox.facts.update(resume_kind=f"daytona {self.settings.pause_with}/start", resume_polls=polled.polls)

    def _state_is(self, sandbox_id: str, wanted: str, passing: tuple[str, ...], deadline: float) -> bool | None:
        state = state_of(self.sandboxes.get_sandbox(sandbox_id, _request_timeout=_remaining(deadline)))
        if state == wanted:
            return True
        if state in passing or state == "started" and wanted != "started":  # not yet left "started"
            return None
        raise ProviderError("provider_error", f"daytona: sandbox {sandbox_id} went {state} (waiting for {wanted})")

    def destroy(self, sandbox: Sandbox) -> None:
        with self.guard("destroy"):
            self._delete_until_gone(sandbox.id)

    def _delete_until_gone(self, sandbox_id: str) -> None:
        """DELETE, then poll until the API says destroyed (or no longer knows the sandbox)."""
        deadline = time.perf_counter() + self.settings.destroy_timeout_s
        self.sandboxes.delete_sandbox(sandbox_id, _request_timeout=self.settings.destroy_timeout_s)
        poll_until(lambda: self._gone(sandbox_id, deadline), timeout=self.settings.destroy_timeout_s,
                   what=f"daytona destroy of {sandbox_id}")

    def _gone(self, sandbox_id: str, deadline: float) -> bool | None:
        try:
            record = self.sandboxes.get_sandbox(sandbox_id, _request_timeout=_remaining(deadline))
        except api.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        state = state_of(record)
        if state == "error":
            raise ProviderError("provider_error", f"daytona destroy: sandbox {sandbox_id} went error while "
                                f"deleting: {record.error_reason or 'no reason given'}")
        return True if state == GONE else None

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Every page; sandboxes whose delete failed into ``error`` included (the SDK's list omits them)."""
        found, cursor = [], None
        with self.guard("list"):
            while True:
                page = self.sandboxes.list_sandboxes(labels=json.dumps(dict(labels)), cursor=cursor, limit=LIST_PAGE,
                                                     include_errored_deleted=True)
                found += [s.id for s in page.items if state_of(s) != GONE]
                cursor = page.next_cursor
                if not cursor:
                    return found

    def delete_by_id(self, sandbox_id: str) -> None:
        try:
            with self.guard("delete"):
                self._delete_until_gone(sandbox_id)
        except ProviderError as exc:
            if exc.error_class != "not_found":  # already gone is what we wanted
                raise

    def close(self) -> None:
        if self._sandboxes is not None:
            self._http.close()
            self._sandboxes = None

    # --- failures -------------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> Failure:
        """By HTTP status wherever there is one: the generated clients' ApiException (control plane,
        toolbox, pools) keeps status and headers, so Retry-After (seconds or a date) is read here."""
        status = status_of(exc)
        if status is not None:
            failure = default_failure(exc)
            message = api_message(exc) or getattr(exc, "message", None) or failure.detail
            return Failure(failure.error_class, f"HTTP {status}: {message}", status,
                           retry_after_seconds(header(getattr(exc, "headers", None), "retry-after")))
        error_class = transport_class(exc)
        if error_class is not None:
            return Failure(error_class, f"{type(exc).__name__}: {exc}")
        return default_failure(exc)


def _remaining(deadline: float) -> float:
    """A request timeout that never outlives the phase's deadline (the client rejects 0)."""
    return max(deadline - time.perf_counter(), 0.05)


def _host(parts: Any) -> str:
    return f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"
