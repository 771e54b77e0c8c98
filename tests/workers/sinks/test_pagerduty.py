"""The PagerDuty sink against a real HTTP server standing in for the Events API v2."""

import json
import logging

import pytest
from pydantic import SecretStr

from config.schema import PagerDutyAction
from tests.workers.sinks.standins import HttpStandIn, Reply, assert_no_secret, failure, run
from workers.sinks import DeliveryError, pagerduty

ROUTING_KEY = "R0utingKeyLeakP4d9x2Vq7mZ3wK8sTn"
ACCEPTED = Reply(
    202,
    json.dumps({"status": "success", "message": "Event processed", "dedup_key": "k"}).encode(),
    headers={"content-type": "application/json"},
)
EVENT = {
    "event_action": "trigger",
    "dedup_key": "flowhooks:etl:101",
    "payload": {
        "summary": "warehouse-load failed: <b>disk full</b>",
        "source": "etl",
        "severity": "error",
        "custom_details": {"flow_id": "101", "error": "ORA-01653\r\nline 2"},
    },
    "links": [{"href": "https://app.etlworks.com/#/executions/7", "text": "Execution"}],
}


def action(url: str) -> PagerDutyAction:
    return PagerDutyAction(routing_key=SecretStr(ROUTING_KEY), url=url)


def send(url: str, timeout: float = 2.0) -> int:
    return run(
        lambda client: pagerduty.send(action(url), EVENT, client=client, delivery_id="d1"), timeout
    )


def send_failure(url: str, timeout: float = 2.0) -> DeliveryError:
    return failure(
        lambda client: pagerduty.send(action(url), EVENT, client=client, delivery_id="d1"), timeout
    )


def test_success_carries_the_routing_key_and_the_exact_event(standin: HttpStandIn) -> None:
    standin.reset(default=ACCEPTED)
    assert send(standin.url("/v2/enqueue")) == 202
    [request] = standin.requests
    assert (request.method, request.path) == ("POST", "/v2/enqueue")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {**EVENT, "routing_key": ROUTING_KEY}


def test_a_routing_key_in_the_payload_is_replaced(standin: HttpStandIn) -> None:
    standin.reset(default=ACCEPTED)
    event = {**EVENT, "routing_key": "from-a-template"}
    run(lambda client: pagerduty.send(action(standin.url()), event, client=client, delivery_id="d"))
    assert standin.requests[0].json()["routing_key"] == ROUTING_KEY


def test_invalid_event_is_permanent(standin: HttpStandIn) -> None:
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}
    standin.reset(Reply(400, json.dumps(body).encode(), headers={"retry-after": "5"}))
    error = send_failure(standin.url())
    assert (error.retryable, error.status, error.retry_after) == (False, 400, None)
    assert str(error) == "pagerduty: HTTP 400 Bad Request (permanent)"


def test_rate_limit_is_retryable_with_its_delay(standin: HttpStandIn) -> None:
    standin.reset(Reply(429, b"", headers={"retry-after": "30"}), default=ACCEPTED)
    error = send_failure(standin.url())
    assert (error.retryable, error.status, error.retry_after) == (True, 429, 30.0)
    assert send(standin.url()) == 202
    assert [r.json() for r in standin.requests] == [{**EVENT, "routing_key": ROUTING_KEY}] * 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(standin: HttpStandIn, status: int) -> None:
    standin.reset(Reply(status, b""))
    error = send_failure(standin.url())
    assert (error.retryable, error.status) == (True, status)


@pytest.mark.parametrize("status", [401, 403, 404, 413])
def test_other_client_errors_are_permanent(standin: HttpStandIn, status: int) -> None:
    standin.reset(Reply(status, b""))
    assert not send_failure(standin.url()).retryable


def test_connection_refused_and_timeout_are_retryable(
    standin: HttpStandIn, closed_port: int
) -> None:
    refused = send_failure(f"http://127.0.0.1:{closed_port}/v2/enqueue")
    assert (refused.retryable, refused.reason) == (True, "ConnectError")
    slow = send_failure(standin.slow_url(), timeout=0.1)
    assert (slow.retryable, slow.reason) == (True, "ReadTimeout")


def test_no_failure_reveals_the_routing_key(
    standin: HttpStandIn, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    standin.reset(ACCEPTED)
    assert send(standin.url()) == 202
    replies = [
        Reply(400, echo=True),
        Reply(429, echo=True, headers={"retry-after": "1"}),
        Reply(500, echo=True),
        Reply(404, ROUTING_KEY.encode()),
        Reply(302, headers={"location": f"/x?routing_key={ROUTING_KEY}"}),
    ]
    standin.reset(*replies)
    errors = [send_failure(standin.url()) for _ in replies]
    errors.append(send_failure(f"http://127.0.0.1:{closed_port}/v2/enqueue"))
    errors.append(send_failure(standin.slow_url(), timeout=0.1))
    for error in errors:
        assert_no_secret(error, caplog.records, [ROUTING_KEY])
