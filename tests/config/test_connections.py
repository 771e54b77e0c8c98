"""Clients made from a Sentinel URL, against real Sentinels and data nodes on loopback: they
find the primary, use the URL's credentials where it says, follow a failover, and work the way
RQ rebuilds them for its scheduler."""

import asyncio
import functools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import ConnectionPool, Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, RedisError
from rq.connections import parse_connection

from config.connections import AsyncSentinelRedis, SentinelRedis, connect, connect_async
from tests.sentinels import SentinelGroup, sentinel_group
from tests.support import redis_binary, settings, wait_until
from tests.workers.sinks.standins import self_signed

PASSWORD = "gr0up-pa55/w0rd@1"
WATCHERS = "sentinel-0wn-pa55"


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    """One Sentinel and a primary sharing a password, for the tests that kill nothing."""
    with sentinel_group(password=PASSWORD, replicas=0, sentinels=1) as started:
        yield started


def primary(group: SentinelGroup, db: int = 0) -> Redis:
    node = group.node(group.primary_port())
    return Redis(port=node.port, password=PASSWORD, db=db)


def test_a_client_finds_the_primary_and_uses_the_urls_db(group: SentinelGroup) -> None:
    client = connect(settings(group.url(db=3)))
    assert isinstance(client, SentinelRedis)
    client.set("where", "here")
    assert primary(group, db=3).get("where") == b"here"
    assert primary(group, db=0).get("where") is None
    client.close()


def test_the_asyncio_client_too(group: SentinelGroup) -> None:
    async def scenario() -> bytes | str | None:
        client = connect_async(settings(group.url(db=4)), socket_timeout=2)
        assert isinstance(client, AsyncSentinelRedis)
        try:
            await client.set("where", "async")
            return await client.get("where")
        finally:
            await client.aclose()  # its Sentinel clients too: an open one would warn

    assert asyncio.run(scenario()) == b"async"
    assert primary(group, db=4).get("where") == b"async"


def test_the_callers_timeouts_reach_the_sentinels_and_the_data_nodes(
    group: SentinelGroup,
) -> None:
    client = connect(settings(group.url()), socket_timeout=1.5, socket_connect_timeout=0.5)
    assert client.ping()
    assert isinstance(client, SentinelRedis) and client.sentinels is not None
    [watcher] = client.sentinels.sentinels
    assert watcher.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    assert watcher.connection_pool.connection_kwargs["socket_connect_timeout"] == 0.5
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    # Without timeouts of its own, a Sentinel query gives up after FLOWHOOKS_REDIS_TIMEOUT.
    plain = connect(settings(group.url(), redis_timeout=3))
    assert isinstance(plain, SentinelRedis) and plain.sentinels is not None
    [watcher] = plain.sentinels.sentinels
    assert watcher.connection_pool.connection_kwargs["socket_timeout"] == 3
    client.close()
    plain.close()


def test_rqs_rebuilt_client_follows_the_sentinels(group: SentinelGroup) -> None:
    """RQ's scheduler (and worker pool) rebuild the connection from its class, its pool's
    connection class and keyword arguments; for a Sentinel client those carry the Sentinel
    lookup, so the rebuilt client asks the Sentinels too."""
    client = connect(settings(group.url(db=5)))
    connection_class, pool_class, pool_kwargs = parse_connection(client)
    rebuilt = connection_class(
        connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs)
    )
    rebuilt.set("rebuilt", 1)
    assert primary(group, db=5).get("rebuilt") == b"1"
    rebuilt.close()  # without Sentinel clients of its own: closes its pool only
    client.close()


def test_the_sentinels_may_have_a_password_of_their_own() -> None:
    with sentinel_group(
        password=PASSWORD, sentinel_password=WATCHERS, replicas=0, sentinels=1
    ) as g:
        own = connect(settings(g.url(options=f"sentinel_password={WATCHERS}")))
        assert own.ping()
        own.close()
        shared = connect(settings(g.url()))
        with pytest.raises(ConnectionError) as refused:
            shared.ping()
        # The Sentinel refused the data nodes' password; no password is in the error.
        assert "No master found for 'flowhooks-main'" in str(refused.value)
        for secret in (PASSWORD, WATCHERS, "pa55"):
            assert secret not in str(refused.value)
        shared.close()


