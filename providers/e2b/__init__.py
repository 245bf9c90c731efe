"""e2b: declaration (settings, credentials, SDK). The adapter is ``providers.e2b.adapter``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from providers.spec import ProviderSettings, ProviderSpec


class E2BSettings(ProviderSettings):
    template: str | None = Field(None, description="template for cold creates (SDK default if unset)")
    warm: Literal["snapshot", "template"] | None = None
    snapshot: str | None = Field(None, description="warm: snapshot — a snapshot you made beforehand")
    warm_template: str | None = Field(None, description="warm: template — a template with deps baked in")
    # e2b kills a sandbox this long after its create (at most 86400 s on Pro, 3600 s on Hobby): the
    # bound on a leak. The default is well above a whole sample (every phase at its default limit).
    sandbox_timeout: int = Field(3600, ge=60, le=86400, description="the sandbox's own lifetime (s), set on every create")
    request_timeout: float = Field(30, gt=0, description="per control-plane request (s)")
    api_url: str | None = None
    domain: str | None = None

    @model_validator(mode="after")
    def _warm_source(self) -> "E2BSettings":
        if self.warm == "snapshot" and not self.snapshot:
            raise ValueError("warm: snapshot needs snapshot, the id of a snapshot you made (providers/README.md)")
        if self.warm == "template" and not self.warm_template:
            raise ValueError("warm: template needs warm_template (a template built with `e2b template build`)")
        return self


SPEC = ProviderSpec(
    name="e2b", adapter="providers.e2b.adapter:E2BProvider", settings=E2BSettings,
    credentials=("E2B_API_KEY",),
    credential_hint="create a key in the e2b dashboard and export it (or put it in .env)",
    extra="e2b", sdk=("e2b-code-interpreter", "e2b"))
