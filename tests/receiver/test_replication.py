"""Acknowledging only what replicas have (``FLOWHOOKS_REDIS_MIN_REPLICAS``): the group commit's
``WAIT`` against a real primary and a real replica, which a test pauses (SIGSTOP) to keep it
from confirming anything."""

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from receiver.ingest import REPLICATION_MARK, Unreplicated
from tests.receiver.test_ingest import event, writer
from tests.sentinels import DataNode
from tests.support import HMAC_CONFIG, ServedApp, make_config, settings, signed_event, wait_until

HMAC_STEPS = make_config(HMAC_CONFIG).sources["etl"].verify


class Pair:
    def __init__(self, folder: Path) -> None:
        self.primary = DataNode(folder, None)
        self.replica = DataNode(folder, None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.primary.port}/0"

    def online(self) -> int:
        info = self.primary.client().info("replication")
        return sum(
            1
            for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
        )


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A primary and its replica, in sync."""
    folder = Path(tempfile.mkdtemp(prefix="flowhooks-pair-"))
    nodes = Pair(folder)
    try:
        nodes.primary.start()
        nodes.replica.start(replica_of=nodes.primary.port)
        assert wait_until(lambda: nodes.online() == 1, 30)
        yield nodes
    finally:
        for node in (nodes.replica, nodes.primary):
            if node.process is not None:
                node.resume()
            node.kill()
        shutil.rmtree(folder, ignore_errors=True)


def test_with_the_replica_in_sync_events_and_duplicates_are_acknowledged(pair: Pair) -> None:
    async def scenario() -> list[bool]:
        conn = Redis.from_url(pair.url)
        w = writer(conn, min_replicas=1, replica_wait=2.0)
        results = await asyncio.gather(*(w.write(event(f"r{i % 3}"), {}) for i in range(6)))
        results.append(await w.write(event("r0"), {}))
        await conn.aclose()
        return results

    results = asyncio.run(scenario())
    assert results.count(True) == 3 and results[-1] is False
    assert pair.replica.client().exists("flowhooks:event:etl:r0", "flowhooks:dedup:etl:r2") == 2


async def retried(conn: Redis, event_id: str) -> bool:
    """Writes ``event_id`` as its sender does after a 503: again, until it is acknowledged
    (a resumed replica confirms at its own pace, later on a busy machine)."""
    w = writer(conn, min_replicas=1, replica_wait=1.0, deadline=5.0)
    for _ in range(20):
        try:
            return await w.write(event(event_id), {})
        except Unreplicated:
            continue
    raise AssertionError(f"{event_id} was never acknowledged after the replica resumed")


def test_without_the_replica_nothing_is_acknowledged_not_even_a_duplicate(pair: Pair) -> None:
    """The event is stored on the primary, but its sender gets a 503 and retries; the retry,
    on another connection (another receiver), is a duplicate and still waits for the
    replica: a 200 only once the replica has the first acceptance."""

    async def scenario() -> tuple[BaseException | bool, BaseException | bool, bool]:
        first = Redis.from_url(pair.url)
        second = Redis.from_url(pair.url)
        await second.ping()  # connected while the replica still confirmed everything
        pair.replica.pause()
        one = writer(first, min_replicas=1, replica_wait=0.3)
        other = writer(second, min_replicas=1, replica_wait=0.3)
        new = await asyncio.gather(one.write(event("w1"), {}), return_exceptions=True)
        duplicate = await asyncio.gather(other.write(event("w1"), {}), return_exceptions=True)
        pair.replica.resume()
        try:
            return new[0], duplicate[0], await retried(second, "w1")
        finally:
            await first.aclose()
            await second.aclose()

    new, duplicate, later = asyncio.run(scenario())
    assert isinstance(new, Unreplicated) and isinstance(duplicate, Unreplicated)
    assert later is False  # now replicated: the duplicate is acknowledged
    assert pair.replica.client().exists("flowhooks:event:etl:w1") == 1


def test_a_round_trip_short_of_replicas_fails_every_request_of_it(pair: Pair) -> None:
    async def scenario() -> list[BaseException | bool]:
        conn = Redis.from_url(pair.url)
        pair.replica.pause()
        w = writer(conn, min_replicas=1, replica_wait=0.3, max_batch=4)
        writes = (w.write(event(f"b{i}"), {}) for i in range(10))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        pair.replica.resume()
        await conn.aclose()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, Unreplicated) for o in outcomes), outcomes


def test_more_replicas_than_there_are_is_never_acknowledged(pair: Pair) -> None:
    async def scenario() -> None:
        conn = Redis.from_url(pair.url)
        w = writer(conn, min_replicas=2, replica_wait=2.0, deadline=5.0)  # time to confirm
        try:
            with pytest.raises(Unreplicated, match="1 of 2 replicas"):
                await w.write(event("two"), {})
        finally:
            await conn.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("min_replicas", [0, 1])
def test_a_primary_without_the_script_gets_it_again(pair: Pair, min_replicas: int) -> None:
    """Scripts are not replicated: a promoted replica answers NOSCRIPT at first."""

    async def scenario() -> tuple[bool, bool]:
        conn = Redis.from_url(pair.url)
        w = writer(conn, min_replicas=min_replicas, replica_wait=2.0)
        first = await w.write(event("s1"), {})
        await conn.script_flush()
        second = await w.write(event("s2"), {})
        await conn.aclose()
        return first, second

    assert asyncio.run(scenario()) == (True, True)


def test_the_replication_mark_stores_nothing(pair: Pair) -> None:
    async def scenario() -> None:
        conn = Redis.from_url(pair.url)
        w = writer(conn, min_replicas=1, replica_wait=2.0)
        await w.write(event("m1"), {})
        await w.write(event("m1"), {})
        await conn.aclose()

    asyncio.run(scenario())
    assert pair.primary.client().exists(REPLICATION_MARK) == 0


def test_the_receiver_answers_503_and_readyz_says_why(pair: Pair) -> None:
    served = settings(pair.url, redis_min_replicas=1, redis_wait_timeout=0.3, retry_after=7)
    with ServedApp(served, make_config(HMAC_CONFIG)) as app, httpx.Client() as client:
        assert client.get(f"{app.url}/readyz").status_code == 200
        body, headers = signed_event(HMAC_STEPS, "ok-1", time.time())
        for _ in range(20):  # a busy machine's replica may confirm later than the wait
            first = client.post(f"{app.url}/webhooks/etl", content=body, headers=headers)
            if first.status_code != 503:
                break
        assert first.json() in ({"id": "ok-1"}, {"id": "ok-1", "duplicate": True})

        pair.replica.pause()
        body, headers = signed_event(HMAC_STEPS, "late-1", time.time())
        refused = client.post(f"{app.url}/webhooks/etl", content=body, headers=headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "7"
        metrics = client.get(f"{app.url}/metrics").text
        assert 'flowhooks_webhook_requests_total{outcome="unreplicated",source="etl"}' in metrics

        pair.replica.resume()
        for _ in range(20):  # the sender retries until the resumed replica confirms
            again = client.post(f"{app.url}/webhooks/etl", content=body, headers=headers)
            if again.status_code != 503:
                break
        assert (again.status_code, again.json()) == (200, {"id": "late-1", "duplicate": True})

        pair.replica.kill()
        assert wait_until(lambda: pair.online() == 0, 10)
        ready = client.get(f"{app.url}/readyz")
        assert (ready.status_code, ready.json()) == (
            503,
            {
                "status": "unavailable",
                "redis": "too few replicas",
                "config": "loaded",
                "replicas": 0,
                "required": 1,
            },
        )
