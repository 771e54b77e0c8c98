"""Redis clients, made one way for every process from ``FLOWHOOKS_REDIS_URL``.

The receiver, the admin pages, the workers and the commands all connect through here, so what
the URL may name is decided in one place: ``redis://``, ``rediss://`` and ``unix://`` as
redis-py reads them, and ``redis+sentinel://`` / ``rediss+sentinel://``
(:mod:`config.sentinel`), for which the client asks the Sentinels where the primary is before
each new connection, and so follows it through a failover. Building a client opens no socket:
redis-py connects on the first command.

Through a failover (a few seconds), a new connection raises ``MasterNotFoundError`` and the
first command on a connection to the demoted primary a ``ConnectionError``: both are
``redis.exceptions.ConnectionError``, for the caller to retry or answer 503.
"""

from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from config import sentinel
from config.settings import Settings

SENTINEL_OPTIONS = ("socket_timeout", "socket_connect_timeout", "socket_keepalive")
"""The options a client's Sentinel queries take from it; the rest are the data nodes'."""


class SentinelRedis(Redis):
    """A client of the primary a Sentinel group names; closing it closes its Sentinel
    clients too. (RQ rebuilds a client of this class around a pool of its own, without
    :attr:`sentinels`: that one closes its pool only.)"""

    sentinels: Sentinel | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.sentinels is not None:
                self.sentinels.close()


class AsyncSentinelRedis(AsyncRedis):
    """The asyncio :class:`SentinelRedis`."""

    sentinels: AsyncSentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()


def connect(settings: Settings, **options: Any) -> Redis:
    """A client for the Redis ``settings`` name; ``options`` are redis-py's (timeouts…)."""
    url = settings.redis_url.get_secret_value()
    if not sentinel.is_sentinel(url):
        return Redis.from_url(url, **options)
    address = sentinel.parse(url)
    sentinel_options = _sentinel_options(address, settings.redis_timeout, options)
    # redis-py's sync Sentinel is not annotated.
    sentinels = Sentinel(address.sentinels, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    client: SentinelRedis = sentinels.master_for(  # type: ignore[no-untyped-call]
        address.service, redis_class=SentinelRedis, **_data_options(address, options)
    )
    client.sentinels = sentinels
    return client


def connect_async(settings: Settings, **options: Any) -> AsyncRedis:
    """The asyncio client for the same Redis, for the receiver."""
    url = settings.redis_url.get_secret_value()
    if not sentinel.is_sentinel(url):
        return AsyncRedis.from_url(url, **options)
    address = sentinel.parse(url)
    sentinel_options = _sentinel_options(address, settings.redis_timeout, options)
    sentinels = AsyncSentinel(address.sentinels, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    client: AsyncSentinelRedis = sentinels.master_for(
        address.service, redis_class=AsyncSentinelRedis, **_data_options(address, options)
    )
    client.sentinels = sentinels
    return client


def _data_options(address: sentinel.SentinelUrl, options: dict[str, Any]) -> dict[str, Any]:
    return {
        **options,
        "db": address.db,
        "username": address.username,
        "password": address.password,
        **address.ssl,
    }


def _sentinel_options(
    address: sentinel.SentinelUrl, timeout: float, options: dict[str, Any]
) -> dict[str, Any]:
    """The Sentinels' credentials and TLS, and the caller's socket options; without a
    timeout of the caller's, ``timeout`` (``FLOWHOOKS_REDIS_TIMEOUT``), so that a Sentinel
    that does not answer delays finding the primary but never stops it."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        **{k: v for k, v in options.items() if k in SENTINEL_OPTIONS and v is not None},
        "username": address.sentinel_username,
        "password": address.sentinel_password,
        **address.ssl,
    }
