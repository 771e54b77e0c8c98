"""workers.etlworks.audit: a flow failure enriched with the flow's latest change, against the
Etlworks simulator over loopback HTTP and a real Redis; the audit log read once a minute per
instance; a log that fails enriching nothing; the records Etlworks may write, parsed."""

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis import Redis

from config import eventlog, keys
from config.events import Event
from tests.etlworks.simulator import API_KEY, Simulator
from tests.support import make_config
from workers.etlworks import audit
from workers.rendering import render

HOUR_MS = 3600 * 1000
RETENTION = 3600.0


def config_for(sim: Simulator, audit_on: bool = True) -> Any:
    return make_config(
        f"""
etlworks:
  sim: {{url: "{sim.url}", api_key: "${{API_KEY}}", audit: {str(audit_on).lower()}}}
sources:
  etl: {{allow_unsigned: true, etlworks: sim}}
  other: {{allow_unsigned: true}}
actions:
  slack: {{slack: {{webhook_url: "${{SLACK_URL}}"}}}}
  pager: {{pagerduty: {{routing_key: "${{PD_KEY}}"}}}}
  mail: {{email: {{to: [a@example.com], from: b@example.com, smtp: {{host: smtp.example.com}}}}}}
  log: {{log: {{}}}}
""",
        {"API_KEY": API_KEY, "SLACK_URL": "https://hooks.slack.com/services/T/B/x", "PD_KEY": "k"},
    )


def failure(redis: Redis, event_id: str, flow_id: str, at: datetime, **more: Any) -> dict[str, Any]:
    event = {
        "id": event_id,
        "source": "etl",
        "event": "FLOW_FAILED",
        "kind": "flow.failed",
        "flow_id": flow_id,
        "flow_name": f"orders-{flow_id}",
        "finished_at": at.isoformat(),
        "received_at": at.isoformat(),
        **more,
    }
    ref = keys.ref(str(event["source"]), event_id)
    redis.set(keys.event(ref), json.dumps(event))
    redis.rpush(keys.timeline(ref), json.dumps(eventlog.entry("received")))
    return event


def enrich(redis: Redis, config: Any, event: dict[str, Any]) -> dict[str, Any]:
    """The event enriched, its timeline entries written as the route job writes them."""
    ref = keys.ref(str(event["source"]), str(event["id"]))
    entries: list[dict[str, Any]] = []

    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return await audit.enrich(
                redis, config, client, event, retention=RETENTION, entries=entries
            )

    enriched = asyncio.run(main())
    eventlog.append_all(redis, ref, entries)
    return enriched


def sim_time(sim: Simulator) -> datetime:
    return datetime.fromtimestamp(sim.now_ms() / 1000, UTC)


def test_a_failure_is_told_the_flows_latest_change_before_it(
    redis: Redis, etlworks_sim: Simulator
) -> None:
    sim, config = etlworks_sim, config_for(etlworks_sim)
    base = sim.now_ms()  # the simulator's clock runs fast: every time is from one reading
    now = datetime.fromtimestamp(base / 1000, UTC)
    sim.change(7, "bob", "create", at_ms=base - 30 * HOUR_MS)
    sim.change(7, "alice", "update", at_ms=base - 2 * HOUR_MS)
    event = failure(redis, "e1", "7", now)
    enriched = enrich(redis, config, event)
    assert enriched["change"] == "changed 2 h before by alice: update"
    # a retry of its delivery reads it back with the stored event
    assert audit.attach(redis, eventlog.load_event(redis, "etl:e1")) == enriched
    # and so does a replay, without asking the audit log again
    calls = sim.count("GET /v1/audit")
    assert enrich(redis, config, event) == enriched
    assert sim.count("GET /v1/audit") == calls
    [entry] = [e for e in eventlog.load(redis, "etl:e1").timeline if e["stage"] == "changed"]  # type: ignore[union-attr]
    assert (entry["user"], entry["action"]) == ("alice", "update")
    # a change after the failure is not its cause
    sim.change(8, "carol", "update", at_ms=base + HOUR_MS)
    assert "change" not in enrich(redis, config, failure(redis, "e2", "8", now))


