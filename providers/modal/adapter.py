"""Modal on its real SDK (gRPC only): Sandbox.create on an App, exec per run, terminate, list by tags.

Settings (``providers.modal`` in config.yml), all optional:

    app: sandbox-farm         # App.lookup(app, create_if_missing=True); sandboxes belong to it
    python: "3.11"            # cold creates: Image.debian_slim(python), resolved by Modal in create
    warm: image               # null = cold; warm creates use a pre-built image and are flagged
    image_id: im-...          # warm: image: the pre-built image (providers/README.md)
    region: null              # e.g. us-east; null lets Modal place the sandbox
    cpu: null                 # fractional cores requested
    memory: null              # MiB requested
    sandbox_timeout: 600      # the sandbox's own lifetime (s): a leaked sandbox dies by itself

Credentials come from ``MODAL_TOKEN_ID`` and ``MODAL_TOKEN_SECRET`` only. The adapter refuses to
touch Modal without both, even where ``~/.modal.toml`` exists: a worker must not silently run on
someone's personal profile. Modal is gRPC-only and retries an unreachable server for about a
minute, so the tests replace ``modal.App``/``modal.Sandbox`` (tests/fakes/modal_double.py).
"""

from __future__ import annotations

import math
import os
import threading
from importlib import metadata
from typing import Any, Mapping

import modal
import modal.exception as mx
from modal.config import config as modal_config

from farm.redact import redact
from providers.base import Provider, ProviderError, RunResult, Sandbox, SandboxSpec, cap_output, sdk_call

KNOWN_SETTINGS = {"app", "python", "warm", "image_id", "region", "cpu", "memory", "sandbox_timeout"}
WARM_MODES = (None, "image")
TOKENS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")


