"""The settings of each destination an action may name (``slack:``, ``pagerduty:``, …): the
part of a destination the config file holds, validated at load. Everything else about a
destination (its message, limits, pace and send) is its module under ``workers/sinks/``, which
names its settings model here; the receiver reads the config too, so the models live on this
side of the ``receiver → config ← workers`` boundary.

Each model declares, as class variables, the templates an action of it may override
(``TEMPLATES``), whether a storm collapses into one digest (``COLLAPSIBLE``) and which field is
an http(s) URL the config checks (``URL``).
"""

import importlib.util
import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from config.base import Strict
from config.durations import PositiveDuration
from config.secrets import Secret, SecretOrText, Unresolved, whsec

__all__ = [
    "SETTINGS",
    "AppriseAction",
    "EmailAction",
    "GoogleChatAction",
    "LogAction",
    "OpsgenieAction",
    "OpsgenieResponder",
    "PagerDutyAction",
    "Settings",
    "SlackAction",
    "SmtpServer",
    "StandardWebhooksSigning",
    "TeamsAction",
    "WebhookAction",
]


class Settings(Strict):
    """What every destination's settings declare (see the module's docstring)."""

    TEMPLATES: ClassVar[tuple[str, ...]] = ()
    COLLAPSIBLE: ClassVar[bool] = False
    URL: ClassVar[str | None] = None


class SlackAction(Settings):
    TEMPLATES: ClassVar[tuple[str, ...]] = ("title", "text")
    COLLAPSIBLE: ClassVar[bool] = True
    URL: ClassVar[str | None] = "webhook_url"

    webhook_url: Secret


class PagerDutyAction(Settings):
    TEMPLATES: ClassVar[tuple[str, ...]] = ("summary", "dedup_key")
    URL: ClassVar[str | None] = "url"

    routing_key: Secret
    url: str = "https://events.pagerduty.com/v2/enqueue"
    """Events API v2; EU accounts use ``https://events.eu.pagerduty.com/v2/enqueue``."""
    severity: Literal["critical", "error", "warning", "info"] = "error"


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number from 1 to 65535")
    return value


class SmtpServer(Strict):
    host: str = Field(min_length=1)
    port: Annotated[int, AfterValidator(_port)] = 587
    starttls: bool = False
    tls: bool = False
    """Implicit TLS from the first byte (port 465), as opposed to ``starttls``."""
    username: str | None = Field(default=None, min_length=1)
    password: Secret | None = None
    timeout: PositiveDuration = 30.0

    @model_validator(mode="after")
    def _one_tls(self) -> "SmtpServer":
        if self.starttls and self.tls:
            raise ValueError("starttls and tls exclude each other: choose one")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


# no display names, lists, quotes, whitespace or control characters: nothing that could end
# or add a header line
_ADDRESS = re.compile(r"[^@\s<>\"',;\x00-\x1f\x7f]+@[^@\s<>\"',;\x00-\x1f\x7f]+")


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Address = Annotated[str, AfterValidator(_address)]


class EmailAction(Settings):
    TEMPLATES: ClassVar[tuple[str, ...]] = ("subject", "text", "html")
    COLLAPSIBLE: ClassVar[bool] = True

    to: list[Address] = Field(min_length=1)
    sender: Address = Field(alias="from")
    smtp: SmtpServer


_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


class StandardWebhooksSigning(Strict):
    secret: Secret

    @field_validator("secret")
    @classmethod
    def _base64(cls, secret: SecretStr) -> SecretStr:
        return whsec(secret, "the secret")


def _printable(value: SecretStr) -> SecretStr:
    if isinstance(value, Unresolved):
        return value
    if not all(" " <= char <= "~" or char == "\t" for char in value.get_secret_value()):
        raise ValueError("must be printable ASCII on one line")
    return value


HeaderValue = Annotated[SecretOrText, AfterValidator(_printable)]


