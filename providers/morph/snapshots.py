"""The snapshots the Morph adapter prepares in ``warm()``, before anything is timed.

- The base snapshot, when ``snapshot_id`` is unset (so ``MORPH_API_KEY`` alone is enough, as in the AI
  Sandbox Benchmark): a snapshot of Morph's minimal image at a small spec, booted once to make sure
  the interpreter and pip are there, then snapshotted. Its digest is a hash of that recipe (image,
  spec, setup command), so every later run and every worker with the same settings finds and reuses
  it; it carries no TTL, and the facts name it.
- The warm snapshot (``mode: snapshot``, no ``warm_snapshot_id``): a snapshot of an instance booted
  from the base that ran a short Python warm-up, digest ``sandbox-farm-warm-<base>``, TTL
  ``warm_snapshot_ttl_s``.

Worker processes on one machine take turns (a file lock per digest), so the second finds the
first's snapshot; workers on different machines starting at the same moment may each make one, and
later ones reuse the newest. Snapshot readiness here is polled once a second at most: nothing here
is timed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import tempfile
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from providers.base import FARM_MARKER, ProviderError
from providers.morph.shell import shell_command
from providers.polling import poll_until

if TYPE_CHECKING:
    from providers.morph.adapter import MorphProvider

PREPARE_POLL_MAX_S = 1.0
WARM_UP = "import json, os, sqlite3, subprocess, sys; open('.farm-warm', 'w').write('1'); print('farm-warm')"


def setup_command(python: str) -> str:
    """Make sure the interpreter and its pip exist (a no-op when the image already has them)."""
    py = shlex.quote(python)
    return (f"command -v {py} >/dev/null && {py} -m pip --version >/dev/null || "
            "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip)")


def base_digest(provider: "MorphProvider") -> str:
    s = provider.settings
    recipe = "|".join(map(str, (s.image_id, s.vcpus, s.memory_mb, s.disk_mb, setup_command(s.python))))
    return f"sandbox-farm-base-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def ensure_base(provider: "MorphProvider") -> tuple[str, dict[str, Any]]:
    """The base snapshot's id and facts: reused by digest, else made from ``image_id``."""
    s = provider.settings
    digest = base_digest(provider)
    facts: dict[str, Any] = {"digest": digest, "image": s.image_id, "vcpus": s.vcpus, "memory_mb": s.memory_mb,
                             "disk_mb": s.disk_mb, "made_by_farm": True}
    deadline = time.perf_counter() + s.prepare_timeout_s
    with one_at_a_time(digest, s.prepare_timeout_s):
        found = newest_ready(provider, digest)
        if found:
            return found, {"id": found, **facts, "reused": True}
        made = make_base(provider, digest, deadline)
    return made, {"id": made, **facts, "reused": False}


def make_base(provider: "MorphProvider", digest: str, deadline: float) -> str:
    s = provider.settings
    body = {"image_id": s.image_id, "vcpus": s.vcpus, "memory": s.memory_mb, "disk_size": s.disk_mb,
            "digest": f"{digest}-image", "metadata": {**FARM_MARKER, "farm-role": "image"}}
    image = wait_snapshot(provider, provider.api("POST", "/snapshot", deadline=deadline, json=body), deadline)
    return snapshot_after(provider, image, setup_command(s.python), digest, None, "base", deadline)


def ensure_warm(provider: "MorphProvider", base: str | None) -> tuple[str, dict[str, Any]]:
    """The warm snapshot's id and facts: the configured one (checked), a reused one, or a new one."""
    s = provider.settings
    if s.warm_snapshot_id:
        provider.client().snapshots.get(s.warm_snapshot_id)  # a 404 here is a clear not_found, before any sample
        return s.warm_snapshot_id, {"id": s.warm_snapshot_id, "made_by_farm": False}
    assert base is not None
    digest = f"sandbox-farm-warm-{base}"
    deadline = time.perf_counter() + s.prepare_timeout_s
    with one_at_a_time(digest, s.prepare_timeout_s):
        found = newest_ready(provider, digest)
        if found:
            return found, {"id": found, "digest": digest, "made_by_farm": True, "reused": True}
        made = snapshot_after(provider, base, shell_command(s.python, WARM_UP, {}), digest, s.warm_snapshot_ttl_s,
                              "warm", deadline)
    return made, {"id": made, "digest": digest, "made_by_farm": True, "reused": False}


@contextmanager
def one_at_a_time(digest: str, timeout_s: float) -> Iterator[None]:
    """Worker processes on this machine prepare a snapshot one at a time, so the next one finds it."""
    with open(os.path.join(tempfile.gettempdir(), f"{digest}.lock"), "a") as lock:
        def take() -> bool | None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return None

        poll_until(take, timeout=timeout_s, what=f"morph: waiting for another worker preparing {digest}", max_s=0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def newest_ready(provider: "MorphProvider", digest: str) -> str | None:
    found = [snap for snap in provider.client().snapshots.list(digest=digest) if snap.status == "ready"]
    return max(found, key=lambda snap: snap.created).id if found else None


def snapshot_after(provider: "MorphProvider", start_from: str, command: str, digest: str, ttl_s: int | None,
                   role: str, deadline: float) -> str:
    """Boot an instance from ``start_from``, run ``command`` (it must succeed: a snapshot of a failed
    set-up is no base and no warm start), snapshot it with ``digest`` and stop the instance."""
    remaining = max(deadline - time.perf_counter(), 0.0)
    inst, _ = provider.start_instance(start_from, {**FARM_MARKER, "farm-role": role}, remaining)
    try:
        done = inst.exec(command, timeout=max(deadline - time.perf_counter(), 1.0))
        if done.exit_code != 0:
            raise ProviderError("provider_error", f"morph {role} snapshot: the set-up exited {done.exit_code}: "
                                f"{(done.stderr or done.stdout).strip()[-200:]}")
        body: dict[str, Any] = {"metadata": {**FARM_MARKER, "farm-role": role, "farm-from": start_from}}
        if ttl_s is not None:
            body["ttl_seconds"] = ttl_s
        answer = provider.api("POST", f"/instance/{inst.id}/snapshot", deadline=deadline,
                              params={"digest": digest}, json=body)
        made = wait_snapshot(provider, answer, deadline)
    except BaseException:
        provider.abandon(inst.id)  # best effort, so the failure that matters is the one reported
        raise
    provider.stop_instance(inst.id, missing_ok=True)  # failing here fails warm(); the next try reuses `made`
    return made


def wait_snapshot(provider: "MorphProvider", answer: dict[str, Any], deadline: float) -> str:
    """The snapshot's id once the API says it is ready; a failed one is an error."""
    snapshot_id = answer["id"]

    def ready() -> str | None:
        status = provider.api("GET", f"/snapshot/{snapshot_id}", deadline=deadline).get("status")
        if status == "failed":
            raise ProviderError("provider_error", f"morph snapshot {snapshot_id} failed")
        return snapshot_id if status == "ready" else None

    if answer.get("status") == "ready":
        return snapshot_id
    return poll_until(ready, timeout=max(deadline - time.perf_counter(), 0.0), what=f"morph snapshot {snapshot_id}",
                      max_s=PREPARE_POLL_MAX_S).value

