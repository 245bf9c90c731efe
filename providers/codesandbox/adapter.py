"""CodeSandbox, through node-csb/: the SDK is JavaScript-only, so a small Node service wraps it.

The provider speaks JSON over HTTP to node-csb (a pooled httpx client with per-call timeouts); the
service holds the CodeSandbox API key (CSB_API_KEY, which this process never reads) and both sides
share CSB_SERVICE_TOKEN. Settings (``providers.codesandbox`` in config.yml): ``service_url``,
``template``, ``python``, ``vm_tier``, ``privacy``, ``hibernation_timeout_s``, ``destroy``,
``connect_timeout_s``. ``start_service()`` boots node-csb for the embedded default and for tests.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import quote

import httpx

from providers.base import (ERROR_CLASSES, Provider, ProviderError, RunResult, Sandbox, SandboxSpec,
                            cap_output, classify_status)

SERVICE_DIR = Path(os.environ.get("CSB_SERVICE_DIR") or Path(__file__).resolve().parents[2] / "node-csb")
DEFAULT_URL = "http://127.0.0.1:8787"
START_HINT = ("start it with: node node-csb/server.js (CSB_API_KEY and CSB_SERVICE_TOKEN in its "
              "environment), or point providers.codesandbox.service_url at it")
SETTINGS = ("service_url", "template", "python", "vm_tier", "privacy", "hibernation_timeout_s", "destroy",
            "connect_timeout_s")
DESTROY_MODES = ("delete", "shutdown", "hibernate")
MIN_NODE = (20, 19)
# What node-csb may see of the farm's environment: its own settings, locale and proxies, nothing else.
SERVICE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
               "http_proxy", "https_proxy", "no_proxy", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE",
               "CSB_API_KEY", "CSB_BASE_URL")


def _service_error(status: int, body: Any, url: str, what: str) -> ProviderError:
    """node-csb answers errors as {"error": {"class", "message"}}; anything else is not node-csb."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        cls = err.get("class") if err.get("class") in ERROR_CLASSES else classify_status(status)
        return ProviderError(cls, f"codesandbox: {err['message']}", status=status)
    cls = "provider_error" if status >= 500 else "config"
    return ProviderError(cls, f"codesandbox: {url} answered {what} with HTTP {status} and no node-csb error: "
                              "is service_url pointing at node-csb?", status=status)


