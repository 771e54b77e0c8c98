"""Process settings, read from ``FLOWHOOKS_*`` environment variables when a process starts."""

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.connection import parse_url

from config import sentinel
from config.durations import Duration
from config.logs import LEVELS

DAY = 86400.0
MIN_TOKEN = 16
"""The shortest admin token accepted: it guards replays and deletions, and is guessable below
this."""


class Settings(BaseSettings):
    """Everything a process needs besides the config file. Build one in the composition root
    (``Settings()``); nothing reads the environment at import time."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWHOOKS_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    """May carry a password, hence a secret; log :attr:`redis_location` instead. Besides
    redis-py's forms, a Sentinel URL (:mod:`config.sentinel`)."""
    config: Path = Path("flowhooks.yaml")
    max_body_bytes: int = Field(1 << 20, gt=0)
    body_timeout: Duration = Field(10.0, gt=0)
    """How long a client may take to send its body before it gets a 408."""
    # Redis refuses an expiry of zero, so anything below the unit it is written in (ms for
    # the dedup key, whole seconds for the event) would turn every write into a 503.
    dedup_ttl: Duration = Field(7 * DAY, ge=0.001)
    event_retention: Duration = Field(7 * DAY, ge=1)
    redis_timeout: Duration = Field(5.0, gt=0)
    """How long the receiver waits for the durable write before answering 503."""
    redis_min_replicas: int = Field(0, ge=0)
    """The receiver acknowledges an event only once this many replicas have it (``WAIT``)."""
    redis_wait_timeout: Duration | None = Field(None, gt=0)
    """How long the receiver waits for those replicas before answering 503; below
    :attr:`redis_timeout`, half of it when unset (see :attr:`replica_wait`)."""
    retry_after: int = Field(5, ge=0)
    """The ``Retry-After`` of a 503 answered while Redis cannot be written."""
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    """One of :data:`config.logs.LEVELS`, in any case; held in upper case."""
    job_timeout: Duration = Field(300.0, ge=1)
    """The longest a worker job may run before RQ stops it (whole seconds)."""
    maintenance_interval: Duration = Field(30.0, ge=1)
    """How often a worker looks for jobs whose worker died (RQ's abandoned-job recovery)."""
    admin_token: SecretStr | None = None
    """Turns on the receiver's admin API (``/api``) and pages (``/ui``), for whoever holds it;
    without it they are not served at all. Empty is the same as unset."""

    @field_validator("redis_url")
    @classmethod
    def _parseable(cls, value: SecretStr) -> SecretStr:
        """Refuse a URL Redis' client cannot split: its error would quote a piece of the
        password (an unescaped ``/`` moves it into the port). A Sentinel URL's error says
        what is wrong, quoting none of it."""
        if sentinel.is_sentinel(value.get_secret_value()):
            try:
                sentinel.parse(value.get_secret_value())
            except sentinel.BadSentinelUrl as exc:
                raise PydanticCustomError(
                    "redis_url", "not a valid Sentinel URL: {reason}", {"reason": str(exc)}
                ) from None
            return value
        try:
            parse_url(value.get_secret_value())  # type: ignore[no-untyped-call]
        except ValueError:
            raise PydanticCustomError("redis_url", _BAD_URL) from None
        if _location(value) == _INVALID:
            raise PydanticCustomError("redis_url", _BAD_URL)
        return value

    @field_validator("redis_wait_timeout")
    @classmethod
    def _within_the_round_trip(cls, value: float | None, info: ValidationInfo) -> float | None:
        timeout = info.data.get("redis_timeout")
        if value is not None and timeout is not None and value >= timeout:
            # Else the round trip's own deadline would cut WAIT short: a broken connection
            # instead of an answer.
            raise PydanticCustomError(
                "redis_wait_timeout", "must be shorter than FLOWHOOKS_REDIS_TIMEOUT"
            )
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        if value == "" or (isinstance(value, SecretStr) and not value.get_secret_value()):
            return None
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN:
            # The message says how long, never what was given.
            raise PydanticCustomError(
                "admin_token", "must be at least {n} characters", {"n": MIN_TOKEN}
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LEVELS:
            # The same words logs.setup uses, so the message does not depend on who checks.
            raise PydanticCustomError(
                "log_level",
                "unknown level {level} (use one of {levels})",
                {"level": repr(value), "levels": ", ".join(LEVELS)},
            )
        return level

    @property
    def redis_location(self) -> str:
        """``host:port/db`` of the Redis URL (``unix:PATH`` for a socket; ``sentinel
        HOST:PORT,.../SERVICE/DB`` for Sentinels), safe to log."""
        url = self.redis_url.get_secret_value()
        if sentinel.is_sentinel(url):
            return sentinel.parse(url).location
        return _location(self.redis_url)

    @property
    def replica_wait(self) -> float:
        """Seconds the receiver waits for :attr:`redis_min_replicas` replicas."""
        return self.redis_wait_timeout or self.redis_timeout / 2


def _location(url: SecretStr) -> str:
    """No user or password, and nothing of a URL that does not split cleanly: an unescaped
    ``/`` or ``@`` in a password moves part of it into what would be the port or path."""
    try:
        parts = urlsplit(url.get_secret_value())
        port = parts.port or 6379
    except ValueError:
        return _INVALID
    if "@" in parts.path:
        return _INVALID
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname
    if not host or not re.fullmatch(r"(/\d*)?", parts.path):
        return _INVALID
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}{parts.path if len(parts.path) > 1 else '/0'}"


_INVALID = "(unparseable Redis URL)"
_BAD_URL = "not a valid Redis URL (percent-encode / ? # @ in the password)"
