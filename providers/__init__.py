"""Sandbox providers behind a registry of names, imported lazily so a worker loads only its own SDK."""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Mapping

from providers.base import (ERROR_CLASSES, Provider, ProviderError, RunResult, Sandbox,
                            SandboxSpec)

# name -> "module:Class". Importing a module is what pulls in its SDK, so nothing is imported here.
REGISTRY: dict[str, str] = {
    "local": "providers.local:LocalProvider",
    "sim": "providers.sim:SimProvider",
    "daytona": "providers.daytona:DaytonaProvider",
    "e2b": "providers.e2b:E2BProvider",
    "modal": "providers.modal:ModalProvider",
    "morph": "providers.morph:MorphProvider",
    "codesandbox": "providers.codesandbox:CodeSandboxProvider",
}

__all__ = ["ERROR_CLASSES", "Provider", "ProviderError", "RunResult", "Sandbox", "SandboxSpec",
           "REGISTRY", "UnknownProvider", "known_providers", "provider_class", "get_provider"]


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


def provider_class(name: str) -> type[Provider]:
    """Import and return the provider class; a missing SDK becomes a ProviderError('config')."""
    module_name, _, class_name = REGISTRY[check_name(name)].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ProviderError("config", f"provider {name!r} is not part of this installation") from None
        if exc.name and exc.name.split(".")[0] == "providers":
            raise
        raise ProviderError(
            "config",
            f"provider {name!r} needs the {exc.name!r} package: pip install 'sandbox-farm[{name}]'",
        ) from None
    return getattr(module, class_name)


def get_provider(name: str, settings: Mapping[str, Any] | None = None) -> Provider:
    """Build a provider instance from its registry name and its per-provider settings."""
    return provider_class(name)(settings)
