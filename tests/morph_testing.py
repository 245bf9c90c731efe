"""Shared by the Morph test modules: the fake wired into the environment, a ready provider, a sample.

Seam faked: the SDK's base URL. ``MORPH_BASE_URL`` points at tests/fakes/morph_server.py on 127.0.0.1
(and ``MORPH_CONFIG_PATH`` away from any user profile); the SDK's client, models, httpx transport and
error handling are the real package. Phases are timed by the real ``workers.measure.measure``.
"""

from __future__ import annotations

import pytest

from farm.snippets import Snippet
from providers import get_provider
from providers.base import SandboxSpec
from tests.fakes.morph_server import BASE_SNAPSHOT, FakeMorph
from workers.measure import measure

TIMEOUTS = {"create": 10, "ready": 10, "setup": 10, "run": 10, "destroy": 10}
LABELS = {"farm": "sandbox-farm", "farm-run": "run-m", "farm-provider": "morph", "farm-snippet": "greet",
          "farm-rep": "0"}
GREET = Snippet(name="greet", code="import os, sys\nprint('hello', os.environ['GREETING'])\n"
                                   "print('to stderr', file=sys.stderr)\n")
SLACK_MS = 600  # scheduling noise on a loaded 2-core machine (load 8+); still far below the 1 s SDK poll
# the upper bounds exist to catch. bench/fidelity_morph.py states the real error


@pytest.fixture
def fake(monkeypatch):
    with FakeMorph() as server:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        # unset for the test (the adapter sets it), and restored to unset afterwards
        monkeypatch.setenv("MORPH_HTTP_TRANSPORT_SHARDS", "")
        monkeypatch.delenv("MORPH_HTTP_TRANSPORT_SHARDS")
        yield server


def provider(settings=None):
    p = get_provider("morph", {"snapshot_id": BASE_SNAPSHOT, **(settings or {})})
    p.check()  # as the worker does: builds the SDK client outside any timed phase
    return p


def sample(p, snippet=GREET, env=None, timeouts=TIMEOUTS, timeout_s=10.0):
    spec = SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=timeout_s)
    return measure(p, spec, snippet, {"GREETING": "bonjour la ferme"} if env is None else env, timeouts)
