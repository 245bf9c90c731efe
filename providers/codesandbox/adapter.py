"""CodeSandbox, through node-csb/: the SDK is JavaScript-only, so a small Node service wraps it.

The provider speaks JSON over HTTP to node-csb (a pooled httpx client with per-call timeouts); the
service holds the CodeSandbox API key (CSB_API_KEY, which this process never reads) and both sides
share CSB_SERVICE_TOKEN. What is specific here: node-csb's answers (its error body, the Retry-After
it passes through from CodeSandbox's rate-limit reset headers), the provider's own boot signal
(``bootupType``) and the SDK's internal attempts that node-csb counts. The service process itself
is managed by ``providers/codesandbox/service.py``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from providers.base import (ERROR_CLASSES, WARM_UNKNOWN, Assumption, Provider, ProviderError, RunResult,
                            Sandbox, SandboxSpec, cap_output)
from providers.codesandbox import SPEC
from providers.codesandbox.assumptions import ASSUMPTIONS
from providers.errors import Failure, classify_status, default_failure, header, retry_after_seconds

CLIENT_CONNECTIONS = 16  # per worker process; a prefork process runs one sample at a time
DEFAULT_URL = "http://127.0.0.1:8787"
START_HINT = ("start it with: node node-csb/server.js (CSB_API_KEY and CSB_SERVICE_TOKEN in its "
              "environment), or point providers.codesandbox.service_url at it")
# bootupType is CodeSandbox's own word for how a VM came up: CLEAN is a cold boot; the others say
# what was reused (a hibernation snapshot, the template's snapshot, a VM already running).
WARM_OF_BOOTUP = {"CLEAN": None, "RESUME": "resume", "FORK": "fork", "RUNNING": "running"}
DELETE_POLL_MS = 25  # node-csb polls the API until the sandbox is gone, at most this far apart


class ServiceAnswer(Exception):
    """node-csb answered with an HTTP error status (its JSON error body, or not node-csb at all)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str], what: str, url: str) -> None:
        err = body.get("error") if isinstance(body, dict) else None
        self.error = err if isinstance(err, dict) and isinstance(err.get("message"), str) else None
        super().__init__(self.error["message"] if self.error else
                         f"{url} answered {what} with HTTP {status} and no node-csb error: is service_url "
                         "pointing at node-csb?")
        self.status, self.headers = status, headers


class CodeSandboxProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.url = str(self.settings.service_url or os.environ.get("CSB_SERVICE_URL") or DEFAULT_URL).rstrip("/")
        self._client: httpx.Client | None = None
        self._client_pid = 0
        self._health: dict[str, Any] = {}

    # --- HTTP ---------------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        # One pooled client per process: a client inherited across fork must not share its sockets.
        if self._client is None or self._client_pid != os.getpid():
            token = os.environ.get("CSB_SERVICE_TOKEN", "")
            self._client = httpx.Client(
                base_url=self.url, headers={"Authorization": f"Bearer {token}"} if token else {},
                timeout=httpx.Timeout(30.0, connect=self.settings.connect_timeout_s), trust_env=False,
                limits=httpx.Limits(max_connections=CLIENT_CONNECTIONS, max_keepalive_connections=8, keepalive_expiry=30))
            self._client_pid = os.getpid()
        return self._client

    def _call(self, method: str, path: str, what: str, read_s: float, *, body: Any = None,
              params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One request to node-csb; every failure leaves through the base guard as a ProviderError."""
        with self.guard(what):
            resp = self._http().request(method, path, json=body, params=params,
                                        timeout=httpx.Timeout(read_s, connect=self.settings.connect_timeout_s))
            try:
                data = resp.json()
            except ValueError:
                data = None
            if resp.status_code >= 400 or not isinstance(data, dict):
                raise ServiceAnswer(resp.status_code, data, resp.headers, what, self.url)
            return data

    def classify(self, exc: BaseException) -> Failure:
        if isinstance(exc, ServiceAnswer):
            retry = retry_after_seconds(header(exc.headers, "retry-after"))
            if retry is None and exc.error is not None:  # node-csb also puts it in its error body
                retry = retry_after_seconds(exc.error.get("retry_after_s"))
            if exc.error is None:
                cls = "provider_error" if exc.status >= 500 else "config"
                return Failure(cls, str(exc), exc.status)
            cls = exc.error.get("class")
            return Failure(cls if cls in ERROR_CLASSES else classify_status(exc.status), str(exc), exc.status, retry)
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return Failure("network", f"node-csb is not reachable at {self.url} ({type(exc).__name__}): {START_HINT}")
        if isinstance(exc, httpx.TimeoutException):
            return Failure("timeout", f"node-csb gave no answer in time ({type(exc).__name__})")
        if isinstance(exc, httpx.HTTPError):
            return Failure("network", f"node-csb at {self.url} failed ({type(exc).__name__})")
        return default_failure(exc)

    # --- setup (untimed) ----------------------------------------------------------------------
    def prepare(self) -> None:
        try:
            health = self._call("GET", "/health", "health check", 10.0)
        except ProviderError as exc:
            if exc.error_class in ("network", "timeout"):
                raise ProviderError("config", f"codesandbox: node-csb is not running at {self.url}: "
                                              f"{START_HINT}") from None
            raise
        if health.get("service") != "node-csb":
            raise ProviderError("config", f"codesandbox: {self.url} is not node-csb: fix "
                                          "providers.codesandbox.service_url")
        self._health = health
        if not health.get("key_set"):
            raise ProviderError("auth", "codesandbox: CSB_API_KEY is not set in node-csb's environment: set it "
                                        "there and restart node-csb (the farm itself never reads it)")
        self._call("GET", "/key-check", "key check", 30.0)

    def endpoint(self) -> str | None:
        return self.url

    def ping(self, timeout: float) -> bool:
        return self._call("GET", "/health", "health check", timeout).get("service") == "node-csb"

    def facts(self) -> dict[str, Any]:
        health = self._health or self._call("GET", "/health", "health check", 10.0)
        sdk = health.get("sdk") or {}
        s = self.settings
        return {"service_url": self.url, "service": f"node-csb {health.get('version', '?')}",
                "client_pool": {"per_process": CLIENT_CONNECTIONS, "shared": None,
                                "what": f"an httpx pool of {CLIENT_CONNECTIONS} per worker process to node-csb, one "
                                        "Node process per host serving them all (its own limits not declared)"},
                "sdk": f"{sdk.get('name', '?')} {sdk.get('version', '?')}", "sdk_double": bool(sdk.get("double")),
                "node": health.get("node"), "template": s.template or "SDK default", "vm_tier": s.vm_tier,
                "destroy": s.destroy, "output": "stdout and stderr merged by the SDK",
                "timing": {
                    "create": "node-csb POST /sandboxes: fork (SDK sandboxes.create: fork + startVm, which the API "
                              "answers once the VM is up) then sandbox.connect() (agent websocket joined and setup "
                              "progress read): usable = connected, first command possible; no sleep or poll in "
                              "node-csb",
                    "resolution_ms": 0, "resolution": "event: the API's start answer and the agent's join reply, "
                                                      "no polling interval",
                    "warm_signal": "bootupType from the start answer: CLEAN = cold, RESUME/FORK/RUNNING = that kind",
                    "hidden_retries": "the SDK retries startVm 3x (200 ms apart, any error) and connect 3x (100 ms "
                                      "apart) and offers no switch: node-csb counts the attempts on the wire into "
                                      "sample facts sdk_attempts",
                    "service_timings": "node-csb's own per-step timings_ms go into sample facts (diagnostic)",
                    "destroy": f"delete, then poll the API until the sandbox is gone (404), <= {DELETE_POLL_MS} ms "
                               "apart (shutdown/hibernate: until the API accepts)",
                    "pause_resume": "node-csb POST /sandboxes/{id}/hibernate (answered when the API accepted it: no "
                                    "paused state exists to poll) and POST /sandboxes/{id}/resume (sandboxes.resume, "
                                    "answered once the VM is up, then connect); bootupType RESUME, or CLEAN when the "
                                    "snapshot expired (then the marker check decides)",
                    "leak_bound": f"hibernation_timeout_s={s.hibernation_timeout_s:g} s of inactivity (CodeSandbox "
                                  "hibernates the VM); `farm sweep` deletes the record",
                }}

    def assumptions(self) -> list[Assumption]:
        return list(ASSUMPTIONS)

    # --- protocol -----------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        s = self.settings
        body = {"labels": dict(spec.labels), "template": s.template, "vm_tier": s.vm_tier, "privacy": s.privacy,
                "hibernation_timeout_s": s.hibernation_timeout_s, "timeout_s": spec.timeout_s}
        data = self._call("POST", "/sandboxes", "create", spec.timeout_s + 15,
                          body={k: v for k, v in body.items() if v is not None})
        return sandbox_from(data)

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        body: dict[str, Any] = {"code": code, "env": dict(env), "timeout_s": timeout}
        if self.settings.python:
            body["python"] = self.settings.python
        data = self._call("POST", f"/sandboxes/{quote(sandbox.id, safe='')}/run", "run", timeout + 15, body=body)
        exit_code = data.get("exit_code")
        return RunResult(exit_code=exit_code if isinstance(exit_code, int) else None,
                         stdout=cap_output(str(data.get("output") or "")), merged_output=True)

    # --- pause and resume (the resume scenario) ----------------------------------------------------
    def pause_support(self) -> str | None:
        return None

    def pause(self, sandbox: Sandbox) -> None:
        """node-csb hibernate: the SDK's ``sandboxes.hibernate``, answered once the API accepted it
        (CodeSandbox reports no paused state to wait for: the stated limit of this phase)."""
        data = self._call("POST", f"/sandboxes/{quote(sandbox.id, safe='')}/hibernate", "pause", 75.0, body={})
        sandbox.facts["pause_service_ms"] = data.get("timings_ms")

    def resume(self, sandbox: Sandbox) -> None:
        """node-csb resume: ``sandboxes.resume`` (the API answers its start once the VM is up) and
        ``connect()``; ``bootup_type`` says RESUME, or CLEAN when the hibernation snapshot was gone."""
        timeout = float(self.settings.resume_timeout_s)
        data = self._call("POST", f"/sandboxes/{quote(sandbox.id, safe='')}/resume", "resume", timeout + 15,
                          body={"timeout_s": timeout})
        bootup = data.get("bootup_type")
        sandbox.facts.update(resume_kind=f"codesandbox hibernate/resume, bootupType {bootup}", resume_bootup_type=bootup,
                             resume_service_ms=data.get("timings_ms"), resume_sdk_attempts=data.get("sdk_attempts"))

    def destroy(self, sandbox: Sandbox) -> None:
        data = self._call("DELETE", f"/sandboxes/{quote(sandbox.id, safe='')}", "destroy", 75.0,
                          params={"mode": self.settings.destroy})
        if isinstance(data.get("polls"), int):
            sandbox.facts["destroy_polls"] = data["polls"]

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        data = self._call("POST", "/sandboxes/list", "list", 120.0, body={"labels": dict(labels)})
        return [str(s["id"]) for s in data.get("sandboxes", [])]

    def list_api_raw(self, labels: Mapping[str, str]) -> list[str]:
        """What the API's own tag filter returns (no re-filtering in node-csb): for the live assumptions."""
        data = self._call("POST", "/sandboxes/list", "list", 120.0, body={"labels": dict(labels), "raw": True})
        return [str(s["id"]) for s in data.get("sandboxes", [])]

    def delete_by_id(self, sandbox_id: str) -> None:
        try:
            self._call("DELETE", f"/sandboxes/{quote(sandbox_id, safe='')}", "delete", 75.0, params={"mode": "delete"})
        except ProviderError as exc:
            if exc.error_class != "not_found":  # already gone is what sweep wanted
                raise

    def close(self) -> None:
        if self._client is not None and self._client_pid == os.getpid():
            self._client.close()
        self._client = None


def sandbox_from(data: Mapping[str, Any]) -> Sandbox:
    """The Sandbox for node-csb's create answer: warm from bootupType, the service's own facts kept."""
    bootup = data.get("bootup_type")
    warm = WARM_OF_BOOTUP.get(bootup, WARM_UNKNOWN) if isinstance(bootup, str) else WARM_UNKNOWN
    facts: dict[str, Any] = {"bootup_type": bootup}
    for key in ("sdk_attempts", "timings_ms"):
        if isinstance(data.get(key), dict):
            facts[key] = data[key]
    return Sandbox(id=str(data["id"]), warm=warm, info={"cluster": data.get("cluster")}, facts=facts)
