"""A notification held back says so in the worker's log at INFO, with its reason: the second
failure of a flow within the default 4 h repeat interval, a muted route, a silence, a grouped
route. Real receiver, real worker process, real Redis, a Slack stand-in."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests.e2e.delivery_support import Flowhooks, Sinks, running, serving_sinks

pytestmark = pytest.mark.slow

ROUTES = """
actions: []
routes:
  - matchers: ['flow_name="muted-load"']
    actions: [slack]
    mute_time_intervals: [always]
  - matchers: ['flow_name="grouped-load"']
    actions: [slack]
    group_by: [flow_id]
    group_wait: 1h
  - matchers: ['kind="flow.failed"']
    actions: [slack]
"""
ALWAYS = """
time_intervals:
  always: [{weekdays: ["monday:sunday"]}]
"""


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture
def flowhooks(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    with running(redis, redis_url, sinks, tmp_path, ROUTES, extra=ALWAYS) as system:
        system.start_worker()
        yield system


def logged(system: Flowhooks, event_id: str) -> list[dict[str, Any]]:
    """The worker's log lines (JSON) about ``event_id``."""
    lines = [json.loads(row) for w in system.workers for row in w.output().splitlines()]
    return [line for line in lines if line.get("event_id") == event_id]


def held(system: Flowhooks, event_id: str) -> list[str]:
    """What the worker logged at INFO about holding back ``event_id``'s notifications."""
    return [
        line["msg"]
        for line in logged(system, event_id)
        if line["level"] == "info" and line["msg"].startswith(("not sent", "held"))
    ]


def test_every_notification_held_back_is_logged_with_its_reason(
    flowhooks: Flowhooks, sinks: Sinks
) -> None:
    first = flowhooks.post("FLOW_FAILED", "first", flow_id=901)
    flowhooks.wait_deliveries(first, "slack", 1)
    assert held(flowhooks, "first") == []

    # The same flow fails again: the default repeat_interval (4 h) holds it back.
    flowhooks.wait_routed(flowhooks.post("FLOW_FAILED", "again", flow_id=901))
    [line] = held(flowhooks, "again")
    assert line.startswith("not sent: repeat_interval, notified ")
    assert line.endswith("s ago, repeat_interval 14400s")
    [entry] = [e for e in logged(flowhooks, "again") if e["msg"] == line]
    assert (entry["route"], entry["action"], entry["reason"]) == (
        "routes.routes[2]",
        "slack",
        "repeat_interval",
    )

    flowhooks.wait_routed(flowhooks.post("FLOW_FAILED", "muted", flow_name="muted-load"))
    assert held(flowhooks, "muted") == ["not sent: muted, always"]

    added = flowhooks.cli(
        "silence", "add", "--matcher", 'flow_id="903"', "--duration", "1h", "--comment", "t"
    )
    assert added.returncode == 0, added.stderr
    silence = added.stdout.splitlines()[1].split()[0]  # under the table's header row
    flowhooks.wait_routed(flowhooks.post("FLOW_FAILED", "silenced", flow_id=903))
    assert held(flowhooks, "silenced") == [f"not sent: silenced, {silence}"]

    flowhooks.wait_routed(
        flowhooks.post("FLOW_FAILED", "g1", flow_id=904, flow_name="grouped-load")
    )
    flowhooks.wait_routed(
        flowhooks.post("FLOW_FAILED", "g2", flow_id=904, flow_name="grouped-load")
    )
    assert held(flowhooks, "g1") == ["held for a digest: it goes in 3600s"]
    assert held(flowhooks, "g2") == ["held for a digest: the digest pending takes it"]

    assert len(sinks.slack.requests) == 1
