"""node-csb's process manager: start the service, wait until it answers, stop exactly that process.

The CodeSandbox SDK is JavaScript-only, so the farm reaches it through node-csb (``node-csb/``).
``start_service()`` boots it for tests and for the embedded default; ``embedded_service`` is the
provider's sidecar (``ProviderSpec.sidecar``), which ``farm/runner.py`` enters before embedded
workers start so they inherit ``CSB_SERVICE_URL`` and ``CSB_SERVICE_TOKEN``.
"""

from __future__ import annotations

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

import httpx

from providers.errors import ProviderError

SERVICE_DIR = Path(os.environ.get("CSB_SERVICE_DIR") or Path(__file__).resolve().parents[2] / "node-csb")
MIN_NODE = (20, 19)
# What node-csb may see of the farm's environment: its own settings, locale and proxies, nothing else.
SERVICE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
               "http_proxy", "https_proxy", "no_proxy", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE",
               "CSB_API_KEY", "CSB_BASE_URL")


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
    if token is None:  # "" asks for the token-less loopback mode (tests of its request guard)
        token = os.environ.get("CSB_SERVICE_TOKEN") or secrets.token_urlsafe(32)
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
