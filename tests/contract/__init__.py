"""The provider contract: every adapter, on its real SDK, against a fake whose truth is known.

Each provider contributes a harness module ``tests/contract/<name>.py`` exposing
``harness(tmp_path, monkeypatch) -> contextmanager[Harness]`` and is listed in ``HARNESSES``;
``tests/test_provider_contract.py`` runs all of them through the same cases. Per-provider test
files keep only what is specific to one SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from providers.base import Provider

# provider name -> module under tests/contract/ with a ``harness`` context manager
HARNESSES: dict[str, str] = {
    "codesandbox": "tests.contract.codesandbox",
    "daytona": "tests.contract.daytona",
    "e2b": "tests.contract.e2b",
    "modal": "tests.contract.modal",
    "morph": "tests.contract.morph",
}


@dataclass
class Harness:
    """A real adapter wired to a fake provider, and the fake's controls."""

    provider: Provider                          # check() already passed; pointed at the fake
    seam: str                                   # what is faked, e.g. "MORPH_BASE_URL -> local HTTP server"
    set_boot_ms: Callable[[int], None]          # sandboxes become usable exactly this long after create
    fail_next: Callable[[str, int, float | None], None]  # (operation, HTTP status, Retry-After s): the
    #                                             next call of "create" | "run" | "destroy" | "list" fails
    alive: Callable[[], set[str]]               # ids of sandboxes the fake still holds (not destroyed)
    set_page_size: Callable[[int], None]        # list endpoints answer at most this many per page
    kill: Callable[[str], None]                 # the sandbox dies behind the adapter's back
    resolution_ms: float                        # the readiness resolution the adapter states
    secrets: dict[str, str] = field(default_factory=dict)  # credential values in use (must never leak)
