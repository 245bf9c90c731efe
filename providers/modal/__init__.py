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
    sandbox_timeout: StrictInt = Field(600, gt=0, description="the sandbox's own lifetime (s)")

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
