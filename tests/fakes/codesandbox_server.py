"""The CodeSandbox fake, from Python: ``node-csb/test/fake-api.js`` run as its own process.

The fake is written in JavaScript because the real ``@codesandbox/sdk`` (inside node-csb) must
reach it over the CodeSandbox wire: the REST API through the SDK's base-URL setting
(``CSB_BASE_URL``) and the sandbox agent's msgpack-over-websocket protocol that ``connect()``
joins and commands run over. Its controls (boot time, injected failures, page size, kills) are
HTTP endpoints under ``/_fake/``; ``FakeCsbApi`` wraps them.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from providers.codesandbox.service import SERVICE_DIR

FAKE_JS = SERVICE_DIR / "test" / "fake-api.js"


class FakeCsbApi:
    """A running fake: ``url`` for CSB_BASE_URL, controls as methods, ``stop()`` ends the process."""

    def __init__(self, log_dir: Path, boot_ms: int = 0, timeout: float = 20.0) -> None:
        ready = log_dir / f"fake-csb-{time.monotonic_ns()}.ready"
        self.log_path = log_dir / "fake-csb.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [shutil.which("node") or "node", str(FAKE_JS)], cwd=SERVICE_DIR, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CSB_FAKE_READY_FILE": str(ready),
                     "CSB_FAKE_BOOT_MS": str(boot_ms)})
        deadline = time.monotonic() + timeout
        while not ready.is_file():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake CodeSandbox API did not start: {self.log_path.read_text()[-500:]}")
            time.sleep(0.02)
        self.url = json.loads(ready.read_text())["url"]
        self._http = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def _control(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self._http.post(f"/_fake/{name}", json=body or {})
        resp.raise_for_status()
        return resp.json()

    def set_boot_ms(self, ms: int) -> None:
        self._control("boot", {"ms": ms})

    def set_page_size(self, n: int) -> None:
        self._control("page-size", {"n": n})

    def set_delete_lag_ms(self, ms: int) -> None:
        self._control("delete-lag", {"ms": ms})

    def set_expire(self, on: bool) -> None:
        """Hibernation snapshots expire: a resume boots CLEAN, without the VM's files."""
        self._control("expire", {"on": on})

    def fail_next(self, operation: str, status: int, retry_after: float | None = None) -> None:
        """The next ``operation`` ("create" = the fork, "start", "run", "destroy", "list") fails."""
        self._control("fail", {"operation": operation, "status": status, "retry_after": retry_after})

    def kill(self, sandbox_id: str) -> None:
        self._control("kill", {"id": sandbox_id})

    def alive(self) -> set[str]:
        return set(self._control("alive")["ids"])

    def requests(self) -> list[dict[str, Any]]:
        return self._control("requests")["requests"]

    def stop(self) -> None:
        if getattr(self, "_http", None) is not None:
            self._http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
