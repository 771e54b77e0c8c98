"""The Slack sink against a real HTTP server standing in for Slack's incoming webhooks."""

import logging
import time
from email.utils import formatdate

import httpx
import pytest
from pydantic import SecretStr

from config.schema import SlackAction
from tests.workers.sinks.standins import (
    HttpStandIn,
    Reply,
    assert_no_secret,
    failure,
    run,
)
from workers.sinks import DeliveryError, slack

TOKEN = "SlackT0kenLeakQ7mZ2xW9"
PATH = f"/services/T0LEAK1/B0LEAK2/{TOKEN}"
MESSAGE = {
    "text": "warehouse-load failed",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*failed* &lt;x&gt;"}}],
}


def action(url: str) -> SlackAction:
    return SlackAction(webhook_url=SecretStr(url))


def send(standin_url: str, timeout: float = 2.0) -> int:
    return run(
        lambda client: slack.send(action(standin_url), MESSAGE, client=client, delivery_id="d1"),
        timeout,
    )


def send_failure(url: str, timeout: float = 2.0) -> DeliveryError:
    return failure(
        lambda client: slack.send(action(url), MESSAGE, client=client, delivery_id="d1"), timeout
    )


def test_success_posts_the_message_as_json(standin: HttpStandIn) -> None:
    assert send(standin.url(PATH)) == 200
    [request] = standin.requests
    assert (request.method, request.path) == ("POST", PATH)
    assert request.headers["content-type"] == "application/json"
    assert request.json() == MESSAGE


def test_outage_then_rate_limit_then_ok(standin: HttpStandIn) -> None:
    standin.reset(
        Reply(503, b"service unavailable"),
        Reply(503, b"service unavailable"),
        Reply(429, b"rate_limited", headers={"retry-after": "2"}),
    )
    outcomes: list[tuple[bool, int | None, float | None]] = []
    for _ in range(3):
        error = send_failure(standin.url(PATH))
        outcomes.append((error.retryable, error.status, error.retry_after))
    assert outcomes == [(True, 503, None), (True, 503, None), (True, 429, 2.0)]
    assert send(standin.url(PATH)) == 200
    assert [r.json() for r in standin.requests] == [MESSAGE] * 4


def test_retry_after_as_an_http_date(standin: HttpStandIn) -> None:
    standin.reset(
        Reply(
            429, b"rate_limited", headers={"retry-after": formatdate(time.time() + 30, usegmt=True)}
        )
    )
    error = send_failure(standin.url(PATH))
    assert error.retryable
    assert error.retry_after is not None and 28 <= error.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_retryable(standin: HttpStandIn, status: int) -> None:
    standin.reset(Reply(status, b"rollup_error"))
    error = send_failure(standin.url(PATH))
    assert (error.retryable, error.status, error.retry_after) == (True, status, None)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ],
)
def test_slack_errors_are_permanent_and_named(standin: HttpStandIn, status: int, code: str) -> None:
    standin.reset(Reply(status, code.encode()))
    error = send_failure(standin.url(PATH))
    assert (error.retryable, error.status) == (False, status)
    assert str(error).endswith(f": {code} (permanent)")


@pytest.mark.parametrize("body", [b"", b"okay", b"invalid_payload", b"<html>captive portal</html>"])
def test_200_without_ok_is_an_error(standin: HttpStandIn, body: bytes) -> None:
    standin.reset(Reply(200, body))
    error = send_failure(standin.url(PATH))
    assert (error.retryable, error.status) == (False, 200)


def test_an_error_code_that_is_part_of_the_url_is_not_quoted(standin: HttpStandIn) -> None:
    standin.reset(Reply(404, b"lowercasetoken"))
    error = send_failure(standin.url("/services/T1/B1/lowercasetoken"))
    assert str(error) == "slack: HTTP 404 Not Found (permanent)"


def test_connection_refused_and_timeout_are_retryable(
    standin: HttpStandIn, closed_port: int
) -> None:
    refused = send_failure(f"http://127.0.0.1:{closed_port}{PATH}")
    assert (refused.retryable, refused.reason) == (True, "ConnectError")
    slow = send_failure(standin.slow_url(PATH), timeout=0.1)
    assert (slow.retryable, slow.reason) == (True, "ReadTimeout")


def test_no_failure_reveals_the_webhook_url(
    standin: HttpStandIn, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = standin.url(PATH)
    secrets = [PATH, TOKEN, url, httpx.URL(url).path.lstrip("/")]
    assert send(url) == 200  # httpx logs every request's URL at INFO
    replies = [
        Reply(400, echo=True),
        Reply(404, TOKEN.encode()),
        Reply(404, TOKEN.lower().encode()),
        Reply(429, echo=True, headers={"retry-after": "1", "location": url}),
        Reply(503, echo=True),
        Reply(200, echo=True),
        Reply(302, headers={"location": url}),
    ]
    standin.reset(*replies)
    errors = [send_failure(url) for _ in replies]
    errors.append(send_failure(f"http://127.0.0.1:{closed_port}{PATH}"))
    errors.append(send_failure(standin.slow_url(PATH), timeout=0.1))
    errors.append(send_failure(url.replace("http://", "ftp://")))
    errors.append(send_failure(url.replace("127.0.0.1", "[::1")))
    for error in errors:
        assert_no_secret(error, caplog.records, secrets)
