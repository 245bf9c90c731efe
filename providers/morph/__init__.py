"""Morph Cloud: declaration (settings, credentials, SDK). The adapter is ``providers.morph.adapter``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from providers.spec import ProviderSettings, ProviderSpec


class MorphSettings(ProviderSettings):
    snapshot_id: str | None = Field(None, description="the snapshot instances boot from")
    mode: Literal["cold", "snapshot"] = "cold"
    warm_snapshot_id: str | None = Field(None, description="snapshot mode: start from this warmed snapshot")
    python: str = "python3"
    ttl_seconds: int = Field(3600, gt=0, description="instances stop themselves after this long")
    http_timeout_s: float = Field(30, gt=0, description="per API call")
    warm_snapshot_ttl_s: int = Field(86400, gt=0, description="a warm snapshot the farm made expires")


SPEC = ProviderSpec(
    name="morph", adapter="providers.morph.adapter:MorphProvider", settings=MorphSettings,
    credentials=("MORPH_API_KEY",),
    credential_hint="create an API key in the Morph Cloud dashboard and export it (or put it in .env)",
    extra="morph", sdk=("morphcloud",))