def test_a_storm_of_failures_reads_the_audit_log_once(
    redis: Redis, etlworks_sim: Simulator
) -> None:
    sim, config = etlworks_sim, config_for(etlworks_sim)
    now = sim_time(sim)
    for flow_id in range(20):
        enrich(redis, config, failure(redis, f"e{flow_id}", str(flow_id), now))
    assert sim.count("GET /v1/audit") == 1
    redis.delete(keys.audit("sim"))  # the cache's minute is over
    enrich(redis, config, failure(redis, "e99", "7", now))
    assert sim.count("GET /v1/audit") == 2


def test_only_failures_of_an_auditing_instances_sources_are_enriched(
    redis: Redis, etlworks_sim: Simulator
) -> None:
    sim = etlworks_sim
    now = sim_time(sim)
    sim.change(7, "alice", "update", at_ms=sim.now_ms() - HOUR_MS)
    success = {**failure(redis, "s1", "7", now), "kind": "flow.succeeded"}
    assert enrich(redis, config_for(sim), success) == success
    elsewhere = failure(redis, "o1", "7", now, source="other")
    assert enrich(redis, config_for(sim), elsewhere) == elsewhere
    off = failure(redis, "f1", "7", now)
    assert enrich(redis, config_for(sim, audit_on=False), off) == off
    assert sim.count("GET /v1/audit") == 0


def test_an_audit_log_that_fails_enriches_nothing_and_keeps_the_key_quiet(
    redis: Redis, etlworks_sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = etlworks_sim
    sim.script("GET /v1/audit", [503, 401])
    event = failure(redis, "e1", "7", sim_time(sim))
    with caplog.at_level(logging.WARNING):
        assert enrich(redis, config_for(sim), event) == event
        assert enrich(redis, config_for(sim), event) == event
    assert not redis.exists(keys.audit("sim"))  # a failure is not cached
    assert "the audit log cannot be read" in caplog.text
    assert API_KEY not in caplog.text


def test_changes_are_shown_in_every_message(etlworks_sim: Simulator) -> None:
    config = config_for(etlworks_sim)
    said = "changed 2 h before by alice: update"
    stored = Event(
        id="e1",
        source="etl",
        event="FLOW_FAILED",
        kind="flow.failed",
        flow_id="7",
        received_at=datetime(2026, 5, 9, 3, 12, tzinfo=UTC),
    )
    event = stored.model_dump(mode="json") | {"change": said}
    slack = render(config.actions["slack"], event, resolved=False, route="r").payload
    assert f"*Changed:* {said}" in json.dumps(slack)
    mail = render(config.actions["mail"], event, resolved=False, route="r").payload
    assert isinstance(mail, dict)
    assert f"Changed:   {said}" in mail["text"]
    assert f'<th align="left">Changed</th><td>{said}</td>' in mail["html"]
    paged = render(config.actions["pager"], event, resolved=False, route="r").payload
    assert isinstance(paged, dict)
    assert paged["payload"]["custom_details"]["change"] == said
    logged = render(config.actions["log"], event, resolved=False, route="r").payload
    assert str(logged).endswith(said)


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        (
            [{"resourceType": "flow", "resourceId": 7, "user": "a", "action": "update",
              "timestamp": 1778300000000}],
            [("7", "a", "update")],
        ),
        (
            {"content": [{"type": "FLOW", "flowId": "7", "userName": "b", "operation": "delete",
                          "createdAt": "2026-05-09T03:00:00Z"}]},
            [("7", "b", "delete")],
        ),
        (
            [{"resourceType": "connection", "resourceId": 7, "timestamp": 1778300000000},
             {"resourceType": "flow", "resourceId": 7}, "junk",
             {"resourceType": "flow", "resourceId": 8, "timestamp": "2026-05-09T03:00:00Z"}],
            [("8", "someone", "change")],
        ),
        ("not a list", []),
    ],
)  # fmt: skip
def test_the_records_etlworks_may_write_are_parsed(answer: Any, found: list[Any]) -> None:
    assert [(c.flow_id, c.user, c.action) for c in audit.parse(answer)] == found


@pytest.mark.parametrize(
    ("span", "said"),
    [
        (timedelta(seconds=20), "moments"),
        (timedelta(minutes=5), "5 min"),
        (timedelta(hours=2, minutes=59), "2 h"),
        (timedelta(days=3), "3 d"),
    ],
)
def test_how_long_before(span: timedelta, said: str) -> None:
    at = datetime(2026, 5, 9, tzinfo=UTC)
    change = audit.Change("7", at - span, "alice", "update")
    assert change.describe(at) == f"changed {said} before by alice: update"
