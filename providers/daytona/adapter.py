"""Daytona on its own SDK (``daytona``): cold create or warm-pool claim, per-exec env, destroy-and-wait.

Settings (``providers.daytona``, all optional; providers/README.md explains each): mode (cold |
warm_pool), snapshot, target, pool_size, pool_fill_timeout_s, claim_min_age_s, auto_stop_minutes,
destroy_timeout_s. Credentials: DAYTONA_API_KEY. Endpoint: DAYTONA_API_URL (else the SDK default).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from datetime import datetime
from importlib.metadata import version
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import urllib3
from celery.exceptions import SoftTimeLimitExceeded
from daytona import (CodeRunParams, CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig,
                     DaytonaError, ListSandboxesQuery, SandboxState)
from daytona.common.errors import DaytonaConnectionError, DaytonaTimeoutError
from daytona.internal.urllib3_retry import RemoteDisconnectedRetry

from providers.base import (FARM_MARKER, Provider, ProviderError, RunResult, Sandbox, SandboxSpec, cap_output,
                            classify_status)

DEFAULT_API_URL = "https://app.daytona.io/api"
MODES = ("cold", "warm_pool")
SETTINGS = ("mode", "snapshot", "target", "pool_size", "pool_fill_timeout_s", "claim_min_age_s",
            "auto_stop_minutes", "destroy_timeout_s")


class DaytonaProvider(Provider):
    name = "daytona"
    extra = "daytona"
    credentials = ("DAYTONA_API_KEY",)
    capabilities = frozenset({"network"})

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        get = self.settings.get
        unknown = sorted(set(self.settings) - set(SETTINGS))
        self.mode, self.snapshot = str(get("mode", "cold")), get("snapshot")
        problem = (f"unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS)}" if unknown else
                   f"mode must be one of {', '.join(MODES)}, not {self.mode!r}" if self.mode not in MODES else
                   "snapshot is required with mode warm_pool (a pool keeps one snapshot's sandboxes)"
                   if self.mode == "warm_pool" and not self.snapshot else None)
        if problem:
            raise ProviderError("config", f"providers.daytona: {problem}")
        self.target: str | None = get("target") or os.environ.get("DAYTONA_TARGET") or None
        self.pool_size = int(get("pool_size", 0))
        self.pool_fill_timeout_s = float(get("pool_fill_timeout_s", 120))
        self.claim_min_age_s = float(get("claim_min_age_s", 5))
        self.auto_stop_minutes = int(get("auto_stop_minutes", 15))
        self.destroy_timeout_s = float(get("destroy_timeout_s", 60))
        self.api_url = os.environ.get("DAYTONA_API_URL") or DEFAULT_API_URL
        self._client: Daytona | None = None

    # --- setup ----------------------------------------------------------------------------------
    def check(self) -> None:
        """Needs DAYTONA_API_KEY; builds the client here, so its construction is never timed."""
        if not os.environ.get("DAYTONA_API_KEY"):
            raise ProviderError("auth", "DAYTONA_API_KEY is not set: create an API key in the "
                                "Daytona dashboard and export it (or put it in .env)")
        if self._client is None:
            config = DaytonaConfig(api_key=os.environ["DAYTONA_API_KEY"], api_url=self.api_url,
                                   target=self.target, use_deprecated_polling=True)
            with warnings.catch_warnings():  # polling is "deprecated"; a Socket.IO thread per worker is worse
                warnings.simplefilter("ignore", DeprecationWarning)
                client = Daytona(config)
            # urllib3 would resend idempotent calls up to 3 times, each resend timed as part of one call.
            # Its pools are built on first request, so the pool defaults set here take effect.
            client._api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
            # The toolbox keeps exactly one resend of a request the daemon dropped unanswered (a stale
            # keep-alive connection: the request was never processed); nothing else is retried.
            client._toolbox_api_client.rest_client.pool_manager.connection_pool_kw["retries"] = \
                RemoteDisconnectedRetry(total=1, connect=False, read=False, redirect=0, status=0, other=1)
            self._client = client

    def client(self) -> Daytona:
        """The SDK client: polling instead of a Socket.IO thread, SDK retries off (see check())."""
        if self._client is None:
            self.check()
        assert self._client is not None
        return self._client

    def endpoint(self) -> str | None:
        parts = urlsplit(self.api_url)  # rebuilt from parts: user:password@ never shown
        return f"{parts.scheme}://{_host(parts)}{parts.path}"

    def facts(self) -> dict[str, Any]:
        return {"sdk": "daytona", "sdk_version": version("daytona"),
                "api_host": _host(urlsplit(self.api_url)),
                "target": self.target, "snapshot": self.snapshot, "mode": self.mode,
                "destroy": "delete(wait=True): until the API reports the sandbox destroyed",
                "sdk_retries": "off; one resend of a toolbox request dropped unanswered"}

    def ping(self, timeout: float) -> bool:
        try:
            next(iter(self.client().list(ListSandboxesQuery(labels=FARM_MARKER, limit=1),
                                         request_timeout=timeout)), None)
        except Exception as exc:
            raise self._error(exc, "ping") from None
        return True

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """warm_pool mode: find the pool for our snapshot (or create it when pool_size > 0)."""
        if self.mode != "warm_pool":
            return None
        try:
            pool, created = self._find_pool(), False
            if pool is None:
                if self.pool_size <= 0:
                    raise ProviderError("config", f"daytona: no warm pool for snapshot {self.snapshot!r}"
                                        f"{f' in {self.target}' if self.target else ''}: create one, or set "
                                        "providers.daytona.pool_size to let the farm create it")
                try:
                    pool = self.client().warm_pool.create(self.snapshot, pool=self.pool_size, target=self.target)
                    created = True
                except Exception as exc:  # 409: another worker created it a moment ago
                    if getattr(exc, "status", None) != 409 or (pool := self._find_pool()) is None:
                        raise
                deadline = time.monotonic() + self.pool_fill_timeout_s
                while pool.current_size < 1 and time.monotonic() < deadline:
                    time.sleep(1)
                    pool = self._find_pool() or pool
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc, "warm pool") from None
        return {"warm_pool": pool.id, "snapshot": pool.snapshot, "target": pool.target, "pool": pool.pool,
                "ready": pool.current_size, "created_by_farm": created}

    def _find_pool(self) -> Any:
        return next((p for p in self.client().warm_pool.list() if p.snapshot == self.snapshot
                     and (not self.target or p.target == self.target)), None)

    # --- the protocol ---------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        # No env vars here: a create that sets env is never served from a warm pool. Env goes per exec.
        params = CreateSandboxFromSnapshotParams(language="python", snapshot=self.snapshot,
                                                 labels=dict(spec.labels), target=self.target)
        if self.mode == "cold":  # stopped when idle, deleted once stopped: a leak cannot outlive this
            params.auto_stop_interval, params.auto_delete_interval = self.auto_stop_minutes, 0
        asked_at = time.time()  # wall clock on purpose: compared with the record's createdAt
        try:
            sbx = self.client().create(params, timeout=spec.timeout_s)
        except DaytonaTimeoutError as exc:
            note = self._cleanup(exc.sandbox_id) if exc.sandbox_id else ""
            raise self._error(exc, "create", note=note) from None
        except Exception as exc:
            raise self._error(exc, "create") from None
        # A claim is a sandbox that was already running when we asked: the record says so either by
        # its warmPoolId or by a creation time before our request (the API clears warmPoolId on claim).
        age = asked_at - _epoch(sbx.created_at) if sbx.created_at else 0.0
        claimed = bool(sbx.warm_pool_id) or age > self.claim_min_age_s
        return Sandbox(id=sbx.id, handle=sbx, warm="pool" if claimed else None,
                       info={"target": sbx.target, "snapshot": sbx.snapshot, "age_s": round(age, 3)})

    def _cleanup(self, sandbox_id: str) -> str:
        """A create that timed out may have left a sandbox starting: delete it without waiting."""
        try:
            self.client().get(sandbox_id).delete(timeout=self.destroy_timeout_s)
            return f" (sandbox {sandbox_id} created before the timeout was deleted)"
        except Exception:
            return f" (sandbox {sandbox_id} created before the timeout may be left: run `farm sweep`)"

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        try:
            resp = sandbox.handle.process.code_run(code, params=CodeRunParams(env=dict(env) or None),
                                                   timeout=max(1, math.ceil(timeout)))
        except Exception as exc:
            raise self._error(exc, "run") from None
        if resp.exit_code is None:
            raise ProviderError("provider_error", "daytona run: the toolbox answered without an exit code")
        # The toolbox returns stdout and stderr as one stream.
        return RunResult(exit_code=int(resp.exit_code), stdout=cap_output(resp.result or ""),
                         merged_output=True)

    def destroy(self, sandbox: Sandbox) -> None:
        try:
            sandbox.handle.delete(timeout=self.destroy_timeout_s, wait=True)
        except Exception as exc:
            raise self._error(exc, "destroy") from None

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        try:
            return [s.id for s in self.client().list(ListSandboxesQuery(labels=dict(labels)))
                    if s.state != SandboxState.DESTROYED]
        except Exception as exc:
            raise self._error(exc, "list") from None

    def delete_by_id(self, sandbox_id: str) -> None:
        try:
            self.client().get(sandbox_id).delete(timeout=self.destroy_timeout_s, wait=True)
        except Exception as exc:
            error = self._error(exc, "delete")
            if error.error_class != "not_found":  # already gone is what we wanted
                raise error from None

    def close(self) -> None:
        self._client = None  # the sync client has no close(); its pools go with the last reference

    # --- errors ---------------------------------------------------------------------------------
    def _error(self, exc: BaseException, what: str, note: str = "") -> ProviderError:
        """Classify by status code where there is one (the SDK's exception types disagree)."""
        soft = next((e for e in _chain(exc) if isinstance(e, SoftTimeLimitExceeded)), None)
        if soft is not None:  # the worker's soft time limit, which the SDK wraps: measure() records it
            raise soft
        status = getattr(exc, "status_code", None) or getattr(exc, "status", None) or None
        error_class = classify_status(status) if status else _transport_class(exc)
        headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
        retry_after = _seconds(headers.get("retry-after")) if error_class == "rate_limited" else None
        detail = _detail(exc).replace(os.environ.get("DAYTONA_API_KEY") or "\0", "***")
        prefix = f"HTTP {status}: " if status else ""
        return ProviderError(error_class, f"daytona {what}: {prefix}{detail}{note}", status=status,
                             retry_after=retry_after)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)
                 if isinstance(getattr(e, "reason", None), BaseException) else None]


