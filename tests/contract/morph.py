"""Contract harness for Morph: the real adapter on the real ``morphcloud`` SDK.

Seam faked: the SDK's base URL. ``MORPH_BASE_URL`` points at tests/fakes/morph_server.py on 127.0.0.1
(``MORPH_CONFIG_PATH`` away from any user profile); the SDK's client, models and httpx transport are
the real package.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from providers import get_provider
from providers.polling import DEFAULT_MAX_S
from tests.contract import Harness
from tests.fakes.morph_server import BASE_SNAPSHOT, FakeMorph

ROUTES = {"create": "start", "run": "exec", "destroy": "stop", "list": "list_paginated"}


@contextmanager
def harness(tmp_path, monkeypatch) -> Iterator[Harness]:
    with FakeMorph() as fake:
        for key, value in fake.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MORPH_HTTP_TRANSPORT_SHARDS", "1")
        provider = get_provider("morph", {"snapshot_id": BASE_SNAPSHOT})
        provider.check()

        def fail_next(operation: str, status: int, retry_after: float | None) -> None:
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            fake.fail(ROUTES[operation], status, "injected", headers=headers)

        try:
            yield Harness(provider=provider, seam="MORPH_BASE_URL -> local HTTP server (tests/fakes/morph_server.py)",
                          set_boot_ms=lambda ms: setattr(fake, "boot_ms", ms), fail_next=fail_next,
                          alive=lambda: set(fake.alive()), set_page_size=lambda n: setattr(fake, "page_size", n),
                          kill=fake.kill, resolution_ms=DEFAULT_MAX_S * 1000, secrets={"MORPH_API_KEY": fake.api_key})
        finally:
            provider.close()
