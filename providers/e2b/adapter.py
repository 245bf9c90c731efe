"""e2b on its real SDK (``e2b-code-interpreter``): create, run_code, kill, list by metadata.

Settings (``providers.e2b`` in config.yml), all optional:

    template: code-interpreter-v1   # template for cold creates
    warm: snapshot | template       # null = cold; warm creates are flagged on the sample
    snapshot: <snapshot id>         # warm: snapshot; made beforehand (providers/README.md)
    warm_template: <name or id>     # warm: template; a custom template you built with deps baked in
    sandbox_timeout: 300            # the sandbox's own lifetime (s): a leaked sandbox dies by itself
    request_timeout: 30             # connect/request bound (s) for calls that are not the snippet
    api_url: null                   # else E2B_API_URL, else the SDK's default
    domain: null                    # else E2B_DOMAIN

The key comes from ``E2B_API_KEY`` only; it never appears in settings, facts or error text.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from typing import Any, Mapping

# Connection failures are otherwise retried 3 times with backoff inside the SDK's transport,
# which would time a refused connection as one slow call. Read once when e2b is imported.
os.environ.setdefault("E2B_CONNECTION_RETRIES", "0")

import e2b.api as e2b_api  # noqa: E402
import httpx  # noqa: E402
from e2b import (AuthenticationException, ConnectionConfig, NotFoundException,  # noqa: E402
                 RateLimitException, SandboxQuery, TimeoutException)
from e2b_code_interpreter import Sandbox as E2BSandbox  # noqa: E402

from farm.redact import redact  # noqa: E402
from providers.base import (Provider, ProviderError, RunResult, Sandbox, SandboxSpec, sdk_call,  # noqa: E402
                            cap_output, classify_status)

DEFAULT_TEMPLATE = "code-interpreter-v1"
KNOWN_SETTINGS = {"template", "warm", "snapshot", "warm_template", "sandbox_timeout", "request_timeout",
                  "api_url", "domain"}
WARM_MODES = (None, "snapshot", "template")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def exit_code_of(error: Any) -> int:
    """An honest exit code for run_code, which has none: what ``python -c`` would have returned.

    No error -> 0. An uncaught exception -> 1. ``SystemExit`` (the kernel reports it as an error)
    -> its code: none/None -> 0, an integer -> that integer, a message -> 1, as CPython does.
    """
    if error is None:
        return 0
    if error.name != "SystemExit":
        return 1
    value = (error.value or "").strip()
    if value in ("", "None"):
        return 0
    try:
        return int(value)
    except ValueError:
        return 1


def _number(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ProviderError("config", f"e2b: providers.e2b.{key} must be a positive number of seconds, "
                            f"not {value!r}")
    return float(value)


class E2BProvider(Provider):
    name = "e2b"
    extra = "e2b"
    credentials = ("E2B_API_KEY",)
    capabilities = frozenset({"network"})  # e2b sandboxes reach the internet unless told otherwise

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.mode: str | None = self.settings.get("warm")
        self.template = str(self.settings.get("template") or DEFAULT_TEMPLATE)
        self.ttl = int(_number(self.settings, "sandbox_timeout", 300))
        self.request_timeout = _number(self.settings, "request_timeout", 30)

    # --- setup ------------------------------------------------------------------------------------
    def _opts(self, **extra: Any) -> dict[str, Any]:
        """Per-call SDK options: control-plane retries off, so one call is timed as one call."""
        opts: dict[str, Any] = {"retries": 0, "request_timeout": self.request_timeout, **extra}
        for key in ("api_url", "domain"):
            if self.settings.get(key):
                opts[key] = str(self.settings[key])
        return opts

    def check(self) -> None:
        unknown = set(self.settings) - KNOWN_SETTINGS
        if unknown:
            raise ProviderError("config", f"e2b: unknown setting(s) {', '.join(sorted(unknown))} in "
                                f"providers.e2b; known: {', '.join(sorted(KNOWN_SETTINGS))}")
        if self.mode not in WARM_MODES:
            raise ProviderError("config", f"e2b: providers.e2b.warm must be snapshot, template or null, "
                                f"not {self.mode!r}")
        # Made beforehand, not by the worker: warm() runs in one process per run and close() is
        # not reached in pool processes, so a snapshot made here would be missing or leak.
        if self.mode == "snapshot" and not self.settings.get("snapshot"):
            raise ProviderError("config", "e2b: warm: snapshot needs providers.e2b.snapshot, the id of a "
                                "snapshot you made (see providers/README.md)")
        if self.mode == "template" and not self.settings.get("warm_template"):
            raise ProviderError("config", "e2b: warm: template needs providers.e2b.warm_template "
                                "(the name of a template you built with `e2b template build`)")
        if not os.environ.get("E2B_API_KEY"):
            raise ProviderError("auth", "e2b: E2B_API_KEY is not set: create a key in the e2b dashboard "
                                "and export it (or put it in .env)")

    def facts(self) -> dict[str, Any]:
        return {
            "sdk": f"e2b-code-interpreter {metadata.version('e2b-code-interpreter')}",
            "core_sdk": f"e2b {metadata.version('e2b')}",
            "template": self._template(), "warm_mode": self.mode,  # app.py files warm() under "warm"
            "region": None,  # e2b has no region parameter: placement is e2b's choice
            "api_url": self.endpoint(),
            "sandbox_timeout_s": self.ttl,
            "sdk_retries": {"control_plane": 0, "connection": e2b_api.connection_retries},
        }

    def endpoint(self) -> str:
        return str(ConnectionConfig(api_url=self.settings.get("api_url"),
                                    domain=self.settings.get("domain")).api_url)

    def ping(self, timeout: float) -> bool:
        """One authenticated list call (a page of one), no retries: reachable and the key works."""
        self._call("ping", lambda: E2BSandbox.list(limit=1, **self._opts(request_timeout=timeout)).next_items())
        return True

    def _template(self) -> str:
        """What creates start from: a snapshot id or a template name (both are templates to e2b)."""
        if self.mode in ("snapshot", "template"):
            key = "snapshot" if self.mode == "snapshot" else "warm_template"
            return str(self.settings.get(key) or "(not set)")
        return self.template

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Name the warm source for the manifest; e2b keeps snapshots and templates ready itself."""
        return {self.mode: self._template()} if self.mode else None

    # --- the protocol -----------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        template = self._template()
        # env vars go per run_code call, never at create: a warm start must not depend on them
        sbx = self._call("create", lambda: E2BSandbox.create(
            template=template, timeout=self.ttl, metadata=dict(spec.labels),
            **self._opts(request_timeout=spec.timeout_s)))
        return Sandbox(id=sbx.sandbox_id, handle=sbx, warm=self.mode, info={"template": template})

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        execution = self._call("run", lambda: sandbox.handle.run_code(
            code, envs=dict(env) or None, timeout=timeout, request_timeout=self.request_timeout))
        error = execution.error
        stderr = "".join(execution.logs.stderr)
        if error is not None and exit_code_of(error) != 0:
            # the kernel reports the exception apart from stderr; keep it where a reader looks
            stderr += _ANSI.sub("", error.traceback or "").rstrip() or f"{error.name}: {error.value}"
        return RunResult(exit_code=exit_code_of(error), stdout=cap_output("".join(execution.logs.stdout)),
                         stderr=cap_output(stderr))

    def destroy(self, sandbox: Sandbox) -> None:
        # kill() answers False when the sandbox was already gone (404): gone is what destroy wants
        self._call("destroy", lambda: sandbox.handle.kill(**self._opts()))

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        pages = self._call("list", lambda: E2BSandbox.list(query=SandboxQuery(metadata=dict(labels)),
                                                           **self._opts()))
        ids: list[str] = []
        while pages.has_next:
            ids += [s.sandbox_id for s in self._call("list", pages.next_items)]
        return ids

    def delete_by_id(self, sandbox_id: str) -> None:
        self._call("destroy", lambda: E2BSandbox.kill(sandbox_id, **self._opts()))

    # --- errors -----------------------------------------------------------------------------------
    def _call(self, what: str, fn: Any) -> Any:
        return sdk_call(what, fn, classify)


def classify(what: str, exc: Exception) -> ProviderError:
    """Map an e2b SDK exception to the farm's error classes; status codes decide where present."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, AuthenticationException):
        cls, status = "auth", 401
    elif isinstance(exc, RateLimitException):
        cls = "rate_limited"
    elif isinstance(exc, (TimeoutException, httpx.TimeoutException)):
        cls = "timeout"  # includes e2b's 502 "sandbox timed out" and an execution past its limit
    elif isinstance(exc, NotFoundException):
        cls = "not_found"
    elif isinstance(exc, (httpx.TransportError, ConnectionError)):
        cls = "network"
    else:
        cls = classify_status(status) if isinstance(status, int) else "provider_error"
    text = redact(" ".join(str(exc).split()))
    key = os.environ.get("E2B_API_KEY")
    if key:  # also when it is too short for redact() to treat as a secret
        text = text.replace(key, "***")
    return ProviderError(cls, f"e2b {what}: {type(exc).__name__}: {text}"[:300], status=status)
