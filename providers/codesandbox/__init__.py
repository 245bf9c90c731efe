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
    privacy: str | None = None
    hibernation_timeout_s: float | None = Field(None, gt=0)
    destroy: Literal["delete", "shutdown", "hibernate"] = "delete"
    connect_timeout_s: float = Field(5, gt=0)

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
    sidecar="providers.codesandbox.adapter:embedded_service")
