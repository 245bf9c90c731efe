"""CodeSandbox in the contract suite: the real adapter -> the real node-csb process -> the REAL
``@codesandbox/sdk`` -> the fake CodeSandbox API (node-csb/test/fake-api.js).

Faked seam: the CodeSandbox wire itself, at the SDK's base-URL setting (CSB_BASE_URL): the REST API
(fork, start, list, get, delete) and the sandbox agent websocket (pitcher: join, setup, shells) the
SDK's connect() and commands use. Nothing of the SDK or node-csb is replaced.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from providers import get_provider
from providers.base import SandboxSpec, sandbox_labels
from providers.codesandbox.service import start_service
from tests.contract import Harness
from tests.fakes.codesandbox_server import FakeCsbApi

KEY = "csb_contract_key_7c1e55aa90"


@contextmanager
def harness(tmp_path, monkeypatch) -> Iterator[Harness]:
    fake = FakeCsbApi(tmp_path)
    service = None
    try:
        service = start_service(log_path=tmp_path / "node-csb.log", env={"CSB_API_KEY": KEY, "CSB_BASE_URL": fake.url})
        monkeypatch.setenv("CSB_SERVICE_TOKEN", service.token)
        provider = get_provider("codesandbox", {"service_url": service.url})
        provider.check()
        # Untimed rounds first, as the farm's warm-up repetitions do: a fresh node-csb process
        # compiles the SDK's code paths on its first creates (hundreds of ms on a loaded machine),
        # which is the service starting, not CodeSandbox booting.
        for rep in range(3):
            provider.destroy(provider.create(SandboxSpec(labels=sandbox_labels("warm-up", "codesandbox", "warm", rep))))
        try:
            yield Harness(provider=provider, seam="CSB_BASE_URL -> fake CodeSandbox REST API + agent websocket",
                          set_boot_ms=fake.set_boot_ms, fail_next=fake.fail_next, alive=fake.alive,
                          set_page_size=fake.set_page_size, kill=fake.kill, resolution_ms=0,
                          secrets={"CSB_API_KEY": KEY, "CSB_SERVICE_TOKEN": service.token})
        finally:
            provider.close()
    finally:
        if service is not None:
            service.stop()
        fake.stop()
