"""What a provider declares about itself, importable without its SDK.

Each provider module (``providers/<name>/__init__.py`` for SDK-backed ones) declares a ``SPEC``:
its settings model, the environment variables holding its credentials, the pip extra and
distributions that make up its SDK, where its adapter class lives, and an optional sidecar (a
helper process the farm starts next to embedded workers, e.g. node-csb). Loading config.yml
validates every ``providers.<name>`` block against its model, so a bad setting fails before any
task is sent, on a machine that does not even have that provider's SDK.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ProviderSettings(BaseModel):
    """Base for every provider's settings: unknown keys are errors, numbers must be finite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        for key, value in (data or {}).items() if isinstance(data, Mapping) else ():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, not {value!r}")
        return data

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style read, for code that treats settings as a dict (manifests, facts)."""
        value = getattr(self, key, None)
        return default if value is None else value


@dataclass(frozen=True)
class ProviderSpec:
    """A provider's declaration; ``adapter`` and ``sidecar`` are "module:attribute" strings,
    imported only when needed, so a worker loads only its own provider's SDK."""

    name: str
    adapter: str
    settings: type[ProviderSettings] = ProviderSettings
    credentials: tuple[str, ...] = ()        # environment variables that must be set (names only)
    credential_hint: str = ""                # how to get them, for the one-line error
    extra: str | None = None                 # pip extra that installs the SDK
    sdk: tuple[str, ...] = ()                # distributions whose versions `farm doctor` and facts show
    sidecar: str | None = None               # "module:function(settings: dict, log_dir) -> context manager"
    runs_on_worker_host: bool = False        # its phases use the worker host's CPU (farm/hosts.py warns)

    def validate(self, raw: Mapping[str, Any] | None) -> ProviderSettings:
        """The settings model for ``raw``; raises ValueError with one line naming the key."""
        try:
            return self.settings.model_validate(dict(raw or {}))
        except ValidationError as exc:
            raise ValueError(settings_error(self.name, self.settings, exc)) from None


def settings_error(provider: str, model: type[BaseModel], exc: ValidationError) -> str:
    """One line for the first problem, naming ``providers.<name>.<key>``, with a "did you mean"."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in ("providers", provider, *err["loc"]))
    if err["type"] == "extra_forbidden":
        known = sorted(model.model_fields)
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{loc} is not a setting{hint}; settings: {', '.join(known) or 'none'}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}"
