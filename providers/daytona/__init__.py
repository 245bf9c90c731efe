"""Daytona: declaration (settings, credentials, SDK). The adapter is ``providers.daytona.adapter``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from providers.spec import ProviderSettings, ProviderSpec

# Settings that existed once: a config still naming one gets this line instead of "not a setting".
REMOVED = {
    "claim_min_age_s": "claim_min_age_s was removed: a pool claim is no longer inferred from the worker's "
                       "clock (see providers/README.md, daytona, warm signal); delete the setting",
}


class DaytonaSettings(ProviderSettings):
    mode: Literal["cold", "warm_pool"] = "cold"
    snapshot: str | None = None
    target: str | None = Field(None, description="region; else DAYTONA_TARGET")
    pool_size: int = Field(0, ge=0, description="warm_pool: create the pool with this many members if missing")
    pool_fill_timeout_s: float = Field(120, gt=0)
    # The provider-side lifetime bound every create carries, so a crashed worker's sandbox cannot live on
    # until `farm sweep` runs: stopped after this many idle minutes, deleted this long after stopping,
    # and destroyed this long after creation whatever its state (0 switches that bound off).
    auto_stop_minutes: int = Field(15, ge=1)
    auto_delete_minutes: int = Field(0, ge=0)
    ttl_minutes: int = Field(60, ge=0)
    destroy_timeout_s: float = Field(60, gt=0)
    pause_with: Literal["pause", "stop"] = Field("pause", description="resume scenario: pause/start where the "
                                                 "sandbox class can pause, else stop/start (recorded as a fact)")
    pause_timeout_s: float = Field(60, gt=0, description="resume scenario: bound on pausing and on resuming")

    @model_validator(mode="before")
    @classmethod
    def _removed_settings(cls, data: Any) -> Any:
        for key, message in REMOVED.items():
            if isinstance(data, dict) and key in data:
                raise ValueError(message)
        return data

    @model_validator(mode="after")
    def _pool_needs_snapshot(self) -> "DaytonaSettings":
        if self.mode == "warm_pool" and not self.snapshot:
            raise ValueError("snapshot is required with mode warm_pool (a pool keeps one snapshot's sandboxes)")
        return self


SPEC = ProviderSpec(
    name="daytona", adapter="providers.daytona.adapter:DaytonaProvider", settings=DaytonaSettings,
    credentials=("DAYTONA_API_KEY",),
    credential_hint="create an API key in the Daytona dashboard and export it (or put it in .env)",
    extra="daytona", sdk=("daytona", "daytona-api-client", "daytona-toolbox-api-client"))
