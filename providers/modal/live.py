"""What the Modal adapter and its fake (tests/fakes/modal_server.py) assume about the real API.

Each check makes one or two sandboxes with the user's tokens (`farm doctor --live`), always
terminated, and returns "held" or raises ``AssumptionBroke``; anything else means "can't tell".
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

from providers.base import Assumption, AssumptionBroke, Provider, SandboxSpec, sandbox_labels


@contextmanager
def _sandbox(provider: Provider, **extra_labels: str) -> Iterator[Any]:
    labels = {**sandbox_labels("doctor-live", "modal", "assumption", 0), **extra_labels}
    sandbox = provider.create(SandboxSpec(labels=labels, timeout_s=120))
    try:
        yield sandbox
    finally:
        provider.destroy(sandbox)


def _ready_means_usable(provider: Provider) -> str:
    start = time.perf_counter()
    with _sandbox(provider) as sandbox:
        created = time.perf_counter()
        result = provider.run(sandbox, "print('ok')", {}, 60)
        if result.exit_code != 0 or "ok" not in result.stdout:
            raise AssumptionBroke(f"the first exec after wait_until_ready gave {result.exit_code}: "
                                  f"{result.stderr[:120]}")
        ran = time.perf_counter()
    return f"create until ready {1000 * (created - start):.0f} ms, then a first exec in {1000 * (ran - created):.0f} ms"


def _exec_timeout_is_minus_one(provider: Provider) -> str:
    with _sandbox(provider) as sandbox:
        proc = sandbox.handle.exec("sleep", "10", timeout=1)
        code = proc.wait()
        if code != -1:
            raise AssumptionBroke(f"an exec past its 1 s timeout returned {code}, not -1")
    return "sleep 10 with timeout=1 returned -1"


def _list_filters_by_all_tags(provider: Provider) -> str:
    marker = uuid.uuid4().hex[:12]
    with _sandbox(provider, **{"farm-live": marker}) as sandbox:
        found = provider.list_leftovers({"farm-live": marker})
        if sandbox.id not in found:
            raise AssumptionBroke("Sandbox.list(app_id, tags) did not return a sandbox carrying the tags")
        other = provider.list_leftovers({"farm-live": marker, "farm-run": "no-such-run"})
        if sandbox.id in other:
            raise AssumptionBroke("Sandbox.list matched on some of the tags, not all of them")
    return "listed by its tags, and not by a tag set it only partly carries"


def _terminate_wait_means_exited(provider: Provider) -> str:
    with _sandbox(provider) as sandbox:
        pass  # leaving the block destroys it: terminate(wait=True)
    code = sandbox.handle.poll()
    if code is None:
        raise AssumptionBroke("terminate(wait=True) returned while Modal still reported the sandbox running")
    return f"exited with {code} when terminate returned"


ASSUMPTIONS = (
    Assumption("modal.ready-means-usable",
               "a sandbox created with a readiness probe (`true`) passes wait_until_ready once it can run "
               "processes, and an exec right after works", _ready_means_usable),
    Assumption("modal.exec-timeout-is-minus-one",
               "an exec past its timeout reports return code -1 (not an exception)", _exec_timeout_is_minus_one),
    Assumption("modal.list-filters-by-all-tags",
               "Sandbox.list(app_id=..., tags=...) returns the app's running sandboxes carrying all the tags",
               _list_filters_by_all_tags),
    Assumption("modal.terminate-wait-means-exited",
               "terminate(wait=True) returns only after the sandbox has exited", _terminate_wait_means_exited),
)
