"""Joins end to end: webhooks to the real receiver, real worker processes, a join's ``then``
delivered to the webhook stand-in once per window however often and however concurrently its
members arrive, and ``on_expire`` at the window's end (the clock injected) naming what is
missing."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis

from config import keys
from config.joins import window_of
from config.loader import load
from tests.e2e.delivery_support import (
    Flowhooks,
    Sinks,
    has_stage,
    running,
    serving_sinks,
)
from workers.tasks import expire_joins

ROUTES = "actions: []"
JOIN = """
joins:
  marts:
    all: ['flow_id="101"', 'flow_id="102"']
    window: {cron: "0 0 * * *", timezone: Europe/Berlin}
    then: [hook]
    on_expire: [slack]
"""
QUEUE = f"rq:queue:{keys.QUEUE}"


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture
def system(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    with running(redis, redis_url, sinks, tmp_path, ROUTES, extra=JOIN) as flowhooks:
        yield flowhooks


def settled(system: Flowhooks, refs: list[str]) -> bool:
    routed = all(has_stage(system.timeline(ref), "routed") for ref in refs)
    return routed and not system.redis.llen(QUEUE)


def test_both_members_succeed_and_the_join_acts_once(system: Flowhooks, sinks: Sinks) -> None:
    # A's webhook three times (three deliveries of one execution each get an id of their own)
    refs = [system.post("FLOW_SUCCESS", f"a-{i}", flow_id=101) for i in range(3)]
    refs.append(system.post("FLOW_SUCCESS", "b-1", flow_id=102))
    system.start_worker()
    system.start_worker()  # two workers racing for the members' route jobs
    system.wait(lambda: settled(system, refs), "every member routed")
    system.wait(lambda: len(sinks.webhook.requests) >= 1, "the join's action")
    system.wait(lambda: settled(system, refs), "nothing left to do")
    assert len(sinks.webhook.requests) == 1
    joined = [ref for ref in refs if has_stage(system.timeline(ref), "join")]
    assert len(joined) == 1
    [entry] = [e for e in system.timeline(joined[0]) if e["stage"] == "join"]
    assert entry["join"] == "marts"
    assert set(entry["members"]) == {'flow_id="101"', 'flow_id="102"'}


def test_a_member_that_never_succeeds_is_named_when_the_window_ends(
    system: Flowhooks, sinks: Sinks
) -> None:
    ref = system.post("FLOW_SUCCESS", "a-only", flow_id=101)
    system.start_worker()
    system.wait_routed(ref)
    config = load(system.config_file, system.environ)
    join = config.joins["marts"]
    end = window_of(join.window, datetime.now(UTC)).end
    after = end + timedelta(seconds=join.grace + 1)
    job_timeout, retention = 60.0, 3600.0
    assert expire_joins(system.redis, config, after, job_timeout, retention) == 1
    assert expire_joins(system.redis, config, after, job_timeout, retention) == 0
    system.wait(lambda: len(sinks.slack.requests) == 1, "the on_expire message")
    message = sinks.slack.requests[0].json()
    assert 'flow_id=\\"102\\"' in str(message) or 'flow_id="102"' in str(message)
    assert not sinks.webhook.requests
