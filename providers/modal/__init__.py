"""Modal: declaration (settings, credentials, SDK). The adapter is ``providers.modal.adapter``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from providers.spec import ProviderSettings, ProviderSpec


class ModalSettings(ProviderSettings):
    app: str = "sandbox-farm"
    python: str = "3.11"
    warm: Literal["image"] | None = None
    image_id: str | None = None
    region: str | None = None
    cpu: float | None = Field(None, gt=0)
    memory: int | None = Field(None, gt=0, description="MiB")
    # the sandbox's own lifetime: Modal ends it after this long, so a leaked sandbox cannot outlive it;
    # the default sits above a whole sample at the default phase timeouts (970 s)
    sandbox_timeout: StrictInt = Field(1800, gt=0, le=86400, description="the sandbox's own lifetime (s)")
    # how often create checks whether Modal scheduled the sandbox (the SDK's own poll is 500 ms)
    scheduling_poll_ms: StrictInt = Field(25, ge=5, le=500)
    snapshot_timeout_s: StrictInt = Field(120, gt=0, le=3600, description="resume scenario: bound on the "
                                          "filesystem snapshot and on the sandbox started from it (s)")

    @field_validator("python", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if not isinstance(value, str):  # YAML reads 3.10 as the number 3.1
            raise ValueError(f"must be quoted, like \"3.12\", not {value!r}")
        return value

    @model_validator(mode="after")
    def _image(self) -> "ModalSettings":
        if self.warm == "image" and not self.image_id:
            raise ValueError("warm: image needs image_id, the id of a pre-built image (providers/README.md)")
        return self


SPEC = ProviderSpec(
    name="modal", adapter="providers.modal.adapter:ModalProvider", settings=ModalSettings,
    credentials=("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"),
    credential_hint="run `modal token new` and export both token values (or put them in .env)",
    extra="modal", sdk=("modal",))
