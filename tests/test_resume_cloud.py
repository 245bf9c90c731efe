"""The ``resume`` scenario on cloud adapters, through their real SDKs against the local fakes
(tests/fakes/), with the truth known: the fake pauses in exactly P ms and resumes in exactly R ms.

e2b — seam: the HTTP servers behind the real ``e2b`` SDK (``E2B_API_URL``/``E2B_SANDBOX_URL`` at
tests/fakes/e2b_server.py). Error stated: ``pause`` is the pause call (answered P ms after it
arrived) plus one state read; ``resume`` is ``connect`` plus the code interpreter's /health polled
every ≤ 25 ms (providers/e2b/adapter.py RESOLUTION_S) until it answers R ms after connect arrived.
So pause ≥ P and resume ≥ R exactly (the truth is measured from the request's arrival, after the
farm's clock started); above, the error is one poll interval (25 ms) plus local round trips,
bounded loosely here (SLACK_MS) for a loaded machine.
"""

from __future__ import annotations

from farm.snippets import Snippet
from providers.e2b.adapter import RESOLUTION_S, E2BProvider
from tests.e2b_testing import LABELS, TIMEOUTS, fake, nowhere, spec  # noqa: F401
from workers.measure import measure_resume

SLACK_MS = 400
HELLO = Snippet(name="hello", code="print('hello')\n")


def test_e2b_resume_measured_within_its_resolution_and_the_marker_kept(fake):
    fake.pause_ms, fake.resume_ms = 150, 300
    out = measure_resume(E2BProvider({}), spec(), HELLO, {}, TIMEOUTS)
    assert out["outcome"] == "ok", out
    assert 150e6 <= out["pause_ns"] <= (150 + SLACK_MS) * 1e6
    assert 300e6 <= out["resume_ns"] <= (300 + RESOLUTION_S * 1000 + SLACK_MS) * 1e6
    assert out["tti_resume_ns"] > out["resume_ns"]
    assert out["sandbox"]["resume_polls"] >= 2  # the interpreter was polled while it came back
    assert out["sandbox"]["resume_sdk_attempts"] == 1 and "connect" in out["sandbox"]["resume_kind"]
    routes = fake.routes()
    assert routes.index("pause") < routes.index("connect") < len(routes) - 1 and routes[-1] == "kill"
    connect = next(r for r in fake.requests if r["route"] == "connect")
    assert connect["body"]["timeout"] == 3600  # the resumed sandbox keeps its lifetime bound
    assert fake.sandboxes == {}


def test_e2b_resume_that_loses_the_files_is_state_lost(fake):
    fake.lose_on_resume = True
    out = measure_resume(E2BProvider({}), spec(), HELLO, {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "state_lost", out
    assert "tti_resume_ns" not in out and out["destroy_ns"] is not None and fake.sandboxes == {}


def test_e2b_failed_pause_is_a_classified_error_in_its_phase(fake):
    fake.fail("pause", 500, "pause broke")
    out = measure_resume(E2BProvider({}), spec(), HELLO, {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_phase"] == "pause" and out["error_class"] == "provider_error"
    assert "pause_ns" not in out and fake.sandboxes == {}
