"""Sandbox providers behind a registry of names, imported lazily so a worker loads only its own SDK.

Each name maps to a light declaration module exposing ``SPEC`` (providers/spec.py): settings model,
credentials, extra, SDK distributions, adapter and sidecar locations. Declarations import no SDK,
so config validation and `farm doctor` work for every provider on any machine; ``provider_class``
imports the adapter (and with it the SDK) only when a provider is actually used.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Mapping

from providers.base import (ERROR_CLASSES, Provider, ProviderError, RunResult, Sandbox,
                            SandboxSpec)
from providers.spec import ProviderSettings, ProviderSpec

# name -> module holding its SPEC. Importing a declaration pulls in no SDK.
REGISTRY: dict[str, str] = {
    "local": "providers.local",
    "sim": "providers.sim",
    "daytona": "providers.daytona",
    "e2b": "providers.e2b",
    "modal": "providers.modal",
    "morph": "providers.morph",
    "codesandbox": "providers.codesandbox",
}

__all__ = ["ERROR_CLASSES", "Provider", "ProviderError", "RunResult", "Sandbox", "SandboxSpec",
           "REGISTRY", "UnknownProvider", "known_providers", "provider_class", "get_provider", "spec_of",
           "validate_settings"]


class UnknownProvider(ValueError):
    """An unknown provider name; the message lists the known ones."""


def known_providers() -> list[str]:
    return sorted(REGISTRY)


def check_name(name: str) -> str:
    """Return ``name`` if registered, else raise UnknownProvider with a "did you mean"."""
    if name in REGISTRY:
        return name
    close = difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownProvider(f"unknown provider {name!r}{hint}; known: {', '.join(known_providers())}")


def spec_of(name: str) -> ProviderSpec:
    """The declaration of a registered provider (no SDK is imported)."""
    return importlib.import_module(REGISTRY[check_name(name)]).SPEC


def validate_settings(name: str, raw: Mapping[str, Any] | None) -> ProviderSettings:
    """Validate ``providers.<name>`` from config.yml; ValueError with one line on a bad setting."""
    return spec_of(name).validate(raw)


def _import(target: str, name: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "providers":
            raise
        raise ProviderError(
            "config", f"provider {name!r} needs the {exc.name!r} package: pip install 'sandbox-farm[{name}]'",
        ) from None
    return getattr(module, attribute)


def provider_class(name: str) -> type[Provider]:
    """Import and return the adapter class; a missing SDK becomes a ProviderError('config')."""
    return _import(spec_of(name).adapter, name)


def sidecar_of(name: str) -> Any:
    """The provider's sidecar factory (``(settings: dict, log_dir) -> context manager``), or None."""
    spec = spec_of(name)
    return _import(spec.sidecar, name) if spec.sidecar else None


def get_provider(name: str, settings: Mapping[str, Any] | ProviderSettings | None = None) -> Provider:
    """Build a provider instance from its registry name and its per-provider settings."""
    return provider_class(name)(settings)
