"""The ``resume`` scenario on Daytona through the SDK's generated clients, seam: ``DAYTONA_API_URL``
at tests/fakes/daytona_server.py (toolbox calls go back to it). The fake goes ``pausing`` (or
``stopping``) for exactly P ms after the request, then ``paused``/``stopped``; ``start`` goes
``resuming``/``starting`` for exactly R ms, then ``started``.

Error stated: the POST plus GET every ≤ 25 ms (providers/polling.py) until the state is reached;
the truth starts when the fake handles the request (after the farm's clock started), so measured
≥ P (R); above, one poll interval plus round trips, bounded loosely (SLACK_MS) for a loaded machine.
"""

from __future__ import annotations

import pytest

from providers.base import SandboxSpec
from providers.polling import DEFAULT_MAX_S
from tests.test_provider_daytona import GREET, LABELS, TIMEOUTS, fake, provider  # noqa: F401
from workers.measure import measure_resume

SLACK_MS = 400


def _resume_sample(p):
    spec = SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=10)
    return measure_resume(p, spec, GREET, {"GREETING": "back"}, TIMEOUTS)


@pytest.mark.parametrize("pause_with", ["pause", "stop"])
def test_daytona_pause_and_start_measured_within_the_poll_resolution(fake, pause_with):
    fake.pause_ms, fake.resume_ms = 200, 300
    out = _resume_sample(provider({"pause_with": pause_with}))
    assert out["outcome"] == "ok", out
    assert 200e6 <= out["pause_ns"] <= (200 + DEFAULT_MAX_S * 1000 + SLACK_MS) * 1e6
    assert 300e6 <= out["resume_ns"] <= (300 + DEFAULT_MAX_S * 1000 + SLACK_MS) * 1e6
    assert out["tti_resume_ns"] > out["resume_ns"] and "hello back" in out["output"]
    assert out["sandbox"]["pause_with"] == pause_with  # which of the two was measured: a fact
    assert [c for c in fake.routes() if c in ("pause", "stop", "start")] == [pause_with, "start"]
    assert fake.alive() == []


def test_daytona_start_without_the_files_is_state_lost(fake):
    fake.lose_on_resume = True
    out = _resume_sample(provider())
    assert out["outcome"] == "error" and out["error_class"] == "state_lost", out
    assert fake.alive() == []


def test_daytona_class_that_cannot_pause_is_an_error_naming_it(fake):
    fake.can_pause = False
    out = _resume_sample(provider())
    assert out["outcome"] == "error" and out["error_phase"] == "pause" and "pausing" in out["error"], out
    assert fake.alive() == []