def _transport_class(exc: BaseException) -> str:
    for e in _chain(exc):
        # NewConnectionError subclasses urllib3's ConnectTimeoutError, so it is checked first.
        if isinstance(e, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return "network"
        if isinstance(e, (DaytonaTimeoutError, urllib3.exceptions.TimeoutError, TimeoutError)):
            return "timeout"
        if isinstance(e, (DaytonaConnectionError, urllib3.exceptions.ProtocolError,
                          urllib3.exceptions.MaxRetryError, ConnectionError)):
            return "network"
    return "provider_error"


def _detail(exc: BaseException) -> str:
    """One short line: the API's own message where it sent one, else the exception's first line."""
    text = exc.message if isinstance(exc, DaytonaError) else \
        getattr(getattr(exc, "data", None), "message", None)
    if not text and getattr(exc, "body", None):  # the generated clients' ApiException: a JSON body
        try:
            text = json.loads(exc.body).get("message")  # type: ignore[attr-defined]
        except (TypeError, ValueError, AttributeError):
            text = str(exc.body)  # type: ignore[attr-defined]
    return (str(text or f"{type(exc).__name__}: {exc}").strip().splitlines() or [""])[0][:240]


def _seconds(value: Any) -> float | None:
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):  # absent, or an HTTP-date: the farm's own backoff decides
        return None


def _host(parts: Any) -> str:
    return f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
