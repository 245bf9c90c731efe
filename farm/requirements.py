"""A snippet's ``packages`` are PEP 508 requirement specifiers and nothing else.

They reach pip as arguments, so an entry that is really an option (``--no-index``, ``-e .``), a
path or a URL would change what pip does and where code comes from. Only names with optional
extras, version specifiers and markers pass; a direct reference (``name @ URL``) passes only when
its URL starts with an allow-listed prefix.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from packaging.requirements import InvalidRequirement, Requirement


class BadRequirement(ValueError):
    """One ``packages`` entry that is not an allowed requirement; the message says why."""


def check_requirement(entry: str, allowed_url_prefixes: Sequence[str] | None = ()) -> Requirement:
    """Parse one entry or raise BadRequirement naming it. ``allowed_url_prefixes=None`` leaves
    direct references to the provider that installs them (a snippet header cannot know them)."""
    text = entry.strip()
    if not text or text.startswith("-"):
        raise BadRequirement(f"{entry!r} is a pip option, not a requirement")
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise BadRequirement(f"{entry!r} is not a PEP 508 requirement (e.g. 'numpy>=1.26' or "
                             "'requests[socks]'): paths and bare URLs are not allowed") from None
    if req.url and allowed_url_prefixes is not None and not any(req.url.startswith(prefix) for prefix in allowed_url_prefixes):
        raise BadRequirement(f"{entry!r} names a URL; only a name and version are allowed unless "
                             "providers.local.allowed_package_urls lists its prefix")
    return req


def check_requirements(entries: Iterable[str], allowed_url_prefixes: Sequence[str] | None = ()) -> list[str]:
    """The entries, stripped, if every one is an allowed requirement."""
    return [str(check_requirement(e, allowed_url_prefixes)) for e in entries]
