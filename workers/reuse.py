"""The reuse verdict: was this sample's sandbox already seen in the run?

Three signals, any of which flags the sample ``reused`` (the names are what the sample records):

* ``marker``: the probe found a farm marker in the sandbox that another sample wrote. Decisive.
* ``sandbox_id``: the provider handed out a sandbox id another sample of the run already had.
* ``boot``: the boot identity (workers/identity.py: boot id, machine id, namespaces, PID 1 start,
  hostname) another sample saw, on a kernel that kept running in between: its uptime advanced by
  the wall time between the two sightings (within ``UPTIME_SLACK_S`` + 2 %). Clones of one memory
  snapshot share a boot identity by design, but each is restored at the snapshot's uptime, so
  their uptimes do not advance with the wall clock; and an identity shared by two sandboxes alive
  at the same time is a clone, never one sandbox handed out twice. Neither counts, and the sample
  says ``identity_shared``. An identity that is the worker's own (a process sandbox, or a fake that
  runs code as host subprocesses) is the same for every sandbox and is not weighed at all.

Sightings (JSON: member, sandbox id, uptime, wall ns) live in the run's ``{r}:seen`` hash (farm/store), so every worker on every host agrees.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from workers.identity import Identity

UPTIME_SLACK_S = 0.25


class Sightings(Protocol):
    def first_sightings(self, run_id: str, sightings: dict[str, str]) -> dict[str, str | None]: ...

    def sandbox_alive(self, run_id: str, sandbox_id: str) -> bool: ...


class ReuseCheck:
    """One sample's check, called by workers/measure.py after the probe (outside timed phases)."""

    def __init__(self, store: Sightings, run_id: str, member: str, attempt: int) -> None:
        self.store, self.run_id, self.member = store, run_id, member
        self.token = f"{run_id}|{member}#{attempt}"

    def verdict(self, sandbox_id: str, ident: Identity | None) -> tuple[list[str], dict[str, Any]]:
        """(signals, facts): the reuse signals found (empty = new) and what to record about them."""
        signals: list[str] = []
        facts: dict[str, Any] = {}
        now_ns = time.time_ns()
        uptime = ident.uptime_s if ident is not None else None
        mine = json.dumps({"member": self.member, "sandbox": sandbox_id, "uptime_s": uptime, "ns": now_ns})
        if ident is not None and ident.marker_found and ident.marker_found != self.token:
            signals.append("marker")
            facts["marker_by"] = ident.marker_found.split("|", 1)[-1]
        wanted = {f"sandbox:{sandbox_id}": mine}
        weigh_boot = ident is not None and bool(ident.fingerprint) and not ident.shares_worker
        if weigh_boot:
            wanted[f"boot:{ident.fingerprint}"] = mine
        seen = self.store.first_sightings(self.run_id, wanted)  # one round trip for both
        earlier = seen[f"sandbox:{sandbox_id}"]
        if earlier is not None and _member(earlier) != self.member:
            signals.append("sandbox_id")
            facts["sandbox_id_by"] = _member(earlier)
        if weigh_boot and ident is not None:
            earlier = seen[f"boot:{ident.fingerprint}"]
            if earlier is not None and _member(earlier) != self.member:
                if self._same_running_kernel(earlier, sandbox_id, ident.uptime_s, now_ns):
                    signals.append("boot")
                    facts["boot_by"] = _member(earlier)
                else:
                    facts["identity_shared"] = _member(earlier)
        return signals, facts

    def _same_running_kernel(self, earlier: str, sandbox_id: str, uptime_s: float | None, now_ns: int) -> bool:
        """The earlier sighting's kernel kept running until now: not a clone of the same snapshot."""
        seen = _sighting(earlier)
        their_id, their_uptime, their_ns = seen.get("sandbox"), seen.get("uptime_s"), seen.get("ns")
        if their_id and their_id != sandbox_id and self.store.sandbox_alive(self.run_id, their_id):
            return False  # both alive at once: two sandboxes sharing an identity (clones)
        if uptime_s is None or their_uptime is None or their_ns is None:
            return True  # no uptime to tell clones apart: the identity alone speaks
        wall_s = (now_ns - int(their_ns)) / 1e9
        return abs((uptime_s - float(their_uptime)) - wall_s) <= UPTIME_SLACK_S + 0.02 * abs(wall_s)


def _sighting(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _member(sighting: str) -> str | None:
    return _sighting(sighting).get("member")
