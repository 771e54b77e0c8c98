"""Inhibition end to end: the real receiver and a real worker process. While the warehouse
load's failure is open, a mart's failure does not page (its timeline says ``inhibited`` and
names the warehouse's event, and ``routes test`` shows it with the state it read); once the
warehouse load succeeds, its page is resolved and the mart, still failing, pages."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.e2e.delivery_support import Flowhooks, Sinks, deliveries, running, serving_sinks
from tests.support import FLOWHOOKS, run_process

ROUTES = """
routes:
  - name: failures
    matchers: ['kind="flow.failed"']
    actions: [pager]
    resolve: true
"""
INHIBIT = """
inhibit_rules:
  - source_matchers: ['kind="flow.failed"', 'flow_name="warehouse-load"']
    target_matchers: ['kind="flow.failed"', 'flow_name=~"marts-.*"']
    equal: [source]
"""


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture
def system(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    with running(redis, redis_url, sinks, tmp_path, ROUTES, extra=INHIBIT) as flowhooks:
        yield flowhooks


def routes_test(system: Flowhooks, *args: str) -> "subprocess.CompletedProcess[str]":
    """``routes test`` of another mart's failure, with the state in the system's Redis."""
    labels = ("kind=flow.failed", "flow_name=marts-orders", "flow_id=201", "source=etl")
    argv = [*FLOWHOOKS, "routes", "test", *labels, *args]
    return run_process(argv, system.environ)


def pages(sinks: Sinks) -> list[tuple[str, str]]:
    """``(event_action, dedup_key)`` of each PagerDuty request."""
    sent = [request.json() for request in sinks.pagerduty.requests]
    return [(body["event_action"], body["dedup_key"]) for body in sent]


def test_a_mart_does_not_page_while_the_warehouse_load_is_failing(
    system: Flowhooks, sinks: Sinks
) -> None:
    system.start_worker()
    warehouse = system.post("FLOW_FAILED", "wh-1", flow_id=100, flow_name="warehouse-load")
    system.wait_deliveries(warehouse, "pager", 1)
    assert pages(sinks) == [("trigger", "flowhooks:etl:100")]

    mart = system.post("FLOW_FAILED", "mart-1", flow_id=200, flow_name="marts-orders")
    timeline = system.wait_routed(mart)
    [held] = [e for e in timeline if e["stage"] == "suppressed"]
    assert (held["reason"], held["detail"], held["route"]) == ("inhibited", warehouse, "failures")
    assert len(sinks.pagerduty.requests) == 1

    shown = routes_test(system)
    assert shown.returncode == 0, shown.stderr
    assert f"SUPPRESSED: inhibited (by {warehouse} (flow.failed warehouse-load))" in shown.stdout
    assert f"etl:100: {warehouse} (flow.failed warehouse-load)" in shown.stdout
    as_json = routes_test(system, "-o", "json")
    report = json.loads(as_json.stdout)
    assert [d["suppressed"] for d in report["deliveries"]] == ["inhibited"]
    assert [i["event"] for i in report["inhibiting"]] == [warehouse]

    # the warehouse load succeeds: its page resolves, and the mart, still failing, pages
    recovered = system.post("FLOW_SUCCESS", "wh-2", flow_id=100, flow_name="warehouse-load")
    system.wait_deliveries(recovered, "pager", 1)
    system.wait_deliveries(mart, "pager", 1)
    system.wait(lambda: len(sinks.pagerduty.requests) == 3, "the mart's page")
    assert sorted(pages(sinks)) == [
        ("resolve", "flowhooks:etl:100"),
        ("trigger", "flowhooks:etl:100"),
        ("trigger", "flowhooks:etl:200"),
    ]
    [delivered] = deliveries(system.timeline(mart), "pager")
    assert delivered["outcome"] == "delivered"

    # with the warehouse fine, another mart's failure pages at once
    other = system.post("FLOW_FAILED", "mart-2", flow_id=300, flow_name="marts-customers")
    system.wait_deliveries(other, "pager", 1)
    assert pages(sinks)[-1] == ("trigger", "flowhooks:etl:300")


def test_a_resolve_is_never_inhibited(system: Flowhooks, sinks: Sinks) -> None:
    system.start_worker()
    mart = system.post("FLOW_FAILED", "mart-1", flow_id=200, flow_name="marts-orders")
    system.wait_deliveries(mart, "pager", 1)
    warehouse = system.post("FLOW_FAILED", "wh-1", flow_id=100, flow_name="warehouse-load")
    system.wait_deliveries(warehouse, "pager", 1)
    # the mart recovers while the warehouse load is failing: its page is resolved all the same
    fixed = system.post("FLOW_SUCCESS", "mart-2", flow_id=200, flow_name="marts-orders")
    [resolved] = system.wait_deliveries(fixed, "pager", 1)
    assert (resolved["kind"], resolved["outcome"]) == ("resolve", "delivered")
    assert ("resolve", "flowhooks:etl:200") in pages(sinks)
