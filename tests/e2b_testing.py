"""Shared by the e2b test modules: the fake wired into the environment, and a sample's spec.

``nowhere`` (autouse where imported) points the SDK at a closed local port, so no test can reach
the internet; ``fake`` points it at tests/fakes/e2b_server.py instead.
"""

from __future__ import annotations

import pytest

from farm.snippets import Snippet
from providers.base import SandboxSpec
from tests.fakes.e2b_server import FakeE2B

TIMEOUTS = {"create": 30, "ready": 30, "setup": 60, "run": 30, "destroy": 30}
LABELS = {"farm": "sandbox-farm", "farm-run": "run-e2b-1", "farm-provider": "e2b",
          "farm-snippet": "envcheck", "farm-rep": "0"}
ENV_SNIPPET = Snippet(name="envcheck", code="import os\nprint('token=' + os.environ['FARM_PASSED'])\n")


@pytest.fixture(autouse=True)
def nowhere(monkeypatch):
    """Without the fake, the SDK points at a closed local port: no test can reach the internet."""
    for key in ("E2B_API_URL", "E2B_SANDBOX_URL"):
        monkeypatch.setenv(key, "http://127.0.0.1:9")
    monkeypatch.setenv("E2B_DOMAIN", "invalid")


@pytest.fixture
def fake(monkeypatch):
    with FakeE2B() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        yield server


def spec(**labels: str) -> SandboxSpec:
    return SandboxSpec(labels={**LABELS, **labels}, timeout_s=10)


def creates(fake: FakeE2B) -> list[dict]:
    return [r for r in fake.requests if r["route"] == "create"]
