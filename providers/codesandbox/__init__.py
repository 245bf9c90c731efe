"""CodeSandbox (through node-csb): declaration. The adapter is ``providers.codesandbox.adapter``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from providers.spec import ProviderSettings, ProviderSpec


class CodeSandboxSettings(ProviderSettings):
    service_url: str | None = Field(None, description="node-csb's URL; else CSB_SERVICE_URL, else loopback")
    template: str | None = None
    python: str | None = None
    vm_tier: str | None = None
    privacy: Literal["private", "public-hosts", "unlisted", "public"] | None = None
    # CodeSandbox's own bound on a forgotten VM: it hibernates after this much inactivity
    # (default well above the longest phase timeout, setup's 600 s)
    hibernation_timeout_s: float = Field(1800, ge=60, le=86400)
    destroy: Literal["delete", "shutdown", "hibernate"] = "delete"
    connect_timeout_s: float = Field(5, gt=0)
    resume_timeout_s: float = Field(120, gt=0, le=3600, description="resume scenario: bound on resume + connect")

    @field_validator("service_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be http(s)://host:port, got {value!r}")
        return value


# CSB_API_KEY belongs to node-csb, never to this process; CSB_SERVICE_TOKEN is optional on loopback.
SPEC = ProviderSpec(
    name="codesandbox", adapter="providers.codesandbox.adapter:CodeSandboxProvider",
    settings=CodeSandboxSettings, extra="codesandbox", sdk=("httpx",),
    sidecar="providers.codesandbox.service:embedded_service")
