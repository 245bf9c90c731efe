"""Contract harness: the Daytona adapter on the real SDK's clients against tests/fakes/daytona_server.py.

Seam faked: the SDK's base URL. ``DAYTONA_API_URL`` points at the fake on 127.0.0.1, whose sandbox
records point the toolbox proxy back at it; the generated clients, urllib3 and the SDK's Sandbox
handle are the real package.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from providers import get_provider
from providers.polling import DEFAULT_MAX_S
from tests.contract import Harness
from tests.fakes.daytona_server import FakeDaytona

OPERATIONS = {"create": "create", "run": "code_run", "destroy": "delete", "list": "list"}


@contextmanager
def harness(tmp_path, monkeypatch) -> Iterator[Harness]:
    with FakeDaytona() as fake:
        for key, value in fake.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("DAYTONA_TARGET", raising=False)
        provider = get_provider("daytona", {})
        provider.check()

        def set_boot_ms(ms: int) -> None:
            fake.boot_ms = ms

        def fail_next(operation: str, status: int, retry_after: float | None) -> None:
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            fake.fail(OPERATIONS[operation], status, "injected by the contract", headers=headers)

        def set_page_size(n: int) -> None:
            fake.page_size = n

        try:
            yield Harness(provider=provider, seam="DAYTONA_API_URL -> local HTTP server (API and toolbox proxy)",
                          set_boot_ms=set_boot_ms, fail_next=fail_next, alive=lambda: set(fake.alive()),
                          set_page_size=set_page_size, kill=fake.kill, resolution_ms=DEFAULT_MAX_S * 1000,
                          secrets={"DAYTONA_API_KEY": fake.api_key})
        finally:
            provider.close()
