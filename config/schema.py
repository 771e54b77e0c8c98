"""The config file's schema. Unknown keys are errors; every model is frozen once loaded."""

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from config.durations import Duration
from config.secrets import Secret

SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SourceName = Annotated[str, StringConstraints(pattern=SOURCE_NAME)]
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError("must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class HmacCheck(Strict):
    """HMAC of the raw body (or of ``{timestamp}.{body}`` with ``timestamp_header``)."""

    header: HeaderName = "X-Etl-Webhook-Signature"
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str | None = None
    """Stripped from the header value when present; ``None`` means ``{algorithm}=``."""
    secrets: list[Secret] = Field(min_length=1)
    timestamp_header: HeaderName | None = None
    tolerance: Duration = 300.0


class StandardWebhooksCheck(Strict):
    """The Standard Webhooks scheme (``webhook-id``, ``-timestamp`` and ``-signature`` headers)."""

    secrets: list[Secret] = Field(min_length=1)
    tolerance: Duration = 300.0

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            key = secret.get_secret_value().removeprefix("whsec_")
            try:
                base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("each secret must be base64, optionally after whsec_") from None
        return secrets


class BasicCheck(Strict):
    username: str = Field(min_length=1)
    password: Secret

    @field_validator("username")
    @classmethod
    def _no_colon(cls, username: str) -> str:
        if ":" in username:  # RFC 7617: the first colon ends the user-id
            raise ValueError("must not contain a colon")
        return username


class HeaderTokenCheck(Strict):
    header: HeaderName
    token: Secret


CHECKS = ("hmac", "standard_webhooks", "basic", "header_token")


class VerifyStep(Strict):
    """One entry of a source's ``verify:`` list, naming exactly one check."""

    hmac: HmacCheck | None = None
    standard_webhooks: StandardWebhooksCheck | None = None
    basic: BasicCheck | None = None
    header_token: HeaderTokenCheck | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "VerifyStep":
        named = [name for name in CHECKS if getattr(self, name) is not None]
        if len(named) != 1:
            raise ValueError(f"must name exactly one check: {', '.join(CHECKS)}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in CHECKS if getattr(self, name) is not None)


class Source(Strict):
    """A webhook endpoint, served at ``/webhooks/{name}``; every ``verify`` step must pass."""

    verify: list[VerifyStep] = []
    allow_unsigned: bool = False

    @model_validator(mode="after")
    def _signed(self) -> "Source":
        if not self.verify and not self.allow_unsigned:
            raise ValueError("has no verify checks: add one, or set allow_unsigned: true")
        if self.verify and self.allow_unsigned:
            raise ValueError("allow_unsigned: true contradicts the verify checks listed")
        return self


class Config(Strict):
    sources: dict[SourceName, Source] = Field(min_length=1)
