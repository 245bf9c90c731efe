"""Morph Cloud on its own SDK (``morphcloud``): start from a base snapshot (cold) or a warm snapshot.

Settings (``providers.morph`` in config.yml):

    snapshot_id: snapshot_abc      # required: the snapshot instances boot from (see the docs)
    mode: cold | snapshot          # snapshot: start from a snapshot of a running, warmed-up instance
    warm_snapshot_id: snapshot_x   # snapshot mode: use this one; else warm() makes (or reuses) one
    python: python3                # the interpreter inside the instance
    ttl_seconds: 3600              # instances stop themselves after this long (leak safety net)
    http_timeout_s: 30             # per API call; the SDK's own default is to wait forever
    warm_snapshot_ttl_s: 86400     # a warm snapshot the farm made expires after this long

Credentials: MORPH_API_KEY. Endpoint: MORPH_BASE_URL (default https://cloud.morph.so/api).
"""

from __future__ import annotations

import os
import re
import shlex
from importlib.metadata import version
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx
from celery.exceptions import SoftTimeLimitExceeded
from morphcloud.api import ApiError, Instance, MorphCloudClient
from morphcloud.config import resolve_settings

from providers.base import (Provider, ProviderError, RunResult, Sandbox, SandboxSpec, cap_output,
                            classify_status)

MODES = ("cold", "snapshot")
SETTINGS = ("snapshot_id", "mode", "warm_snapshot_id", "python", "ttl_seconds", "http_timeout_s",
            "warm_snapshot_ttl_s")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WARM_UP = "import json, os, sqlite3, subprocess, sys; open('.farm-warm', 'w').write('1'); print('farm-warm')"


def shell_command(python: str, code: str, env: Mapping[str, str]) -> str:
    """``env K=V ... python -c CODE`` as one shell line, every word quoted: exec has no env parameter."""
    for name in env:
        if not ENV_NAME.fullmatch(name):
            raise ProviderError("config", f"morph: {name!r} is not a valid environment variable name")
    words = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    return " ".join(shlex.quote(w) for w in [*words, python, "-c", code])