class CodeSandboxProvider(Provider):
    name = "codesandbox"
    extra = "codesandbox"
    credentials = ()  # CSB_API_KEY belongs to node-csb; CSB_SERVICE_TOKEN is optional on loopback
    capabilities = frozenset({"network"})

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.url = str(self.settings.get("service_url") or os.environ.get("CSB_SERVICE_URL")
                       or DEFAULT_URL).rstrip("/")
        self.destroy_mode = str(self.settings.get("destroy") or "delete")
        connect = self.settings.get("connect_timeout_s")
        # a bad value is reported by check(), never as a crash while building the provider
        self.connect_s = float(connect) if isinstance(connect, (int, float)) and connect > 0 else 5.0
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
                timeout=httpx.Timeout(30.0, connect=self.connect_s), trust_env=False,
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=30))
            self._client_pid = os.getpid()
        return self._client

    def _call(self, method: str, path: str, what: str, read_s: float, *, body: Any = None,
              params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One request to node-csb; every failure leaves as a classified ProviderError."""
        try:
            resp = self._http().request(method, path, json=body, params=params,
                                        timeout=httpx.Timeout(read_s, connect=self.connect_s))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ProviderError("network", f"codesandbox: node-csb is not reachable at {self.url} "
                                           f"({type(exc).__name__}): {START_HINT}") from None
        except httpx.TimeoutException:
            raise ProviderError("timeout", f"codesandbox: node-csb gave no answer to {what} within "
                                           f"{read_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ProviderError("network", f"codesandbox: {what} via node-csb at {self.url} failed "
                                           f"({type(exc).__name__})") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400 or not isinstance(data, dict):
            raise _service_error(resp.status_code, data, self.url, what)
        return data

    # --- protocol -----------------------------------------------------------------------------
    def _check_settings(self) -> None:
        for key in self.settings:
            if key not in SETTINGS:
                close = difflib.get_close_matches(str(key), SETTINGS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ProviderError("config", f"providers.codesandbox.{key} is not a setting{hint}; "
                                              f"settings: {', '.join(SETTINGS)}")
        if not re.match(r"^https?://[^/\s]+", self.url):
            raise ProviderError("config", f"providers.codesandbox.service_url must be http(s)://host:port, "
                                          f"got {self.url!r}")
        for key in ("connect_timeout_s", "hibernation_timeout_s"):
            value = self.settings.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ProviderError("config", f"providers.codesandbox.{key} must be a positive number of "
                                              f"seconds, got {value!r}")
        if self.destroy_mode not in DESTROY_MODES:
            raise ProviderError("config", f"providers.codesandbox.destroy must be one of "
                                          f"{', '.join(DESTROY_MODES)}, got {self.destroy_mode!r}")

    def check(self) -> None:
        self._check_settings()
        try:
            health = self._call("GET", "/health", "the health check", 10.0)
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
        self._call("GET", "/key-check", "the key check", 30.0)

    def endpoint(self) -> str | None:
        return self.url

    def ping(self, timeout: float) -> bool:
        health = self._call("GET", "/health", "the health check", timeout)
        return health.get("service") == "node-csb"

    def facts(self) -> dict[str, Any]:
        health = self._health or self._call("GET", "/health", "the health check", 10.0)
        sdk = health.get("sdk") or {}
        return {"service_url": self.url, "service": f"node-csb {health.get('version', '?')}",
                "sdk": f"{sdk.get('name', '?')} {sdk.get('version', '?')}", "sdk_double": bool(sdk.get("double")),
                "node": health.get("node"), "template": self.settings.get("template") or "SDK default",
                "vm_tier": self.settings.get("vm_tier"), "destroy": self.destroy_mode,
                "output": "stdout and stderr merged by the SDK"}

    def create(self, spec: SandboxSpec) -> Sandbox:
        s = self.settings
        body = {"labels": dict(spec.labels), "template": s.get("template"), "vm_tier": s.get("vm_tier"),
                "privacy": s.get("privacy"), "hibernation_timeout_s": s.get("hibernation_timeout_s"),
                "timeout_s": spec.timeout_s}
        data = self._call("POST", "/sandboxes", "create", spec.timeout_s + 15,
                          body={k: v for k, v in body.items() if v is not None})
        return Sandbox(id=str(data["id"]), info={"bootup_type": data.get("bootup_type"),
                                                 "cluster": data.get("cluster"),
                                                 "service_ms": data.get("timings_ms", {})})

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        body: dict[str, Any] = {"code": code, "env": dict(env), "timeout_s": timeout}
        if self.settings.get("python"):
            body["python"] = str(self.settings["python"])
        data = self._call("POST", f"/sandboxes/{quote(sandbox.id, safe='')}/run", "run", timeout + 15, body=body)
        exit_code = data.get("exit_code")
        return RunResult(exit_code=exit_code if isinstance(exit_code, int) else None,
                         stdout=cap_output(str(data.get("output") or "")), merged_output=True)

    def destroy(self, sandbox: Sandbox) -> None:
        self._call("DELETE", f"/sandboxes/{quote(sandbox.id, safe='')}", "destroy", 75.0,
                   params={"mode": self.destroy_mode})

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        data = self._call("POST", "/sandboxes/list", "list", 60.0, body={"labels": dict(labels)})
        return [str(s["id"]) for s in data.get("sandboxes", [])]

    def delete_by_id(self, sandbox_id: str) -> None:
        try:
            self._call("DELETE", f"/sandboxes/{quote(sandbox_id, safe='')}", "delete", 75.0,
                       params={"mode": "delete"})
        except ProviderError as exc:
            if exc.error_class != "not_found":  # already gone is what sweep wanted
                raise

    def close(self) -> None:
        if self._client is not None and self._client_pid == os.getpid():
            self._client.close()
        self._client = None


# --- running node-csb ---------------------------------------------------------------------------
@dataclass
class ServiceHandle:
    """A node-csb process this farm started; ``stop()`` ends exactly that process."""

    url: str
    token: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (it disconnects from open sandboxes), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ServiceHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout
    m = re.match(r"v(\d+)\.(\d+)", out.strip())
    return (int(m[1]), int(m[2])) if m else (0, 0)


def start_service(*, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                  env: Mapping[str, str] | None = None, log_path: Path | None = None,
                  sdk_module: str | Path | None = None, node: str = "node",
                  timeout: float = 20.0) -> ServiceHandle:
    """Start node-csb (port 0 = a free one) and wait until it answers; raise ProviderError('config')."""
    node_bin = shutil.which(node)
    if not node_bin:
        raise ProviderError("config", f"codesandbox needs Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]}: {node!r} is "
                                      "not on PATH (the CodeSandbox SDK is JavaScript-only)")
    if _node_version(node_bin) < MIN_NODE:
        raise ProviderError("config", f"codesandbox needs Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]}; {node_bin} is older")
    if not (SERVICE_DIR / "node_modules" / "@codesandbox" / "sdk" / "package.json").is_file():
        raise ProviderError("config", f"node-csb's dependencies are not installed: run (cd {SERVICE_DIR} && npm ci)")
    token = token or os.environ.get("CSB_SERVICE_TOKEN") or secrets.token_urlsafe(32)
    log_path = Path(log_path or Path(tempfile.gettempdir()) / f"node-csb-{os.getpid()}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ready = log_path.with_name(f"{log_path.name}.{os.getpid()}.{time.monotonic_ns()}.ready")
    child_env = {k: os.environ[k] for k in SERVICE_ENV if k in os.environ}
    child_env.update(env or {})
    child_env.update(CSB_SERVICE_TOKEN=token, CSB_SERVICE_HOST=host, CSB_SERVICE_PORT=str(port),
                     CSB_SERVICE_READY_FILE=str(ready))
    if sdk_module:
        child_env["CSB_SDK_MODULE"] = str(Path(sdk_module).resolve())
    with log_path.open("ab") as log:
        proc = subprocess.Popen([node_bin, str(SERVICE_DIR / "server.js")], cwd=SERVICE_DIR, env=child_env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    handle = ServiceHandle(url="", token=token, proc=proc, log_path=log_path)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last = (handle.log().strip().splitlines() or ["(no output)"])[-1]
                raise ProviderError("config", f"node-csb exited with code {proc.returncode}: {last[:300]}")
            if ready.is_file():
                handle.url = json.loads(ready.read_text())["url"]
                break
            time.sleep(0.05)
        else:
            raise ProviderError("config", f"node-csb did not start within {timeout:g} s: see {log_path}")
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            client.get(f"{handle.url}/health").raise_for_status()
    except BaseException:
        handle.stop()
        raise
    finally:
        ready.unlink(missing_ok=True)
    return handle


@contextmanager
def embedded_service(settings: dict[str, Any], log_dir: Path) -> Iterator[ServiceHandle | None]:
    """For a run that plans codesandbox without a service: boot node-csb, point settings and env at it.

    ``settings`` is the plan's ``providers.codesandbox`` mapping; a ``service_url`` there means a
    service already runs. The environment gains CSB_SERVICE_URL and CSB_SERVICE_TOKEN (workers
    started inside inherit them) until the block ends.
    """
    if settings.get("service_url") or os.environ.get("CSB_SERVICE_URL"):
        yield None
        return
    handle = start_service(log_path=Path(log_dir) / "node-csb.log")
    # Through the environment, not the run's settings: the manifest must not keep an ephemeral URL,
    # so `farm watch` can boot a new service on another port and the run carries on.
    saved = {k: os.environ.get(k) for k in ("CSB_SERVICE_TOKEN", "CSB_SERVICE_URL")}
    os.environ["CSB_SERVICE_TOKEN"] = handle.token
    os.environ["CSB_SERVICE_URL"] = handle.url
    try:
        yield handle
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        handle.stop()
