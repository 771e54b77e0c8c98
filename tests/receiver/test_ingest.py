"""The group-commit writer against a real Redis, including one that hangs."""

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from config import eventlog, keys
from config.events import Event
from receiver import jobs
from receiver.ingest import EventWriter, Unavailable
from tests.support import RedisProcess


def event(event_id: str) -> Event:
    return Event(
        id=event_id,
        source="etl",
        event="FLOW_FAILED",
        kind="flow.failed",
        received_at=datetime.now(UTC),
    )


def writer(redis: Redis, **overrides: object) -> EventWriter:
    options: dict[str, object] = {
        "dedup_ttl": 3600,
        "retention": 3600,
        "job_template": jobs.template(60, 3600),
        "deadline": 1.0,
        **overrides,
    }
    return EventWriter(redis, **options)  # type: ignore[arg-type]


@pytest.fixture
def hung_redis(private_redis: RedisProcess) -> Iterator[RedisProcess]:
    """A Redis that accepts connections, then stops answering (SIGSTOP) when the test says."""
    yield private_redis
    assert private_redis.process is not None
    os.kill(private_redis.process.pid, signal.SIGCONT)


def hang(server: RedisProcess) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def test_concurrent_writes_share_round_trips_and_dedupe(redis: SyncRedis, redis_url: str) -> None:
    commits: list[list[tuple[str, bool]]] = []

    async def scenario() -> list[bool]:
        conn = Redis.from_url(redis_url)
        w = writer(conn, on_commit=commits.append)
        writes = (w.write(event(f"e{i % 20}"), {"stage": "received"}) for i in range(60))
        results = await asyncio.gather(*writes)
        await conn.aclose()
        return results

    results = asyncio.run(scenario())
    assert results.count(True) == 20
    assert sum(len(c) for c in commits) == 60
    assert len(commits) < 60  # round trips were shared
    assert redis.llen(f"rq:queue:{keys.QUEUE}") == 20


def test_a_failing_listener_does_not_stop_the_writer(redis: SyncRedis, redis_url: str) -> None:
    def explode(results: list[tuple[str, bool]]) -> None:
        raise RuntimeError("listener bug")

    async def scenario() -> tuple[bool, bool]:
        conn = Redis.from_url(redis_url)
        w = writer(conn, on_commit=explode)
        first = await w.write(event("a"), {})
        second = await w.write(event("b"), {})
        await conn.aclose()
        return first, second

    assert asyncio.run(scenario()) == (True, True)


def test_a_hung_redis_fails_every_waiting_request_after_one_deadline(
    hung_redis: RedisProcess,
) -> None:
    async def scenario() -> tuple[list[bool | BaseException], float]:
        conn = Redis.from_url(hung_redis.url, socket_timeout=10)
        await conn.ping()
        hang(hung_redis)
        w = writer(conn, deadline=0.5, max_batch=4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        writes = (w.write(event(f"h{i}"), {}) for i in range(40))
        outcomes = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 10)
        return outcomes, loop.time() - started

    outcomes, took = asyncio.run(scenario())
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
    # Ten batches one behind the other would take ten deadlines; the backlog fails with the
    # first. (A bound to catch the regression, far from any timing.)
    assert took < 10 * 0.5


def test_past_the_backlog_cap_requests_are_refused_at_once(hung_redis: RedisProcess) -> None:
    async def scenario() -> None:
        conn = Redis.from_url(hung_redis.url, socket_timeout=10)
        await conn.ping()
        hang(hung_redis)
        w = writer(conn, deadline=2.0, max_batch=1, max_pending=3)
        waiting = [asyncio.create_task(w.write(event("in-flight"), {}))]
        await asyncio.sleep(0.1)
        waiting += [asyncio.create_task(w.write(event(f"c{i}"), {})) for i in range(3)]
        await asyncio.sleep(0.1)  # one in flight, three waiting
        with pytest.raises(Unavailable, match="backlog full"):
            await w.write(event("over"), {})
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(scenario())


def test_a_write_after_redis_returns_is_stored(private_redis: RedisProcess) -> None:
    async def scenario() -> bool:
        conn = Redis.from_url(private_redis.url, socket_connect_timeout=0.5)
        w = writer(conn)
        private_redis.stop()
        with pytest.raises(Unavailable):
            await w.write(event("late"), {})
        private_redis.start()
        stored = await w.write(event("late"), {"stage": "received"})
        await conn.aclose()
        return stored

    assert asyncio.run(scenario()) is True
    stored = eventlog.load(SyncRedis.from_url(private_redis.url), "etl:late")
    assert stored is not None
    assert stored.timeline == [{"stage": "received"}]


def test_the_job_fields_written_into_the_script_keep_their_bytes(
    redis: SyncRedis, redis_url: str
) -> None:
    # The fields common to every route job are Lua literals in the write script: any byte
    # (quotes, backslashes, a newline, a NUL, UTF-8, a Lua "]]") must come back as it went in.
    odd = 'a "quoted" \\ back\nslash \x00 ünï ]] ]=] %s'
    template = {**jobs.template(60, 3600), "origin": odd, "weird": odd.encode("utf-8")}

    async def scenario() -> bool:
        conn = Redis.from_url(redis_url)
        stored = await writer(conn, job_template=template).write(event("odd"), {})
        await conn.aclose()
        return stored

    assert asyncio.run(scenario()) is True
    job = redis.hgetall(f"rq:job:{keys.route_job_id('etl:odd')}")
    assert job[b"origin"] == job[b"weird"] == odd.encode("utf-8")
    assert job[b"timeout"] == b"60"
