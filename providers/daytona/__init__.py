"""Daytona: declaration (settings, credentials, SDK). The adapter is ``providers.daytona.adapter``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from providers.spec import ProviderSettings, ProviderSpec


class DaytonaSettings(ProviderSettings):
    mode: Literal["cold", "warm_pool"] = "cold"
    snapshot: str | None = None
    target: str | None = Field(None, description="region; else DAYTONA_TARGET")
    pool_size: int = Field(0, ge=0, description="warm_pool: create the pool with this many members if missing")
    pool_fill_timeout_s: float = Field(120, gt=0)
    claim_min_age_s: float = Field(5, ge=0)
    auto_stop_minutes: int = Field(15, ge=0)
    destroy_timeout_s: float = Field(60, gt=0)

    @model_validator(mode="after")
    def _pool_needs_snapshot(self) -> "DaytonaSettings":
        if self.mode == "warm_pool" and not self.snapshot:
            raise ValueError("snapshot is required with mode warm_pool (a pool keeps one snapshot's sandboxes)")
        return self


SPEC = ProviderSpec(
    name="daytona", adapter="providers.daytona.adapter:DaytonaProvider", settings=DaytonaSettings,
    credentials=("DAYTONA_API_KEY",),
    credential_hint="create an API key in the Daytona dashboard and export it (or put it in .env)",
    extra="daytona", sdk=("daytona",))
