"""Process settings, read from ``FLOWHOOKS_*`` environment variables when a process starts."""

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.durations import Duration

DAY = 86400.0


class Settings(BaseSettings):
    """Everything a process needs besides the config file. Build one in the composition root
    (``Settings()``); nothing reads the environment at import time."""

    model_config = SettingsConfigDict(env_prefix="FLOWHOOKS_", extra="ignore", frozen=True)

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    """May carry a password, hence a secret; log :attr:`redis_location` instead."""
    config: Path = Path("flowhooks.yaml")
    max_body_bytes: int = 1 << 20
    body_timeout: Duration = 10.0
    """How long a client may take to send its body before it gets a 408."""
    dedup_ttl: Duration = 7 * DAY
    event_retention: Duration = 7 * DAY
    redis_timeout: Duration = 5.0
    """How long the receiver waits for the durable write before answering 503."""
    retry_after: int = 5
    """The ``Retry-After`` of a 503 answered while Redis cannot be written."""
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    job_timeout: Duration = 300.0
    """The longest a worker job may run before RQ stops it."""

    @property
    def redis_location(self) -> str:
        """``host:port/db`` of the Redis URL, safe to log."""
        parts = urlsplit(self.redis_url.get_secret_value())
        return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
