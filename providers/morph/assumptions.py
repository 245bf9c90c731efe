"""What the Morph adapter and tests/fakes/morph_server.py assume about the real API, checked live by
``farm doctor --live --provider morph``: each check uses one instance and always stops it."""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from providers.base import FARM_MARKER, Assumption, AssumptionBroke
from providers.morph.shell import shell_command
from providers.polling import poll_until

if TYPE_CHECKING:
    from morphcloud.api import Instance

    from providers.morph.adapter import MorphProvider

CHECK_TIMEOUT_S = 120.0


def _base(provider: "MorphProvider") -> str:
    if provider.snapshot_id is None:
        from providers.morph.snapshots import ensure_base

        provider.snapshot_id, _ = ensure_base(provider)
    return provider.snapshot_id


@contextmanager
def _instance(provider: "MorphProvider", **metadata: str) -> Iterator["Instance"]:
    inst, _ = provider.start_instance(_base(provider), {**FARM_MARKER, "farm-role": "doctor", **metadata},
                                      CHECK_TIMEOUT_S)
    try:
        yield inst
    except BaseException:
        provider.abandon(inst.id)  # the check's own verdict is what gets reported
        raise
    provider.stop_instance(inst.id, missing_ok=True)


def boot_states(provider: "MorphProvider") -> str:
    deadline = time.perf_counter() + CHECK_TIMEOUT_S
    body = {"metadata": {**FARM_MARKER, "farm-role": "doctor"}, "ttl_seconds": provider.settings.ttl_seconds,
            "ttl_action": provider.settings.ttl_action}
    first = provider.api("POST", "/instance", deadline=deadline, params={"snapshot_id": _base(provider)}, json=body)
    seen = [first.get("status")]
    def probe() -> Any:
        seen.append(provider.api("GET", f"/instance/{first['id']}", deadline=deadline).get("status"))
        return True if seen[-1] != "pending" else None

    try:
        poll_until(probe, timeout=CHECK_TIMEOUT_S, what="morph boot states")
    finally:
        provider.abandon(first["id"])
    path = " -> ".join(dict.fromkeys(str(s) for s in seen))
    if not set(seen) <= {"pending", "ready"} or seen[-1] != "ready":
        raise AssumptionBroke(f"statuses seen while booting: {path}")
    return f"statuses seen while booting: {path}"


def exec_shell(provider: "MorphProvider") -> str:
    with _instance(provider) as inst:
        out = inst.exec('X=farm; echo "$X-$((20+22))"', timeout=60)
        env = inst.exec(shell_command(provider.settings.python, "import os; print(os.environ['FARM_Q'])",
                                      {"FARM_Q": "it's $(not run)"}), timeout=60)
    if out.stdout.strip() != "farm-42" or env.stdout.strip() != "it's $(not run)":
        raise AssumptionBroke(f"one-string exec printed {out.stdout.strip()!r} and {env.stdout.strip()!r}")
    return "one-string exec ran through a shell; quoted env values arrived as they are"


def gone_after_stop(provider: "MorphProvider") -> str:
    with _instance(provider) as inst:
        reads = provider.stop_instance(inst.id)  # raises a timeout ProviderError if it never answers 404
    return f"GET answered 404 after {reads} status read(s) following DELETE"


def list_by_metadata(provider: "MorphProvider") -> str:
    tag = secrets.token_hex(6)
    with _instance(provider, **{"farm-check": tag}) as inst:
        page = provider.client().instances.list_paginated(page=1, limit=1, metadata={"farm-check": tag})
        listed = provider.list_leftovers({"farm-check": tag})
    if [i.id for i in page.instances] != [inst.id] or listed != [inst.id]:
        raise AssumptionBroke(f"listing by metadata gave {[i.id for i in page.instances]} / {listed}, "
                              f"expected [{inst.id}]")
    return "/instance/list filtered by metadata and paged"


def ttl_recorded(provider: "MorphProvider") -> str:
    with _instance(provider) as inst:
        ttl = provider.api("GET", f"/instance/{inst.id}").get("ttl") or {}
    wanted = (provider.settings.ttl_seconds, provider.settings.ttl_action)
    if (ttl.get("ttl_seconds"), ttl.get("ttl_action")) != wanted:
        raise AssumptionBroke(f"instance reports ttl {ttl}, expected ttl_seconds/ttl_action {wanted}")
    return f"instance reports ttl_seconds={wanted[0]}, ttl_action={wanted[1]}"


def booted_from(provider: "MorphProvider") -> str:
    base = _base(provider)
    with _instance(provider) as inst:
        if inst.refs.snapshot_id != base:
            raise AssumptionBroke(f"refs.snapshot_id is {inst.refs.snapshot_id!r}, started from {base!r}")
    return "refs.snapshot_id names the snapshot the instance started from"


def base_python(provider: "MorphProvider") -> str:
    python = provider.settings.python
    with _instance(provider) as inst:
        run = inst.exec(shell_command(python, "import sys; print(sys.version.split()[0])", {}), timeout=60)
        pip = inst.exec(f"{python} -m pip --version", timeout=60)
    if run.exit_code != 0 or pip.exit_code != 0:
        raise AssumptionBroke(f"{python} exited {run.exit_code}, pip exited {pip.exit_code}: "
                              f"{(run.stderr or pip.stderr).strip()[-160:]}")
    return f"{python} {run.stdout.strip()} with pip"


ASSUMPTIONS = (
    Assumption("morph.boot-states", "a new instance answers status 'pending' until 'ready', no other value",
               boot_states),
    Assumption("morph.exec-shell", "exec of one string runs it through a shell (env K=V, quoting, $VAR)", exec_shell),
    Assumption("morph.gone-after-stop", "after DELETE /instance/{id}, GET answers 404 within destroy_wait_s",
               gone_after_stop),
    Assumption("morph.list-by-metadata", "/instance/list filters by metadata[k]=v and pages (has_next)",
               list_by_metadata),
    Assumption("morph.ttl-recorded", "an instance reports back the ttl_seconds and ttl_action it was started with",
               ttl_recorded),
    Assumption("morph.booted-from", "refs.snapshot_id names the snapshot an instance started from (warm signal)",
               booted_from),
    Assumption("morph.base-python", "the base snapshot runs `python -c` and `python -m pip`", base_python),
)
