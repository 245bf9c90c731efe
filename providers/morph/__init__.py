"""Morph Cloud: declaration (settings, credentials, SDK). The adapter is ``providers.morph.adapter``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from providers.spec import ProviderSettings, ProviderSpec


class MorphSettings(ProviderSettings):
    snapshot_id: str | None = Field(None, description="the snapshot instances boot from; unset: the farm makes "
                                                      "(or reuses, by digest) one from image_id")
    image_id: str = Field("morphvm-minimal", description="the image a farm-made base snapshot starts from")
    vcpus: int = Field(1, gt=0, description="a farm-made base snapshot's vCPUs")
    memory_mb: int = Field(1024, ge=128, description="a farm-made base snapshot's memory")
    disk_mb: int = Field(4096, ge=700, description="a farm-made base snapshot's disk")
    mode: Literal["cold", "snapshot"] = "cold"
    warm_snapshot_id: str | None = Field(None, description="snapshot mode: start from this warmed snapshot")
    python: str = "python3"
    ttl_seconds: int = Field(3600, ge=60, description="instances end themselves after this long (leak bound)")
    ttl_action: Literal["stop", "pause"] = Field("stop", description="what the TTL does to an instance")
    http_timeout_s: float = Field(30, gt=0, description="per API call")
    destroy_wait_s: float = Field(60, gt=0, description="destroy waits this long for the instance to be gone")
    prepare_timeout_s: float = Field(600, gt=0, description="bound on making a base or warm snapshot (untimed)")
    warm_snapshot_ttl_s: int = Field(86400, gt=0, description="a warm snapshot the farm made expires")


SPEC = ProviderSpec(
    name="morph", adapter="providers.morph.adapter:MorphProvider", settings=MorphSettings,
    credentials=("MORPH_API_KEY",),
    credential_hint="create an API key in the Morph Cloud dashboard and export it (or put it in .env)",
    extra="morph", sdk=("morphcloud",))
