"""Modal's contract harness: the real ``modal`` SDK against tests/fakes/modal_server.py.

Seam: Modal's ``server_url`` setting (``MODAL_SERVER_URL``) -> a local gRPC server (grpclib) that
serves the control plane and the task command router, so every SDK layer below the public API runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from grpclib import Status

from providers.modal.adapter import ModalProvider
from tests.contract import Harness
from tests.fakes.modal_server import FAKE_TOKENS, serve

# contract operation -> the gRPC method the SDK calls for it (modal 1.6, V2 sandboxes)
METHODS = {"create": "SandboxCreateV2", "run": "TaskExecStart", "destroy": "SandboxTerminateV2",
           "list": "SandboxListV2"}
# HTTP status the contract speaks -> the gRPC status Modal answers with
STATUSES = {401: Status.UNAUTHENTICATED, 403: Status.PERMISSION_DENIED, 404: Status.NOT_FOUND,
            429: Status.RESOURCE_EXHAUSTED, 500: Status.INTERNAL, 503: Status.UNAVAILABLE}


@contextmanager
def harness(tmp_path, monkeypatch) -> Iterator[Harness]:
    with serve(monkeypatch) as fake:
        provider = ModalProvider({})
        provider.check()

        def set_boot_ms(ms: int) -> None:
            fake.boot_ms = ms

        def fail_next(operation: str, status: int, retry_after: float | None) -> None:
            fake.fail_next(METHODS[operation], STATUSES[status], f"injected {status}", retry_after=retry_after)

        def set_page_size(n: int) -> None:
            fake.page_size = n

        yield Harness(provider=provider, seam="MODAL_SERVER_URL -> local gRPC server (tests/fakes/modal_server.py)",
                      set_boot_ms=set_boot_ms, fail_next=fail_next, alive=fake.alive, set_page_size=set_page_size,
                      kill=fake.kill, resolution_ms=provider.facts()["timing"]["resolution_ms"],
                      secrets=dict(FAKE_TOKENS))
