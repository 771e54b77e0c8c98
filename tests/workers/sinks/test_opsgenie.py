"""Opsgenie: the alert rendered for a failure, its close on recovery and a digest, and the send
against a stand-in that keeps to the Alert API v2's contract (GenieKey, 202, limits, 422, 429)."""

import logging
from typing import Any

import pytest

from config.schema import Action
from config.sinks import OpsgenieAction
from tests.workers.sinks.standins import (
    OPSGENIE_OK,
    HttpStandIn,
    Reply,
    assert_no_secret,
    failure,
    opsgenie_contract,
    run,
)
from tests.workers.test_rendering import FAILED, SUCCEEDED, event
from workers.rendering import render, render_digest
from workers.sinks import DeliveryError, opsgenie

KEY = "og-key-Leak9Vb2Nq4"


def opsgenie_action(url: str = "https://example.test", **settings: Any) -> Action:
    return Action.model_validate(
        {"opsgenie": {"api_key": "${OG_KEY}", "url": url, **settings}},
        context={"environ": {"OG_KEY": KEY}},
    )


def test_a_failure_creates_an_alert_aliased_per_source_and_flow() -> None:
    action = opsgenie_action(priority="P2", tags=["warehouse"])
    body = render(action, FAILED, resolved=False, route="ops").payload
    assert isinstance(body, dict)
    assert body["action"] == "create"
    assert body["message"] == "Flow failed: warehouse-load (etlworks-prod)"
    assert body["alias"] == "flowhooks:etlworks-prod:12345"
    assert (body["priority"], body["source"], body["entity"]) == (
        "P2",
        "flowhooks",
        "warehouse-load",
    )
    assert body["tags"] == ["warehouse", "nightly", "flowhooks"]
    assert body["details"]["error"] == "Connection refused\nat step 3"
    assert body["details"]["link execution"] == FAILED["entity_url"]
    assert all(isinstance(value, str) for value in body["details"].values())
    assert "Error:\nConnection refused" in body["description"]
    assert KEY not in str(body)


def test_the_next_success_closes_the_same_alias() -> None:
    created = render(opsgenie_action(), FAILED, resolved=False, route="r")
    closed = render(opsgenie_action(), SUCCEEDED, resolved=True, route="r")
    assert isinstance(created.payload, dict) and isinstance(closed.payload, dict)
    assert closed.payload == {
        "action": "close",
        "alias": created.payload["alias"],
        "source": "flowhooks",
        "note": "Recovered: warehouse-load",
    }


def test_opsgenie_limits_are_kept() -> None:
    long = event(flow_name="n" * 500, error="e" * 20_000, tags=[f"t{i}" * 30 for i in range(30)])
    body = render(opsgenie_action(), long, resolved=False, route="r").payload
    assert isinstance(body, dict)
    assert len(body["message"]) == 130 and body["message"].endswith("…")
    assert len(body["tags"]) == 20 and all(len(tag) <= 50 for tag in body["tags"])
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
    assert len(body["description"]) <= 15000


def test_template_syntax_in_event_data_stays_text() -> None:
    body = render(
        opsgenie_action(), event(flow_name="{{ 7*7 }}"), resolved=False, route="r"
    ).payload
    assert isinstance(body, dict)
    assert body["message"] == "Flow failed: {{ 7*7 }} (etlworks-prod)"


def test_a_digest_is_one_alert() -> None:
    events = [event(id=f"e{i}") for i in range(3)]
    body = render_digest(opsgenie_action(), events, route="r", group={"source": "s"}).payload
    assert isinstance(body, dict)
    assert (body["action"], body["alias"]) == ("create", "flowhooks:etlworks-prod:12345")
    assert body["message"] == "3 events: source=s"
    assert body["description"].count("Flow failed") == 3


def settings_for(standin: HttpStandIn) -> OpsgenieAction:
    settings = opsgenie_action(standin.url()).settings
    assert isinstance(settings, OpsgenieAction)
    return settings


def send(standin: HttpStandIn, payload: Any) -> int:
    action = settings_for(standin)
    return run(lambda client: opsgenie.send(action, payload, client=client, delivery_id="d"))


def send_failure(standin: HttpStandIn, payload: Any) -> DeliveryError:
    action = settings_for(standin)
    return failure(lambda client: opsgenie.send(action, payload, client=client, delivery_id="d"))


def test_create_then_close_by_alias_with_the_genie_key(standin: HttpStandIn) -> None:
    standin.reset(default=OPSGENIE_OK, contract=opsgenie_contract(KEY))
    alert = render(opsgenie_action(), event(flow_id="7/a b"), resolved=False, route="r").payload
    close = render(opsgenie_action(), event(flow_id="7/a b"), resolved=True, route="r").payload
    assert send(standin, alert) == 202
    assert send(standin, close) == 202
    created, closed = standin.requests
    assert created.path == "/v2/alerts"
    assert created.headers["authorization"] == f"GenieKey {KEY}"
    assert "action" not in created.json()
    assert closed.raw_path == "/v2/alerts/flowhooks%3Aetlworks-prod%3A7%2Fa%20b/close"
    assert closed.query == "identifierType=alias"
    assert closed.json() == {"source": "flowhooks", "note": "Recovered: warehouse-load"}


def test_429_is_retried_and_422_and_401_are_permanent(
    standin: HttpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alert = render(opsgenie_action(), FAILED, resolved=False, route="r").payload
    standin.reset(
        Reply(429, b"{}", headers={"retry-after": "3"}),
        default=OPSGENIE_OK,
        contract=opsgenie_contract(KEY),
    )
    error = send_failure(standin, alert)
    assert (error.retryable, error.status, error.retry_after) == (True, 429, 3.0)
    error = send_failure(standin, {"action": "create", "message": ""})
    assert (error.retryable, error.status) == (False, 422)
    standin.reset(default=OPSGENIE_OK, contract=opsgenie_contract("another key"))
    error = send_failure(standin, alert)
    assert (error.retryable, error.status) == (False, 401)
    assert_no_secret(error, caplog.records, [KEY])


def test_the_region_chooses_the_api() -> None:
    action = Action.model_validate(
        {"opsgenie": {"api_key": "${OG_KEY}", "region": "eu"}},
        context={"environ": {"OG_KEY": KEY}},
    ).settings
    assert isinstance(action, OpsgenieAction)
    assert opsgenie.BASES[action.region] == "https://api.eu.opsgenie.com"
