"""The ``resume`` scenario on CodeSandbox: node-csb's hibernate/resume endpoints on the REAL
``@codesandbox/sdk``, seam CSB_BASE_URL -> node-csb/test/fake-api.js (REST + agent websocket).

Truth: after a hibernate, the fake answers the SDK's start (``sandboxes.resume``) exactly N ms
after that request arrived, with bootup_type RESUME and the VM's files kept; with ``expire`` it
boots CLEAN without them. Error stated: ``resume`` = node-csb's resume + connect (websocket join),
so measured ≥ N; above N, the connect and the local round trips (no polling: the API's answer and
the agent's join are events), bounded loosely (SLACK_MS) for a loaded machine. ``pause`` is the
hibernate call until the API accepted it: CodeSandbox reports no paused state to wait for.
"""

from __future__ import annotations

from farm.snippets import parse_snippet
from providers.base import SandboxSpec
from tests.test_provider_codesandbox_wire import LABELS, wire, wired  # noqa: F401
from workers.measure import measure_resume

SLACK_MS = 1500
SNIPPET = parse_snippet('# /// farm\n# name = "w"\n# ///\nprint("wired")\n', "w.py")
TIMEOUTS = {"create": 30, "ready": 30, "setup": 30, "run": 30, "destroy": 30}


def _resume_sample(p):
    return measure_resume(p, SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=30), SNIPPET, {}, TIMEOUTS)


def test_codesandbox_hibernate_and_resume_through_node_csb(wire, wired):
    fake, _ = wire
    fake.set_boot_ms(300)  # the fork's boot and the start after hibernate: 300 ms each
    try:
        out = _resume_sample(wired)
    finally:
        fake.set_boot_ms(0)
    assert out["outcome"] == "ok", out
    assert out["pause_ns"] > 0 and 300e6 <= out["resume_ns"] <= (300 + SLACK_MS) * 1e6
    assert out["tti_resume_ns"] > out["resume_ns"] and "wired" in out["output"]
    assert out["sandbox"]["resume_bootup_type"] == "RESUME"
    paths = [r["path"] for r in fake.requests()]
    assert any(p.endswith("/hibernate") for p in paths)


def test_codesandbox_expired_snapshot_boots_clean_and_is_state_lost(wire, wired):
    fake, _ = wire
    fake.set_expire(True)
    try:
        out = _resume_sample(wired)
    finally:
        fake.set_expire(False)
    assert out["outcome"] == "error" and out["error_class"] == "state_lost", out
    assert out["sandbox"]["resume_bootup_type"] == "CLEAN"  # the provider's own word for what happened
