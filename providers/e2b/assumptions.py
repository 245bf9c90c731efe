"""What the e2b adapter and its fake (tests/fakes/e2b_server.py) assume and only the real API can
confirm. Each check uses one or two sandboxes labelled for the farm and always kills them;
``farm doctor --live --provider e2b`` runs them with the user's key."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

from providers.base import FARM_MARKER, Assumption, AssumptionBroke


@contextmanager
def _sandboxes(provider: Any, count: int, **create: Any) -> Iterator[tuple[list[Any], dict[str, str]]]:
    """``count`` fresh sandboxes with a unique label, killed on the way out whatever happened."""
    from e2b_code_interpreter import Sandbox

    labels = {**FARM_MARKER, "farm-run": f"doctor-{uuid.uuid4().hex[:8]}", "farm-provider": "e2b",
              "farm-snippet": "doctor"}
    template = create.get("template") or provider.source()
    made: list[Any] = []
    try:
        for _ in range(count):
            made.append(Sandbox.create(template=template, timeout=300, metadata=labels,
                                       **provider.sdk_options()))
        yield made, labels
    finally:
        for sbx in made:
            try:
                sbx.kill(**provider.sdk_options())
            except Exception:  # left to its 300 s lifetime and `farm sweep`
                pass


def create_answer_means_usable(provider: Any) -> str:
    with _sandboxes(provider, 1) as (made, _):
        polled = provider.wait_usable(made[0], time.perf_counter() + 30)
    if polled.polls > 1:
        raise AssumptionBroke(f"the code interpreter answered only after {polled.polls} health checks "
                              f"({polled.waited_s * 1000:.0f} ms after the create answer)")
    return "held"


def edge_says_not_found_for_a_gone_sandbox(provider: Any) -> str:
    from providers.errors import ProviderError

    with _sandboxes(provider, 1) as (made, _):
        made[0].kill(**provider.sdk_options())
        try:
            provider.wait_usable(made[0], time.perf_counter() + 10)
        except ProviderError as exc:
            if exc.error_class == "not_found":
                return "held"
            raise AssumptionBroke(f"a killed sandbox's port answered {exc.error_class}: {exc}") from None
    raise AssumptionBroke("a killed sandbox's code interpreter still answered /health")


def paused_sandboxes_are_listed_page_by_page(provider: Any) -> str:
    from e2b import SandboxQuery, SandboxState
    from e2b_code_interpreter import Sandbox

    with _sandboxes(provider, 2) as (made, labels):
        made[0].pause(**provider.sdk_options())
        query = SandboxQuery(metadata=labels, state=[SandboxState.RUNNING, SandboxState.PAUSED])
        pages = Sandbox.list(query=query, limit=1, **provider.sdk_options())
        found: list[str] = []
        while pages.has_next:
            found += [s.sandbox_id for s in pages.next_items()]
    missing = {s.sandbox_id for s in made} - set(found)
    if missing:
        raise AssumptionBroke(f"listing one per page missed {sorted(missing)} (the first one paused)")
    return "held"


def create_timeout_is_the_lifetime(provider: Any) -> str:
    from e2b_code_interpreter import Sandbox

    with _sandboxes(provider, 1) as (made, _):
        info = Sandbox.get_info(made[0].sandbox_id, **provider.sdk_options())
    lifetime = (info.end_at - info.started_at).total_seconds()
    if abs(lifetime - 300) > 10:
        raise AssumptionBroke(f"created with timeout=300 s, the API says it ends after {lifetime:.0f} s")
    return "held"


def create_answer_names_the_snapshot(provider: Any) -> str:
    from e2b_code_interpreter import Sandbox

    from providers.e2b import wire
    from providers.e2b.adapter import names_source

    with _sandboxes(provider, 1) as (made, _):
        snapshot = made[0].create_snapshot(**provider.sdk_options()).snapshot_id
    try:
        with wire.watch() as seen, _sandboxes(provider, 1, template=snapshot):
            answer = seen.created()
    finally:
        Sandbox.delete_snapshot(snapshot, **provider.sdk_options())
    if not names_source(answer, snapshot):
        raise AssumptionBroke(f"a create from snapshot {snapshot} answered templateID "
                              f"{answer.get('templateID')!r}, alias {answer.get('alias')!r}")
    return "held"


def rate_limit_sends_retry_after(provider: Any) -> str:
    raise RuntimeError("can't tell without provoking a 429; without the header the farm's own backoff applies")


ASSUMPTIONS = (
    Assumption("create_answer_means_usable",
               "POST /v2/sandboxes answers once the sandbox runs, and the code interpreter (port 49999) "
               "answers GET /health at the first check", create_answer_means_usable),
    Assumption("edge_says_not_found_for_a_gone_sandbox",
               "the sandbox edge answers a killed sandbox's port with 502 '... was not found' "
               "(a port not yet listening: 502 'port is not open')", edge_says_not_found_for_a_gone_sandbox),
    Assumption("paused_sandboxes_are_listed_page_by_page",
               "GET /v2/sandboxes with state=running,paused lists paused sandboxes, and pages by x-next-token",
               paused_sandboxes_are_listed_page_by_page),
    Assumption("create_timeout_is_the_lifetime",
               "the create's timeout is the sandbox's lifetime: endAt = startedAt + timeout",
               create_timeout_is_the_lifetime),
    Assumption("create_answer_names_the_snapshot",
               "a create from a snapshot answers with the snapshot as its templateID or alias "
               "(the warm signal for warm: snapshot)", create_answer_names_the_snapshot),
    Assumption("rate_limit_sends_retry_after", "a 429 from the API carries Retry-After",
               rate_limit_sends_retry_after),
)
