"""The generic webhook sink against a real HTTP server, with Standard Webhooks signatures
checked by recomputing them here."""

import base64
import hashlib
import hmac
import logging
import time

import pytest
from pydantic import SecretStr

from config.schema import StandardWebhooksSigning, WebhookAction
from tests.workers.sinks.standins import (
    HttpStandIn,
    Recorded,
    Reply,
    assert_no_secret,
    failure,
    run,
)
from workers.sinks import DeliveryError, webhook

KEY = b"webhook-signing-key-Hv3Nc8Lp"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
TOKEN = "Bearer hdr-t0ken-Ux5Gm1Rb"
PATH_TOKEN = "url-t0ken-Jd7Ks2Ve"
PAYLOAD = {"event": "flow.failed", "flow": {"id": 101, "name": "warehouse-load ✓"}, "n": [1, 2]}


def action(url: str, *, sign: bool = False, **fields: object) -> WebhookAction:
    headers = {"Authorization": SecretStr(TOKEN), "X-Team": SecretStr("data")}
    return WebhookAction.model_validate(
        {
            "url": SecretStr(url),
            "headers": headers,
            "sign": StandardWebhooksSigning(secret=SecretStr(WHSEC)) if sign else None,
            **fields,
        }
    )


def send(hook: WebhookAction, delivery_id: str = "evt-1_route-0_hook") -> int:
    return run(lambda client: webhook.send(hook, PAYLOAD, client=client, delivery_id=delivery_id))


def send_failure(hook: WebhookAction, timeout: float = 2.0) -> DeliveryError:
    return failure(
        lambda client: webhook.send(hook, PAYLOAD, client=client, delivery_id="d1"), timeout
    )


def verify(request: Recorded, key: bytes = KEY) -> bool:
    """The receiving side of Standard Webhooks, written from the spec."""
    msg_id, stamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    signed = f"{msg_id}.{stamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.removeprefix("v1,") for s in request.headers["webhook-signature"].split()]
    return any(hmac.compare_digest(expected, g) for g in given)


def test_success_posts_json_with_the_configured_headers(standin: HttpStandIn) -> None:
    assert send(action(standin.url(f"/in/{PATH_TOKEN}"))) == 200
    [request] = standin.requests
    assert (request.method, request.path) == ("POST", f"/in/{PATH_TOKEN}")
    assert request.json() == PAYLOAD
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == TOKEN
    assert request.headers["x-team"] == "data"
    assert request.headers["idempotency-key"] == "evt-1_route-0_hook"
    assert "webhook-signature" not in request.headers


def test_signed_delivery_verifies(standin: HttpStandIn) -> None:
    before = int(time.time())
    send(action(standin.url(), sign=True), delivery_id="evt-1_route-0_hook")
    [request] = standin.requests
    assert request.headers["webhook-id"] == "evt-1_route-0_hook"
    assert before <= int(request.headers["webhook-timestamp"]) <= time.time()
    assert request.headers["webhook-signature"].startswith("v1,")
    assert verify(request)
    assert not verify(request, key=b"another key")


def test_configured_headers_cannot_stand_in_for_ours(standin: HttpStandIn) -> None:
    headers = {
        "Content-Type": SecretStr("application/vnd.acme+json"),
        "Webhook-Signature": SecretStr("v1,forged"),
    }
    hook = action(standin.url(), sign=True).model_copy(update={"headers": headers})
    send(hook)
    [request] = standin.requests
    assert request.headers["content-type"] == "application/vnd.acme+json"  # one, replaced
    assert verify(request)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(standin: HttpStandIn, status: int) -> None:
    standin.reset(Reply(status, b"" if status == 204 else b"{}"))
    assert send(action(standin.url())) == status


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (410, False), (301, False), (408, True), (503, True)],
)
def test_failures_are_classified(standin: HttpStandIn, status: int, retryable: bool) -> None:
    standin.reset(Reply(status, b"", headers={"retry-after": "3", "location": "/elsewhere"}))
    error = send_failure(action(standin.url()))
    assert (error.retryable, error.status) == (retryable, status)
    assert error.retry_after == (3.0 if retryable else None)
    assert len(standin.requests) == 1  # a redirect is not followed


def test_the_action_timeout_bounds_the_attempt(standin: HttpStandIn, closed_port: int) -> None:
    slow = send_failure(action(standin.slow_url(), timeout=0.1))
    assert (slow.retryable, slow.reason) == (True, "deadline exceeded")
    refused = send_failure(action(f"http://127.0.0.1:{closed_port}/"))
    assert (refused.retryable, refused.reason) == (True, "ConnectError")


@pytest.mark.parametrize("value", [f"{TOKEN}\r\nX-Injected: 1", f"{TOKEN}é", f"{TOKEN}\x00"])
def test_a_header_value_that_cannot_be_sent_is_permanent(standin: HttpStandIn, value: str) -> None:
    hook = action(standin.url()).model_copy(update={"headers": {"Authorization": SecretStr(value)}})
    error = send_failure(hook)
    assert not error.retryable
    assert "Authorization" in str(error) and TOKEN not in repr(error)
    assert not standin.requests


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
def test_a_signing_secret_that_is_not_a_key_is_permanent(standin: HttpStandIn, secret: str) -> None:
    """The config refuses such a secret when it loads; the sink holds its line regardless."""
    with pytest.raises(ValueError, match="must be base64"):
        StandardWebhooksSigning(secret=SecretStr(secret))
    signing = StandardWebhooksSigning.model_construct(secret=SecretStr(secret))
    hook = action(standin.url()).model_copy(update={"sign": signing})
    error = send_failure(hook)
    assert (error.retryable, error.reason) == (False, "signing secret is not a base64 key")
    assert error.__context__ is None
    assert not standin.requests


def test_no_failure_reveals_a_secret(
    standin: HttpStandIn, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = standin.url(f"/in/{PATH_TOKEN}?sig={PATH_TOKEN}")
    secrets = [PATH_TOKEN, TOKEN, TOKEN.split()[1], WHSEC, WHSEC.removeprefix("whsec_")]
    secrets.append(KEY.decode())
    assert send(action(url, sign=True)) == 200
    replies = [
        Reply(400, echo=True),
        Reply(401, echo=True, headers={"www-authenticate": TOKEN}),
        Reply(429, echo=True, headers={"retry-after": "1", "location": url}),
        Reply(503, echo=True),
        Reply(307, headers={"location": url}),
    ]
    standin.reset(*replies)
    errors = [send_failure(action(url, sign=True)) for _ in replies]
    errors.append(send_failure(action(f"http://127.0.0.1:{closed_port}/in/{PATH_TOKEN}")))
    slow = standin.slow_url(f"/in/{PATH_TOKEN}?sig={PATH_TOKEN}")
    errors.append(send_failure(action(slow, sign=True, timeout=0.1)))
    errors.append(send_failure(action(slow, sign=True), timeout=0.1))
    bad = action(url).model_copy(update={"headers": {"Authorization": SecretStr(TOKEN + "\n")}})
    errors.append(send_failure(bad))
    for error in errors:
        assert_no_secret(error, caplog.records, secrets)
