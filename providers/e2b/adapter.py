"""e2b on its real SDK (``e2b-code-interpreter``): only what is specific to e2b.

- create: ``Sandbox.create`` is one ``POST /v2/sandboxes`` and nothing else (the SDK waits for
  no health check). The farm then polls the code interpreter's ``GET /health`` (port 49999, the
  server ``run_code`` talks to) every <= 25 ms until it answers: create ends when the sandbox is
  usable, within the whole ``timeouts.create`` deadline. Every create sets the sandbox's own
  lifetime (``sandbox_timeout``), so a leaked sandbox dies by itself.
- warm: what the create answer (read on the wire, ``wire.py``: the SDK drops it) names as the
  sandbox's template; a snapshot restore is "snapshot", a custom template gives no signal.
- retries: control-plane retries off (``retries=0`` on every call) and connection retries off
  (``E2B_CONNECTION_RETRIES=0``, forced before the SDK is imported: it reads it once, at import).
- errors: Retry-After and the sandbox edge's 502s come from the wire; a dead sandbox is not a timeout.
- pause/resume (the resume scenario): ``pause()`` (memory and filesystem), then the farm polls the
  sandbox's info until it says ``paused``; resume is ``Sandbox.connect(id)`` (e2b's auto-resume),
  then the code interpreter's /health polled as after create: running means it answers.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

# Read once when e2b is imported (e2b.api.connection_retries): set before the first import, and
# forced, so a refused connection is one classified call, not three with backoff inside a phase.
# If something imported e2b earlier, facts() reports the value actually in force.
os.environ["E2B_CONNECTION_RETRIES"] = "0"

import e2b.api.client_sync as e2b_transport  # noqa: E402
import httpx  # noqa: E402
from e2b import (AuthenticationException, ConnectionConfig, NotFoundException,  # noqa: E402
                 RateLimitException, SandboxNotRunningException, SandboxQuery, SandboxState,
                 SandboxUnreachableException, TimeoutException)
from e2b.envd.api import get_message, handle_envd_api_exception  # noqa: E402
from e2b.exceptions import is_sandbox_not_found_message, is_sandbox_port_not_open_message  # noqa: E402
from e2b_code_interpreter import Sandbox as E2BSandbox  # noqa: E402
from e2b_code_interpreter.constants import JUPYTER_PORT  # noqa: E402

from providers.base import (WARM_UNKNOWN, Failure, Provider, ProviderError, RunResult,  # noqa: E402
                            Sandbox, SandboxSpec, cap_output, classify_status, default_failure)
from providers.e2b import SPEC  # noqa: E402
from providers.e2b import wire  # noqa: E402
from providers.errors import first_line, retry_after_seconds  # noqa: E402
from providers.polling import Polled, poll_until  # noqa: E402

DEFAULT_TEMPLATE = "code-interpreter-v1"
RESOLUTION_S = 0.025     # the readiness poll's longest interval: the stated resolution
LIST_PAGE = 100
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

WIRE_READ = wire.install()  # False: the SDK's transport changed; Retry-After is lost (farm backoff)


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


def operation_timeout(seconds: float) -> float:
    """The timeout to hand the SDK so that one request ends after ``seconds``: its transport
    (pyqwest's httpx adapter) adds the read and write timeouts into one operation deadline, so any
    timeout the SDK sets (httpx.Timeout(t): read t, write t) would otherwise allow 2 t."""
    return seconds / 2


def connection_retries_in_force() -> int:
    """The connection retries the SDK's transports were built with (fixed at its import)."""
    return int(e2b_transport.connection_retries)


class E2BProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})  # e2b sandboxes reach the internet unless told otherwise

    # --- setup ------------------------------------------------------------------------------------
    def sdk_options(self, request_timeout: float | None = None) -> dict[str, Any]:
        """Per-call SDK options: control-plane retries off, so one call is timed as one call, and each
        request bounded by ``request_timeout`` (default: the setting) for real."""
        bound = self.settings.request_timeout if request_timeout is None else request_timeout
        opts: dict[str, Any] = {"retries": 0, "request_timeout": operation_timeout(bound)}
        for key in ("api_url", "domain"):
            if getattr(self.settings, key):
                opts[key] = str(getattr(self.settings, key))
        return opts

    def source(self) -> str:
        """What creates start from: a snapshot id or a template name (both are templates to e2b)."""
        if self.settings.warm == "snapshot":
            return str(self.settings.snapshot)
        if self.settings.warm == "template":
            return str(self.settings.warm_template)
        return self.settings.template or DEFAULT_TEMPLATE

    def facts(self) -> dict[str, Any]:
        retries = connection_retries_in_force()
        return {
            "template": self.source(), "warm_mode": self.settings.warm,  # app.py files warm() under "warm"
            "region": None,  # e2b has no region parameter: placement is e2b's choice
            "api_url": self.endpoint(),
            "sandbox_timeout_s": self.settings.sandbox_timeout,
            "sdk_retries": {"control_plane": 0, "connection": retries},
            "timing": {
                "create": "POST /v2/sandboxes (Sandbox.create, which waits for nothing else), then the farm "
                          "polls the code interpreter's GET /health (port 49999) until it answers 2xx",
                "resolution_ms": RESOLUTION_S * 1000,
                "warm_signal": "snapshot mode: 'snapshot' when the create answer names the snapshot as the "
                               "sandbox's template, else unknown; template mode: unknown (e2b says nothing "
                               "about warm or cold); cold: none",
                "hidden_retries": "none: control-plane retries=0 per call, connection retries "
                                  f"{retries} (E2B_CONNECTION_RETRIES); requests per create are counted "
                                  "(sample field sandbox.sdk_attempts)"
                                  + ("" if retries == 0 else "; e2b was imported before the farm could "
                                     "switch connection retries off, so a refused connection is retried"),
                "wire": "status, Retry-After and error message of every answer read at pyqwest's httpx "
                        "transport (PyqwestTransport.handle_request)" if WIRE_READ else
                        "not read: the SDK's transport has no PyqwestTransport.handle_request any more; "
                        "Retry-After is lost (the farm's own backoff applies) and a dead sandbox may show "
                        "as a timeout",
                "pause_resume": "pause: Sandbox.pause (memory and filesystem), then GET /sandboxes/{id} polled "
                                f"until state paused; resume: Sandbox.connect, then the code interpreter's /health "
                                f"polled until it answers; resolution {RESOLUTION_S * 1000:g} ms",
                "leak_bound": f"every sandbox is created with timeout={self.settings.sandbox_timeout} s "
                              "(e2b kills it then); farm sweep lists running and paused sandboxes, every page",
            },
        }

    def endpoint(self) -> str:
        return str(ConnectionConfig(api_url=self.settings.api_url, domain=self.settings.domain).api_url)

    def ping(self, timeout: float) -> bool:
        """One authenticated list call (a page of one), no retries: reachable and the key works."""
        with self._sdk("ping"):
            E2BSandbox.list(limit=1, **self.sdk_options(request_timeout=timeout)).next_items()
        return True

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Name the warm source for the manifest; e2b keeps snapshots and templates ready itself.
        Workers never make snapshots: each process would make its own and nothing would delete them."""
        return {self.settings.warm: self.source()} if self.settings.warm else None

    def assumptions(self) -> list:
        from providers.e2b.assumptions import ASSUMPTIONS
        return list(ASSUMPTIONS)

    # --- the protocol -----------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        started = time.perf_counter()
        deadline = started + spec.timeout_s
        with self._sdk("create") as seen:
            # env vars go per run_code call, never at create: a warm start must not depend on them
            sbx = E2BSandbox.create(template=self.source(), timeout=self.settings.sandbox_timeout,
                                    metadata=dict(spec.labels), **self.sdk_options(request_timeout=spec.timeout_s))
        accepted_ms = (time.perf_counter() - started) * 1000  # a fact beside the timed phase, not a timing
        answer = seen.created()
        try:
            polled = self.wait_usable(sbx, deadline)
        except ProviderError:
            self._discard(sbx)
            raise
        facts = {"accepted_ms": round(accepted_ms, 1), "polls": polled.polls,
                 "sdk_attempts": seen.sent("POST", wire.CREATE_PATH),
                 "template_id": answer.get("templateID")}
        return Sandbox(id=sbx.sandbox_id, handle=sbx, warm=self.warm_signal(answer), facts=facts,
                       info={"template": self.source()})

    def wait_usable(self, sbx: Any, deadline: float) -> Polled[bool]:
        """Poll the code interpreter until it answers; a sandbox that died is an error, not a wait."""
        url = sbx.connection_config.get_sandbox_url(sbx.sandbox_id, sbx.sandbox_domain, port=JUPYTER_PORT)
        headers = {"E2b-Sandbox-Port": str(JUPYTER_PORT)}
        if sbx.traffic_access_token:
            headers["E2B-Traffic-Access-Token"] = sbx.traffic_access_token
        client = e2b_transport.get_envd_api(sbx.connection_config, url, http_version="1.1")

        def interpreter_answers() -> bool | None:
            left = max(deadline - time.perf_counter(), 0.001)
            answer = client.get("/health", headers=headers,
                                timeout=operation_timeout(min(self.settings.request_timeout, left)))
            if answer.is_success:
                return True
            answer.read()
            if answer.status_code == 502 and is_sandbox_port_not_open_message(get_message(answer)):
                return None  # the sandbox runs; the code interpreter does not listen yet
            raise handle_envd_api_exception(answer)  # the SDK's own mapping (a 502 "not found" included)

        try:
            with self._sdk("create"):
                return poll_until(interpreter_answers, timeout=max(deadline - time.perf_counter(), 0.0),
                                  what="e2b create (code interpreter health)", max_s=RESOLUTION_S)
        finally:
            client.close()

    def warm_signal(self, answer: Mapping[str, Any]) -> str | None:
        """Cold is None. A snapshot start is "snapshot" only when the create answer names the
        snapshot as the sandbox's template; otherwise e2b said nothing sound: unknown."""
        if self.settings.warm is None:
            return None
        if self.settings.warm == "snapshot" and names_source(answer, str(self.settings.snapshot)):
            return "snapshot"
        return WARM_UNKNOWN

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        with self._sdk("run"):
            execution = sandbox.handle.run_code(code, envs=dict(env) or None, timeout=operation_timeout(timeout),
                                                request_timeout=self.settings.request_timeout)
        error = execution.error
        stderr = "".join(execution.logs.stderr)
        if error is not None and exit_code_of(error) != 0:
            # the kernel reports the exception apart from stderr; keep it where a reader looks
            stderr += _ANSI.sub("", error.traceback or "").rstrip() or f"{error.name}: {error.value}"
        return RunResult(exit_code=exit_code_of(error), stdout=cap_output("".join(execution.logs.stdout)),
                         stderr=cap_output(stderr))

    # --- pause and resume (the resume scenario) ----------------------------------------------------
    def pause_support(self) -> str | None:
        return None

    def pause(self, sandbox: Sandbox) -> None:
        deadline = time.perf_counter() + self.settings.request_timeout * 2
        with self._sdk("pause"):
            sandbox.handle.pause(**self.sdk_options())

        def paused() -> bool | None:
            info = E2BSandbox.get_info(sandbox.id, **self.sdk_options())
            return True if str(getattr(info.state, "value", info.state)) == "paused" else None

        with self._sdk("pause"):
            polled = poll_until(paused, timeout=max(deadline - time.perf_counter(), 0.0),
                                what="e2b pause (sandbox state)", max_s=RESOLUTION_S)
        sandbox.facts["pause_polls"] = polled.polls

    def resume(self, sandbox: Sandbox) -> None:
        deadline = time.perf_counter() + self.settings.request_timeout * 2
        with self._sdk("resume") as seen:
            sbx = E2BSandbox.connect(sandbox.id, timeout=self.settings.sandbox_timeout, **self.sdk_options())
        polled = self.wait_usable(sbx, deadline)
        sandbox.handle = sbx
        sandbox.facts.update(resume_kind="e2b Sandbox.connect (auto-resume of a paused sandbox)",
                             resume_polls=polled.polls, resume_sdk_attempts=seen.sent("POST", "/connect"))

    def destroy(self, sandbox: Sandbox) -> None:
        # kill() answers False when the sandbox was already gone (404): gone is what destroy wants
        with self._sdk("destroy"):
            sandbox.handle.kill(**self.sdk_options())

    def _discard(self, sbx: Any) -> None:
        """Kill a sandbox whose create failed after the API made it; a failure here leaves it to
        its lifetime bound and `farm sweep` (the create's own error is what the sample records)."""
        try:
            with self._sdk("destroy"):
                sbx.kill(**self.sdk_options())
        except ProviderError:
            pass

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Every page, running and paused alike (a paused sandbox keeps its disk, and its bill)."""
        query = SandboxQuery(metadata=dict(labels), state=[SandboxState.RUNNING, SandboxState.PAUSED])
        ids: list[str] = []
        with self._sdk("list"):
            pages = E2BSandbox.list(query=query, limit=LIST_PAGE, **self.sdk_options())
            while pages.has_next:
                ids += [s.sandbox_id for s in pages.next_items()]
        return ids

    def delete_by_id(self, sandbox_id: str) -> None:
        with self._sdk("destroy"):
            E2BSandbox.kill(sandbox_id, **self.sdk_options())

    # --- errors -----------------------------------------------------------------------------------
    @contextmanager
    def _sdk(self, what: str) -> Iterator[wire.Watch]:
        """``guard(what)`` with the wire watched, so ``classify`` sees what the SDK dropped."""
        with wire.watch() as seen, self.guard(what):
            yield seen

    def classify(self, exc: BaseException) -> Failure:
        return classify(exc, wire.current())


def names_source(answer: Mapping[str, Any], source: str) -> bool:
    """True when the create answer's templateID or alias is ``source`` (a snapshot id may carry a
    ``namespace/`` and a ``:tag`` the answer leaves off)."""
    bare = source.split(":", 1)[0]
    wanted = {source, bare, bare.rsplit("/", 1)[-1]}
    return any(answer.get(key) in wanted for key in ("templateID", "alias"))


def classify(exc: BaseException, seen: wire.Watch | None) -> Failure:
    """Name an e2b failure; where the SDK dropped the status or Retry-After, the wire has it."""
    detail = first_line(f"{type(exc).__name__}: {exc}")
    last = seen.last() if seen else None
    if isinstance(exc, AuthenticationException):
        return Failure("auth", detail, 401)
    if isinstance(exc, RateLimitException):
        answer = seen.last_with(429) if seen else None
        return Failure("rate_limited", detail, 429, retry_after_seconds(answer.retry_after) if answer else None)
    if isinstance(exc, SandboxNotRunningException):  # the edge: "sandbox was not found"
        return Failure("not_found", detail, 502)
    if isinstance(exc, SandboxUnreachableException):  # running but not answering
        return Failure("provider_error", detail, 502)
    if isinstance(exc, TimeoutException) and last is not None and last.status == 502:
        # the code interpreter reports the edge's 502 (or a sandbox killed mid-request) as a timeout
        gone = is_sandbox_not_found_message(last.message) or is_sandbox_not_found_message(str(exc))
        return Failure("not_found" if gone else "provider_error", f"{detail} (HTTP 502: {last.message})", 502)
    if isinstance(exc, (TimeoutException, httpx.TimeoutException)):
        return Failure("timeout", detail)  # an execution past its limit, or a request past its bound
    if isinstance(exc, NotFoundException):
        return Failure("not_found", detail, 404)
    if isinstance(exc, (httpx.TransportError, ConnectionError)):
        return Failure("network", detail)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        answer = seen.last_with(status) if seen else None
        return Failure(classify_status(status), detail, status,
                       retry_after_seconds(answer.retry_after) if answer else None)
    return default_failure(exc)
