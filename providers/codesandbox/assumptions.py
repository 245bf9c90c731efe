"""What the CodeSandbox adapter (and node-csb's fake API) assume about the real API.

Each check runs against the real API through node-csb with the user's key (`farm doctor --live`),
creates at most one sandbox, and always deletes it. The fake (node-csb/test/fake-api.js) encodes
these beliefs; its tests name the assumption they rely on.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from typing import Any, Iterator

from providers.base import Assumption, AssumptionBroke, SandboxSpec, sandbox_labels


@contextmanager
def _one_sandbox(provider: Any, snippet: str = "doctor") -> Iterator[tuple[Any, dict[str, str]]]:
    labels = sandbox_labels(f"doctor-{secrets.token_hex(4)}", provider.name, snippet, 0)
    sandbox = provider.create(SandboxSpec(labels=labels, timeout_s=120))
    try:
        yield sandbox, labels
    finally:
        provider.delete_by_id(sandbox.id)


def tags_kept_verbatim(provider: Any) -> str:
    with _one_sandbox(provider) as (sandbox, labels):
        found = provider.list_leftovers(labels)
        if sandbox.id not in found:
            raise AssumptionBroke(f"a sandbox tagged {sorted(labels.items())} was not listed under those exact tags")
    return "tags of [A-Za-z0-9._:-] came back exactly as sent"


def list_filter_means_all_tags(provider: Any) -> str:
    with _one_sandbox(provider, "doctor-a") as (sandbox, labels):
        other = {**labels, "farm-snippet": "doctor-b"}
        raw = provider.list_api_raw(other)
        if sandbox.id in raw:
            raise AssumptionBroke("the API's tag filter matched a sandbox that carries only some of the tags "
                                  "(node-csb filters again, so sweep stays correct)")
        if sandbox.id not in provider.list_api_raw(labels):
            raise AssumptionBroke("the API's tag filter did not find a sandbox carrying every tag")
    return "the list filter returned the sandbox for all of its tags and not for a partial match"


def delete_removes_the_record(provider: Any) -> str:
    with _one_sandbox(provider) as (sandbox, labels):
        provider.destroy(sandbox)  # node-csb waits until GET /sandbox/{id} answers 404
        if sandbox.id in provider.list_leftovers(labels):
            raise AssumptionBroke("the sandbox was still listed after delete answered and its GET said 404")
    return "after delete, the sandbox's GET answered 404 and the list no longer showed it"


def fresh_create_reports_fork(provider: Any) -> str:
    with _one_sandbox(provider) as (sandbox, _):
        bootup = sandbox.facts.get("bootup_type")
        if bootup not in ("FORK", "CLEAN"):
            raise AssumptionBroke(f"a fresh create from the template reported bootupType {bootup!r}")
    return f"a fresh create reported bootupType {bootup} (recorded as warm={sandbox.warm!r})"


ASSUMPTIONS = (
    Assumption("csb_tags_verbatim", "tags made of letters, digits and . _ : - are stored and listed exactly "
               "as sent (node-csb replaces any other character by _)", tags_kept_verbatim),
    Assumption("csb_list_filter_all_tags", "GET /sandbox?tags=a,b returns sandboxes carrying every given tag "
               "(node-csb filters again, so a looser filter only costs pages)", list_filter_means_all_tags),
    Assumption("csb_delete_removes_record", "DELETE /vm/{id} removes the sandbox itself, not only its VM: "
               "GET /sandbox/{id} answers 404 soon after and the list drops it", delete_removes_the_record),
    Assumption("csb_bootup_type", "a create from a template answers bootupType FORK (restored from the "
               "template's snapshot; recorded as warm 'fork') or CLEAN (a cold boot)", fresh_create_reports_fork),
)