def test_sentinels_without_a_password() -> None:
    with sentinel_group(password=PASSWORD, sentinel_password="", replicas=0, sentinels=1) as g:
        client = connect(settings(g.url(options="sentinel_password=")))
        assert client.ping()
        client.close()


@pytest.mark.slow
def test_clients_follow_the_primary_through_a_failover() -> None:
    """Killed, the primary's clients fail for the seconds the failover takes (a
    ``ConnectionError``, naming no password), then reach the promoted replica by themselves:
    the sync client, the asyncio one and the one RQ rebuilds for its scheduler."""
    with sentinel_group(password=PASSWORD) as g:
        url = settings(g.url(), redis_timeout=1)
        client = connect(url, socket_timeout=1)
        connection_class, pool_class, pool_kwargs = parse_connection(client)
        rebuilt = connection_class(
            connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs)
        )
        loop = asyncio.new_event_loop()
        aclient = connect_async(url, socket_timeout=1)
        for each in (client, rebuilt):
            each.set("before", 1)
        loop.run_until_complete(aclient.set("before", 1))

        old = g.kill_primary()
        errors: list[RedisError] = []

        def succeeds(write: Callable[[], object]) -> bool:
            try:
                write()
            except RedisError as exc:
                errors.append(exc)
                return False
            return True

        for write in (
            lambda: client.set("after", 1),
            lambda: rebuilt.set("after", 1),
            lambda: loop.run_until_complete(aclient.set("after", 1)),
        ):
            assert wait_until(functools.partial(succeeds, write), 30, interval=0.2), g.logs()
        promoted = g.wait_promoted(old.port)
        assert promoted != old.port
        on_promoted = g.node(promoted).client()
        assert on_promoted.get("before") == b"1"  # replicated before the kill
        assert on_promoted.get("after") is not None
        assert errors, "the failover went unnoticed"
        assert all(isinstance(e, ConnectionError) for e in errors), errors
        for error in errors:
            assert "pa55" not in str(error)
        client.close()
        rebuilt.close()
        loop.run_until_complete(aclient.aclose())
        loop.close()


def test_a_plain_url_makes_a_plain_client(redis_url: str) -> None:
    client = connect(settings(redis_url))
    assert type(client) is Redis
    assert client.ping()
    client.close()

    async def scenario() -> None:
        aclient = connect_async(settings(redis_url))
        assert type(aclient) is AsyncRedis
        assert await aclient.ping()
        await aclient.aclose()

    asyncio.run(scenario())


def test_tls_to_the_sentinels_and_the_data_nodes(tmp_path: Path) -> None:
    """``rediss+sentinel://``: TLS to both, checked against the URL's CA file; a client that
    does not trust the certificate finds no primary, and says so without a password."""
    if not _has_tls(redis_binary()):
        pytest.skip("this redis-server is built without TLS")
    certificate = self_signed(tmp_path)
    with sentinel_group(password=PASSWORD, replicas=0, sentinels=1, tls=certificate) as g:
        trusted = settings(g.url(db=2, options=f"ssl_ca_certs={certificate.cert}"))
        client = connect(trusted)
        client.set("over", "tls")
        client.close()

        async def scenario() -> bytes | str | None:
            aclient = connect_async(trusted)
            try:
                return await aclient.get("over")
            finally:
                await aclient.aclose()

        assert asyncio.run(scenario()) == b"tls"
        untrusting = connect(settings(g.url()))  # the system's CAs: not this certificate
        with pytest.raises(ConnectionError) as refused:
            untrusting.ping()
        assert "pa55" not in str(refused.value)
        untrusting.close()


def _has_tls(binary: str) -> bool:
    """Whether ``redis-server`` was built with TLS: without, ``tls-port`` is a bad directive;
    with, and no port at all, it exits at once for having nowhere to listen."""
    done = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return "Bad directive" not in done.stdout + done.stderr
