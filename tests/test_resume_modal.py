"""The ``resume`` scenario on Modal: the public snapshot_filesystem path, its own kind (Modal has no
public pause; pause and memory snapshots are ``_experimental_``). Seam: the real ``modal`` SDK
against tests/fakes/modal_server.py over real gRPC (``MODAL_SERVER_URL``).

"pause" = ``snapshot_filesystem`` + ``terminate(wait=True)`` of the original; "resume" = a NEW
sandbox from the snapshot image until Modal's readiness probe passes: a cold boot of a copy (files
kept, memory not), which the sample says (``resume_kind``). Truth: the fake answers the snapshot
exactly S ms after its request, and the new sandbox is ready exactly B ms after its create arrived.
Error stated: measured ≥ S (B); above, the terminate and the SDK's gRPC round trips (readiness is
the server's answer, no client polling), bounded loosely (SLACK_MS) for a loaded machine.
"""

from __future__ import annotations

from farm.snippets import Snippet
from tests.test_provider_modal import LABELS, SPEC, TIMEOUTS, fake, ready_provider  # noqa: F401
from workers.measure import measure_resume

SLACK_MS = 1500
HELLO = Snippet(name="hello", code="print('hello')\n")


class Register:
    def __init__(self) -> None:
        self.held: set[str] = set()

    def created(self, sandbox_id: str) -> None:
        self.held.add(sandbox_id)

    def released(self, sandbox_id: str) -> None:
        self.held.discard(sandbox_id)


def test_modal_snapshot_then_new_sandbox_measured_and_the_files_kept(fake):
    fake.snapshot_ms, fake.boot_ms = 200, 300
    register = Register()
    out = measure_resume(ready_provider(), SPEC, HELLO, {}, TIMEOUTS, register=register)
    assert out["outcome"] == "ok", out
    assert 200e6 <= out["pause_ns"] <= (200 + SLACK_MS) * 1e6
    assert 300e6 <= out["resume_ns"] <= (300 + SLACK_MS) * 1e6
    assert out["tti_resume_ns"] > out["resume_ns"] and "hello" in out["output"]
    assert "cold boot of a copy" in out["sandbox"]["resume_kind"]
    assert out["sandbox"]["resume_from"] != "" and out["sandbox"]["snapshot_image"].startswith("im-snap")
    creates = fake.requests("SandboxCreateV2")
    assert [c.definition.image_id for c in creates][1] == out["sandbox"]["snapshot_image"]
    assert fake.alive() == set() and register.held == set()  # both sandboxes ended, the register follows


def test_modal_snapshot_without_the_files_is_state_lost(fake):
    fake.lose_snapshot_files = True
    out = measure_resume(ready_provider(), SPEC, HELLO, {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "state_lost", out
    assert fake.alive() == set()
