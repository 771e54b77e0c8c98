"""A Redis outage as a worker waits it out: counted once, over when Redis answers again, cut
short by SIGTERM."""

import logging
import os
import signal
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support import RedisProcess
from workers.metrics import WorkerMetrics
from workers.outage import FIRST_WAIT, MAX_WAIT, Outage, backoff


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def down(private_redis: RedisProcess) -> Iterator[RedisProcess]:
    private_redis.stop()
    yield private_redis


def outage(server: RedisProcess, registry: CollectorRegistry) -> Outage:
    probe = Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
    return Outage(probe, "127.0.0.1", WorkerMetrics(registry))


def reconnects(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("flowhooks_redis_reconnects_total")


def test_the_wait_doubles_up_to_its_cap_with_jitter() -> None:
    for attempt in range(12):
        ceiling = min(MAX_WAIT, FIRST_WAIT * 2**attempt)
        assert ceiling / 2 <= backoff(attempt) <= ceiling
    assert backoff(10_000) <= MAX_WAIT


def test_the_wait_ends_when_redis_answers_again(
    down: RedisProcess, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowhooks.worker")
    restart = threading.Timer(1.0, down.start)
    restart.start()
    try:
        assert outage(down, registry).wait(RedisConnectionError("gone")) is True
    finally:
        restart.join()
    assert reconnects(registry) == 1
    said = [r.getMessage() for r in caplog.records if r.name == "flowhooks.worker"]
    assert said == ["Redis unreachable, reconnecting", "Redis reachable again"]


def test_sigterm_ends_the_wait(down: RedisProcess, registry: CollectorRegistry) -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    stop.start()
    assert outage(down, registry).wait(RedisConnectionError("gone")) is False
    stop.join()
    assert signal.getsignal(signal.SIGTERM) == before
