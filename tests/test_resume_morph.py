"""The ``resume`` scenario on Morph through its real SDK (``morphcloud``), seam: the SDK's base URL
(``MORPH_BASE_URL`` at tests/fakes/morph_server.py). The fake's instance reports ``saving`` for
exactly P ms after a pause request and ``pending`` for exactly R ms after a resume request.

Error stated: ``pause``/``resume`` are the POST plus status reads every ≤ 25 ms
(providers/polling.py DEFAULT_MAX_S) until ``paused``/``ready``; the truth starts when the fake
handles the request, after the farm's clock started, so a measured value is ≥ P (R); above, one
poll interval plus round trips, bounded loosely (SLACK_MS) for a loaded machine.
"""

from __future__ import annotations

from providers.base import SandboxSpec
from providers.polling import DEFAULT_MAX_S
from tests.morph_testing import GREET, LABELS, SLACK_MS, TIMEOUTS, fake, provider  # noqa: F401
from workers.measure import measure_resume


def _resume_sample(p):
    spec = SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=10)
    return measure_resume(p, spec, GREET, {"GREETING": "back again"}, TIMEOUTS)


def test_morph_pause_and_resume_measured_within_the_poll_resolution(fake):
    fake.pause_ms, fake.resume_ms = 200, 300
    out = _resume_sample(provider())
    assert out["outcome"] == "ok", out
    assert 200e6 <= out["pause_ns"] <= (200 + DEFAULT_MAX_S * 1000 + SLACK_MS) * 1e6
    assert 300e6 <= out["resume_ns"] <= (300 + DEFAULT_MAX_S * 1000 + SLACK_MS) * 1e6
    assert out["tti_resume_ns"] > out["resume_ns"] and "back again" in out["output"]
    assert out["sandbox"]["pause_polls"] >= 2 and out["sandbox"]["resume_polls"] >= 2
    assert fake.alive() == []


def test_morph_resume_without_the_files_is_state_lost(fake):
    fake.lose_on_resume = True
    out = _resume_sample(provider())
    assert out["outcome"] == "error" and out["error_class"] == "state_lost", out
    assert out["error_phase"] == "resume" and fake.alive() == []