class WebhookAction(Settings):
    TEMPLATES: ClassVar[tuple[str, ...]] = ("body",)
    URL: ClassVar[str | None] = "url"

    url: Secret
    headers: dict[str, HeaderValue] = {}
    """Header names are checked by ``_header_names`` rather than as dict keys, whose errors the
    loader words as a bad config name."""
    sign: StandardWebhooksSigning | None = None
    timeout: PositiveDuration = 10.0

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        seen: set[str] = set()
        for name in headers:
            if not _TOKEN.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)"
                )
            if name.lower() in seen:
                raise ValueError(f"{name!r} is named twice (header names ignore case)")
            seen.add(name.lower())
        return headers


class LogAction(Settings):
    TEMPLATES: ClassVar[tuple[str, ...]] = ("text",)

    level: Literal["info", "warning"] = "info"


class TeamsAction(Settings):
    """Microsoft Teams through a Workflows webhook ("When a Teams webhook request is
    received"): its URL is a secret."""

    TEMPLATES: ClassVar[tuple[str, ...]] = ("title", "text")
    COLLAPSIBLE: ClassVar[bool] = True
    URL: ClassVar[str | None] = "webhook_url"
    webhook_url: Secret


class OpsgenieResponder(Strict):
    """Who an Opsgenie alert goes to, as its ``responders`` name them."""

    type: Literal["team", "user", "escalation", "schedule"]
    name: str = Field(min_length=1)
    """The team's, escalation's or schedule's name; a user's username (an email address)."""


_OPSGENIE_TAG = Annotated[str, Field(min_length=1, max_length=50)]


class OpsgenieAction(Settings):
    """Opsgenie's Alert API v2 with an API integration's key (a secret)."""

    TEMPLATES: ClassVar[tuple[str, ...]] = ("message", "alias", "description")
    URL: ClassVar[str | None] = "url"
    api_key: Secret
    region: Literal["us", "eu"] = "us"
    """``us``: ``https://api.opsgenie.com``; ``eu``: ``https://api.eu.opsgenie.com``."""
    url: str | None = None
    """Another API base URL (a proxy); the region's when unset."""
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P3"
    tags: list[_OPSGENIE_TAG] = Field(default=[], max_length=20)
    responders: list[OpsgenieResponder] = Field(default=[], max_length=50)


class GoogleChatAction(Settings):
    """A Google Chat space's incoming webhook: its URL (with its ``key`` and ``token``) is a
    secret."""

    TEMPLATES: ClassVar[tuple[str, ...]] = ("title", "text")
    COLLAPSIBLE: ClassVar[bool] = True
    URL: ClassVar[str | None] = "webhook_url"
    webhook_url: Secret
    thread: bool = True
    """Post a flow's messages in one thread (its failure, then its recovery)."""


APPRISE_HINT = "needs Apprise, an optional extra: pip install 'flowhooks[apprise]'"


def apprise_installed() -> bool:
    """Whether Apprise can be imported, found without importing it."""
    try:
        return importlib.util.find_spec("apprise") is not None
    except (ImportError, ValueError):  # ValueError: a module without a spec stands in for it
        return False


class AppriseAction(Settings):
    """Any service Apprise reaches (Telegram, Matrix, Mattermost, Pushover, SNS, …) by its
    Apprise URL, which is a secret (it holds the service's tokens)."""

    TEMPLATES: ClassVar[tuple[str, ...]] = ("title", "body")
    COLLAPSIBLE: ClassVar[bool] = True
    url: Secret
    format: Literal["markdown", "text"] = "markdown"
    """How the body is written, and so how event values in it are escaped."""

    @model_validator(mode="after")
    def _installed(self) -> "AppriseAction":
        if not apprise_installed():
            raise ValueError(APPRISE_HINT)
        return self


SETTINGS: dict[str, type[Settings]] = {
    "slack": SlackAction,
    "pagerduty": PagerDutyAction,
    "email": EmailAction,
    "webhook": WebhookAction,
    "log": LogAction,
    "teams": TeamsAction,
    "opsgenie": OpsgenieAction,
    "google_chat": GoogleChatAction,
    "apprise": AppriseAction,
}
"""Each destination's settings, by the key an action names it with; ``Action`` has one field
for each (checked by the tests), in this order."""
