"""The e2b adapter on the real ``e2b-code-interpreter`` SDK against tests/fakes/e2b_server.py.

Seam: ``E2B_API_URL`` and ``E2B_SANDBOX_URL`` point the SDK's own (pyqwest) transport at the local
fake, over HTTP/1.1 (``E2B_HTTP_VERSION``); nothing of the SDK or the adapter is replaced.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from tests.contract import Harness
from tests.fakes.e2b_server import FakeE2B

ROUTES = {"create": "create", "run": "execute", "destroy": "kill", "list": "list"}


@contextmanager
def harness(tmp_path, monkeypatch) -> Iterator[Harness]:
    from providers.e2b.adapter import RESOLUTION_S, E2BProvider

    with FakeE2B() as fake:
        for key, value in fake.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("E2B_DOMAIN", raising=False)
        provider = E2BProvider({})
        provider.check()

        def set_boot_ms(ms: int) -> None:
            fake.boot_ms = ms

        def set_page_size(size: int) -> None:
            fake.page_size = size

        def fail_next(operation: str, status: int, retry_after: float | None) -> None:
            fake.fail(ROUTES[operation], status, f"injected {status}", retry_after=retry_after)

        yield Harness(provider=provider, seam="E2B_API_URL/E2B_SANDBOX_URL -> local HTTP server (HTTP/1.1)",
                      set_boot_ms=set_boot_ms, fail_next=fail_next, alive=lambda: set(fake.sandboxes),
                      set_page_size=set_page_size, kill=fake.vanish, resolution_ms=RESOLUTION_S * 1000,
                      secrets={"E2B_API_KEY": fake.api_key})