class MorphProvider(Provider):
    name = "morph"
    extra = "morph"
    credentials = ("MORPH_API_KEY",)
    capabilities = frozenset({"network"})

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        unknown = sorted(set(self.settings) - set(SETTINGS))
        self.mode = str(self.settings.get("mode", "cold"))
        problem = (f"unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS)}" if unknown else
                   f"mode must be one of {', '.join(MODES)}, not {self.mode!r}" if self.mode not in MODES
                   else None)
        if problem:
            raise ProviderError("config", f"providers.morph: {problem}")
        self.snapshot_id: str | None = self.settings.get("snapshot_id")
        self.warm_snapshot_id: str | None = self.settings.get("warm_snapshot_id")
        self.python = str(self.settings.get("python", "python3"))
        self.ttl_seconds = int(self.settings.get("ttl_seconds", 3600))
        self.http_timeout_s = float(self.settings.get("http_timeout_s", 30))
        self.warm_snapshot_ttl_s = int(self.settings.get("warm_snapshot_ttl_s", 86400))
        self._client: MorphCloudClient | None = None

    # --- setup ----------------------------------------------------------------------------------
    def check(self) -> None:
        """Needs MORPH_API_KEY; builds the client here, so its (slow) construction is never timed."""
        if not os.environ.get("MORPH_API_KEY"):
            raise ProviderError("auth", "MORPH_API_KEY is not set: create an API key at "
                                "cloud.morph.so and export it (or put it in .env)")
        if self._client is None:
            # One connection pool, not 32 round-robin shards: each call then reuses a warm connection,
            # as the other SDKs do, instead of the first 32 calls each timing a fresh TLS handshake.
            os.environ.setdefault("MORPH_HTTP_TRANSPORT_SHARDS", "1")
            client = MorphCloudClient(api_key=os.environ["MORPH_API_KEY"],
                                      base_url=os.environ.get("MORPH_BASE_URL") or None)
            client._http_client.timeout = httpx.Timeout(self.http_timeout_s)  # the SDK sets none at all
            client._exec_retries = 0  # the SDK resends a failed exec once; a resent run is not one run
            self._client = client

    def _base(self) -> str:
        if not self.snapshot_id:  # not checked in check(): `farm sweep` and `farm doctor` need no snapshot
            raise ProviderError("config", "providers.morph.snapshot_id is required: the snapshot instances "
                                "boot from (see providers/README.md)")
        return self.snapshot_id

    def client(self) -> MorphCloudClient:
        """The SDK client: every call has a timeout, exec resends are off (see check())."""
        if self._client is None:
            self.check()
        assert self._client is not None
        return self._client

    def endpoint(self) -> str | None:
        parts = urlsplit(os.environ.get("MORPH_BASE_URL") or resolve_settings().base_url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def facts(self) -> dict[str, Any]:
        return {"sdk": "morphcloud", "sdk_version": version("morphcloud"),
                "api_host": urlsplit(self.endpoint() or "").netloc,
                "region": None,  # Morph offers no region choice
                "snapshot": self.snapshot_id, "warm_snapshot": self.warm_snapshot_id, "mode": self.mode,
                "destroy": "stop(): returns when the API accepts it (the SDK cannot wait)",
                "create": "instances.start polls readiness once a second (SDK)", "sdk_retries": "off",
                "transport_shards": os.environ.get("MORPH_HTTP_TRANSPORT_SHARDS")}

    def ping(self, timeout: float) -> bool:
        client = self.client()
        client._http_client.timeout = httpx.Timeout(timeout)
        try:
            client.instances.list_paginated(page=1, limit=1)
        except Exception as exc:
            raise self._error(exc, "ping") from None
        finally:
            client._http_client.timeout = httpx.Timeout(self.http_timeout_s)
        return True

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """snapshot mode: reuse the farm's warm snapshot of ``snapshot_id``, or make one."""
        if self.mode != "snapshot":
            return None
        if self.warm_snapshot_id:
            try:
                self.client().snapshots.get(self.warm_snapshot_id)
            except Exception as exc:
                raise self._error(exc, "warm snapshot") from None
            return {"warm_snapshot": self.warm_snapshot_id, "made_by_farm": False}
        digest = f"sandbox-farm-warm-{self._base()}"
        try:
            found = [s for s in self.client().snapshots.list(digest=digest) if s.status == "ready"]
            if found:
                self.warm_snapshot_id = max(found, key=lambda s: s.created).id
                return {"warm_snapshot": self.warm_snapshot_id, "made_by_farm": True, "reused": True}
            inst = self.client().instances.start(self.snapshot_id, metadata={**spec.labels, "farm-warm": "1"},
                                                 ttl_seconds=self.ttl_seconds, timeout=spec.timeout_s)
            try:
                warmed = inst.exec(shell_command(self.python, WARM_UP, {}), timeout=spec.timeout_s)
                if warmed.exit_code != 0:  # a snapshot of a failed warm-up is no warm start
                    raise ProviderError("provider_error", f"morph warm snapshot: the warm-up exited "
                                        f"{warmed.exit_code}: {warmed.stderr.strip()[-200:]}")
                snap = inst.snapshot(digest=digest, ttl_seconds=self.warm_snapshot_ttl_s,
                                     metadata={"farm": "sandbox-farm", "farm-warm-of": self._base()})
                snap.wait_until_ready(timeout=spec.timeout_s)
            finally:
                inst.stop()
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc, "warm snapshot") from None
        self.warm_snapshot_id = snap.id
        return {"warm_snapshot": snap.id, "made_by_farm": True, "reused": False}

    # --- the protocol ---------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        start_from = self._base()
        if self.mode == "snapshot":
            if not self.warm_snapshot_id:  # never fall back to a cold start and call it warm
                raise ProviderError("config", "morph: mode snapshot but no warm snapshot in this worker: set "
                                    "providers.morph.warm_snapshot_id, or let warm() prepare one first")
            start_from = self.warm_snapshot_id
        try:
            inst = self.client().instances.start(start_from, metadata=dict(spec.labels),
                                                 ttl_seconds=self.ttl_seconds, ttl_action="stop",
                                                 timeout=spec.timeout_s)
        except Exception as exc:  # the SDK stops an instance that never became ready
            raise self._error(exc, "create") from None
        return Sandbox(id=inst.id, handle=inst, warm="snapshot" if self.mode == "snapshot" else None,
                       info={"snapshot": start_from})

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        command = shell_command(self.python, code, env)
        inst: Instance = sandbox.handle
        try:
            resp = inst.exec(command, timeout=timeout)
        except Exception as exc:
            raise self._error(exc, "run") from None
        return RunResult(exit_code=resp.exit_code, stdout=cap_output(resp.stdout),
                         stderr=cap_output(resp.stderr))

    def destroy(self, sandbox: Sandbox) -> None:
        try:
            sandbox.handle.stop()
        except Exception as exc:
            raise self._error(exc, "destroy") from None

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        try:
            return [i.id for i in self.client().instances.list(metadata=dict(labels))]
        except Exception as exc:
            raise self._error(exc, "list") from None

    def delete_by_id(self, sandbox_id: str) -> None:
        try:
            self.client().instances.stop(sandbox_id)
        except Exception as exc:
            error = self._error(exc, "delete")
            if error.error_class != "not_found":  # already gone is what we wanted
                raise error from None

    def close(self) -> None:
        if self._client is not None:
            self._client._http_client.close()
            self._client = None

    # --- errors ---------------------------------------------------------------------------------
    def _error(self, exc: BaseException, what: str) -> ProviderError:
        """One ApiError class carries the status; timeouts are builtin TimeoutError or httpx's."""
        if isinstance(exc, SoftTimeLimitExceeded):  # the worker's soft time limit: measure() records it
            raise exc
        status = None
        if isinstance(exc, ApiError):
            status = exc.status_code
            error_class = classify_status(status)
            detail = f"HTTP {status}: {exc.detail or ' '.join(str(exc.response_body).split())}"
        elif isinstance(exc, (TimeoutError, httpx.TimeoutException)):
            error_class, detail = "timeout", f"{type(exc).__name__}: {exc}"
        elif isinstance(exc, (httpx.TransportError, ConnectionError)):
            error_class, detail = "network", f"{type(exc).__name__}: {exc}"
        else:
            error_class, detail = "provider_error", f"{type(exc).__name__}: {exc}"
        detail = (detail.strip().splitlines() or [""])[0][:240]
        key = os.environ.get("MORPH_API_KEY")
        if key:
            detail = detail.replace(key, "***")
        return ProviderError(error_class, f"morph {what}: {detail}", status=status)
