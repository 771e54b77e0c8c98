"""Redis clients, made one way for every process from ``FLOWHOOKS_REDIS_URL``.

The receiver, the admin pages, the workers and the commands all connect through here, so what
the URL may name is decided in one place. Building a client opens no socket: redis-py connects
on the first command.
"""

from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from config.settings import Settings


def connect(settings: Settings, **options: Any) -> Redis:
    """A client for the Redis ``settings`` name; ``options`` are redis-py's (timeouts…)."""
    return Redis.from_url(settings.redis_url.get_secret_value(), **options)


def connect_async(settings: Settings, **options: Any) -> AsyncRedis:
    """The asyncio client for the same Redis, for the receiver."""
    return AsyncRedis.from_url(settings.redis_url.get_secret_value(), **options)