class ModalProvider(Provider):
    name = "modal"
    extra = "modal"
    credentials = TOKENS
    capabilities = frozenset({"network"})  # Modal sandboxes have outbound network unless blocked

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.mode: str | None = self.settings.get("warm")
        self.app_name = str(self.settings.get("app") or "sandbox-farm")
        self.python = self.settings.get("python") or "3.11"
        self.ttl = self.settings.get("sandbox_timeout", 600)
        if isinstance(self.ttl, bool) or not isinstance(self.ttl, int) or self.ttl <= 0:
            raise ProviderError("config", f"modal: providers.modal.sandbox_timeout must be a positive "
                                f"whole number of seconds, not {self.ttl!r}")
        self._app: Any = None

    # --- setup ------------------------------------------------------------------------------------
    def _require_tokens(self) -> None:
        """The gate in front of every Modal call."""
        missing = [name for name in TOKENS if not os.environ.get(name)]
        if missing:
            raise ProviderError("auth", f"modal: {' and '.join(missing)} not set: run `modal token new` "
                                "and export both token values (or put them in .env)")

    def check(self) -> None:
        unknown = set(self.settings) - KNOWN_SETTINGS
        if unknown:
            raise ProviderError("config", f"modal: unknown setting(s) {', '.join(sorted(unknown))} in "
                                f"providers.modal; known: {', '.join(sorted(KNOWN_SETTINGS))}")
        if self.mode not in WARM_MODES:
            raise ProviderError("config", f"modal: providers.modal.warm must be image or null, not {self.mode!r}")
        if not isinstance(self.python, str):  # YAML reads 3.10 as the number 3.1
            raise ProviderError("config", f"modal: providers.modal.python must be quoted, like \"3.12\", "
                                f"not {self.python!r}")
        if self.mode == "image" and not self.settings.get("image_id"):
            raise ProviderError("config", "modal: warm: image needs providers.modal.image_id, the id of a "
                                "pre-built image (see providers/README.md)")
        self._require_tokens()

    def facts(self) -> dict[str, Any]:
        return {
            "sdk": f"modal {metadata.version('modal')}", "app": self.app_name, "warm_mode": self.mode,
            "image": self._image_name(), "region": self.settings.get("region"), "endpoint": self.endpoint(),
            "cpu": self.settings.get("cpu"), "memory_mb": self.settings.get("memory"),
            "sandbox_timeout_s": self.ttl,
            # Modal retries transient gRPC failures inside the SDK and offers no per-call switch
            "sdk_retries": "internal, not configurable",
        }

    def endpoint(self) -> str:
        return str(modal_config["server_url"])

    def ping(self, timeout: float) -> bool:
        """Look the App up (found or not, Modal answered and took the tokens) within ``timeout``.

        The SDK retries an unreachable server for about a minute with no per-call limit, so the
        lookup runs on a daemon thread and the check gives up after ``timeout``.
        """
        self._require_tokens()
        outcome: list[BaseException | None] = []

        def lookup() -> None:
            try:
                modal.App.lookup(self.app_name)
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
            raise classify("ping", outcome[0])
        return True

    def _image_name(self) -> str:
        if self.mode == "image":
            return str(self.settings.get("image_id") or "(not set)")
        return f"debian_slim(python={self.python})"

    def _image(self) -> Any:
        if self.mode == "image":
            return modal.Image.from_id(self._image_name())
        # A fresh definition per create: Modal resolves it inside create, which is what cold means here
        return modal.Image.debian_slim(python_version=self.python)

    def _ensure_app(self) -> Any:
        self._require_tokens()
        if self._app is None:
            # once per process; the first create of each process includes this lookup
            self._app = self._call("app lookup", lambda: modal.App.lookup(self.app_name, create_if_missing=True))
        return self._app

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Look the App up outside any timed phase; name the pre-built image for the manifest."""
        self._ensure_app()
        return {"image_id": self._image_name()} if self.mode == "image" else None

    # --- the protocol -----------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        app = self._ensure_app()
        options = {key: self.settings[key] for key in ("region", "cpu", "memory") if self.settings.get(key)}
        # env vars go per exec, never at create: the sandbox stays the same whatever a snippet gets
        sb = self._call("create", lambda: modal.Sandbox.create(
            app=app, image=self._image(), tags=dict(spec.labels), timeout=self.ttl, **options))
        return Sandbox(id=sb.object_id, handle=sb, warm=self.mode, info={"image": self._image_name()})

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        def execute() -> tuple[int, str, str]:
            proc = sandbox.handle.exec("python", "-c", code, env=dict(env) or None,
                                       timeout=max(1, math.ceil(timeout)))
            stdout, stderr = proc.stdout.read(), proc.stderr.read()
            return proc.wait(), stdout, stderr

        exit_code, stdout, stderr = self._call("run", execute)
        if exit_code == -1:  # Modal reports an exec past its timeout as returncode -1, not an exception
            raise ProviderError("timeout", f"modal run: snippet still running after {timeout:g} s")
        return RunResult(exit_code=exit_code, stdout=cap_output(stdout), stderr=cap_output(stderr))

    def destroy(self, sandbox: Sandbox) -> None:
        # wait=True: return only once Modal reports the sandbox has exited
        self._call("destroy", lambda: sandbox.handle.terminate(wait=True))

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        # Scoped to the configured App: Modal deprecates environment-wide listing. Sandboxes left
        # under another app name are swept by running with that ``app`` setting.
        self._require_tokens()

        def find() -> list[str]:
            try:
                app = self._app or modal.App.lookup(self.app_name)
            except mx.NotFoundError:  # the app never existed: nothing of ours can be left in it
                return []
            return [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id, tags=dict(labels))]

        return self._call("list", find)

    def delete_by_id(self, sandbox_id: str) -> None:
        self._require_tokens()
        self._call("destroy", lambda: modal.Sandbox.from_id(sandbox_id).terminate(wait=True))

    # --- errors -----------------------------------------------------------------------------------
    def _call(self, what: str, fn: Any) -> Any:
        return sdk_call(what, fn, classify)


def classify(what: str, exc: BaseException) -> ProviderError:
    """Map Modal's exception classes (gRPC statuses underneath) to the farm's error classes."""
    if isinstance(exc, (mx.AuthError, mx.PermissionDeniedError)):
        cls, status = "auth", 401 if isinstance(exc, mx.AuthError) else 403
    elif isinstance(exc, mx.NotFoundError):
        cls, status = "not_found", 404
    elif isinstance(exc, mx.ResourceExhaustedError):
        cls, status = "rate_limited", 429
    elif isinstance(exc, (mx.TimeoutError, TimeoutError)):  # SandboxTimeoutError, ExecTimeoutError, ...
        cls, status = "timeout", None
    elif isinstance(exc, (mx.ConnectionError, OSError)):
        cls, status = "network", None
    else:
        cls, status = "provider_error", None
    text = redact(" ".join(str(exc).split()))
    for name in TOKENS:  # also when a value is too short for redact() to treat as a secret
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return ProviderError(cls, f"modal {what}: {type(exc).__name__}: {text}"[:300], status=status)
