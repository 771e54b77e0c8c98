"""Expectations end to end: the real receiver and a real worker process, the deadline judged
with the clock injected: a flow that does not run raises ``expectation.missed`` once, routed
to Slack like any event, and its next success resolves the incident; ``flowhooks expect
status`` tells both states."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from config import keys
from config.expectations import next_deadline
from config.loader import load
from tests.e2e.delivery_support import Flowhooks, Sinks, deliveries, running, serving_sinks
from workers.expectations import evaluate

ROUTES = """
routes:
  - name: expectations
    matchers: ['kind="expectation.missed"']
    actions: [slack, pager]
    resolve: true
"""
EXPECT = """
expect:
  nightly-orders:
    matchers: ['flow_name="orders"']
    succeed_by: {cron: "0 6 * * *", timezone: Europe/Berlin}
    grace: 10m
"""
RETENTION = 3600.0


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture
def system(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    with running(redis, redis_url, sinks, tmp_path, ROUTES, extra=EXPECT) as flowhooks:
        yield flowhooks


def status(system: Flowhooks) -> dict[str, Any]:
    done = system.cli("expect", "status", "-o", "json", "--config", str(system.config_file))
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    return dict(row)


def test_a_flow_that_never_ran_is_reported_once_and_its_success_resolves_it(
    system: Flowhooks, sinks: Sinks
) -> None:
    watching = status(system)  # watching begins now: no deadline before it counts
    assert (watching["missed"], watching["last_success"]) == (None, None)
    system.start_worker()
    config = load(system.config_file, system.environ)
    expectation = config.expect["nightly-orders"]
    since = datetime.fromisoformat(watching["watching_since"])
    deadline = next_deadline(expectation, datetime.now(UTC), since=since, last_success=None)
    later = deadline + timedelta(seconds=expectation.grace + 1)

    [ref] = evaluate(system.redis, config, later, retention=RETENTION)
    assert evaluate(system.redis, config, later, retention=RETENTION) == []
    assert evaluate(system.redis, config, later + timedelta(hours=1), retention=RETENTION) == []
    system.wait(lambda: len(sinks.slack.requests) == 1, "the missed expectation's message")
    message = json.dumps(sinks.slack.requests[0].json())
    assert "Expected success missed" in message
    assert "nightly-orders" in message
    event = system.event(ref)
    assert (event["kind"], event["entity_id"], event["flow_id"], event["flow_name"]) == (
        "expectation.missed",
        "nightly-orders",
        None,
        "orders",
    )
    assert event["raw"]["deadline"] == deadline.isoformat()
    system.wait(
        lambda: bool(system.redis.smembers(keys.incidents("etl", "expect/nightly-orders"))),
        "the incident the message opened",
    )
    missing = status(system)
    assert missing["missed"] == deadline.isoformat()
    assert missing["missed_event"] == ref

    other = system.post("FLOW_SUCCESS", "crm-ran", flow_id=7, flow_name="crm")
    system.wait_routed(other)  # not the expected flow: nothing resolved
    success = system.post("FLOW_SUCCESS", "orders-ran", flow_id=4242, flow_name="orders")
    system.wait(lambda: len(sinks.slack.requests) == 2, "the resolve")
    system.wait(lambda: len(sinks.pagerduty.requests) == 2, "the page's resolve")
    trigger, resolve = (r.json() for r in sinks.pagerduty.requests)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"]
    # the resolve answers the missed event's message: it is on that event's timeline
    notified, resolved = deliveries(system.wait_deliveries(ref, "slack", 2), "slack")
    assert (notified["kind"], resolved["kind"]) == ("notify", "resolve")
    assert (resolved["route"], resolved["outcome"]) == ("expectations", "delivered")
    assert "Recovered: orders" in json.dumps(sinks.slack.requests[1].json())
    assert not system.redis.smembers(keys.incidents("etl", "expect/nightly-orders"))
    met = status(system)
    assert met["missed"] is None
    assert met["last_success_event"] == success
    # the deadline stays judged: nothing more is sent for it
    assert evaluate(system.redis, config, later, retention=RETENTION) == []
    assert (len(sinks.slack.requests), len(sinks.pagerduty.requests)) == (2, 2)


EVERY = """
expect:
  heartbeat:
    matchers: ['flow_id="77"']
    every: 2s
"""


def test_the_workers_own_maintenance_judges_the_deadlines(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """No clock injected: a worker judging every second finds the 2 s expectation missed, and
    the missed event is routed to Slack; the stored state says when."""
    with running(
        redis,
        redis_url,
        sinks,
        tmp_path,
        ROUTES,
        extra=EVERY,
        worker_settings={"FLOWHOOKS_MAINTENANCE_INTERVAL": "1"},
    ) as system:
        system.start_worker()
        system.wait(lambda: len(sinks.slack.requests) >= 1, "the missed heartbeat's message")
        message = json.dumps(sinks.slack.requests[0].json())
        assert "Expected success missed: heartbeat" in message
        assert "heartbeat" in system.worker_logs()
        assert status(system)["missed_event"].startswith("etl:expect-heartbeat-")
