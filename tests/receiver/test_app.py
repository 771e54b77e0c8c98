"""The receiver over real HTTP (uvicorn on loopback) against a real Redis."""

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from config import eventlog, keys
from tests.support import (
    HMAC_CONFIG,
    OLD_SECRET,
    SECRET,
    RedisProcess,
    ServedApp,
    make_config,
    settings,
)

QUEUE = f"rq:queue:{keys.QUEUE}"


def signed(body: bytes, secret: str = SECRET, **headers: str) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Etl-Webhook-Signature": mac, "Content-Type": "application/json", **headers}


def event_body(event_id: str = "evt-1", **fields: object) -> bytes:
    payload = {"eventId": event_id, "eventType": "FLOW_FAILED", "flowId": 7, "flowName": "orders"}
    return json.dumps({**payload, **fields}).encode()


@pytest.fixture
def app(redis: Redis, redis_url: str) -> Iterator[ServedApp]:
    with ServedApp(settings(redis_url, max_body_bytes=4096), make_config(HMAC_CONFIG)) as served:
        yield served


def post(
    app: ServedApp, body: bytes, headers: dict[str, str], source: str = "etl"
) -> httpx.Response:
    return httpx.post(f"{app.url}/webhooks/{source}", content=body, headers=headers)


def test_a_signed_event_is_stored_and_queued_once(app: ServedApp, redis: Redis) -> None:
    body = event_body()
    first = post(app, body, signed(body))
    assert (first.status_code, first.json()) == (202, {"id": "evt-1"})
    again = post(app, body, signed(body))
    assert (again.status_code, again.json()) == (200, {"id": "evt-1", "duplicate": True})

    stored = eventlog.load(redis, "etl:evt-1")
    assert stored is not None
    assert stored.event["kind"] == "flow.failed"
    assert stored.event["flow_id"] == "7"
    assert [e["stage"] for e in stored.timeline] == ["received"]
    assert stored.timeline[0]["verified"] == ["hmac: secret #1"]
    assert redis.lrange(QUEUE, 0, -1) == [keys.route_job_id("etl:evt-1").encode()]


def test_the_previous_secret_still_verifies_during_rotation(app: ServedApp, redis: Redis) -> None:
    body = event_body("evt-rotated")
    response = post(app, body, signed(body, OLD_SECRET))
    assert response.status_code == 202
    stored = eventlog.load(redis, "etl:evt-rotated")
    assert stored is not None and stored.timeline[0]["verified"] == ["hmac: secret #2"]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unknown source", 404),
        ("bad signature", 401),
        ("no signature", 401),
        ("too large", 413),
        ("text/plain", 415),
        ("broken json", 400),
    ],
)
def test_refusals_store_nothing(app: ServedApp, redis: Redis, case: str, status: int) -> None:
    body = event_body()
    headers = signed(body)
    source = "etl"
    if case == "unknown source":
        source = "nope"
    elif case == "bad signature":
        headers = signed(body, "wrong")
    elif case == "no signature":
        del headers["X-Etl-Webhook-Signature"]
    elif case == "too large":
        body = event_body(padding="x" * 5000)
        headers = signed(body)
    elif case == "text/plain":
        headers["Content-Type"] = "text/plain"
    elif case == "broken json":
        body = b'{"eventId": '
        headers = signed(body)
    response = post(app, body, headers, source)
    assert response.status_code == status
    assert redis.dbsize() == 0
    if status == 401:
        assert response.json() == {"error": "unauthorized"}


def test_a_get_delivery_carries_the_event_in_headers(app: ServedApp, redis: Redis) -> None:
    headers = signed(b"")
    headers |= {
        "X-Etl-Webhook-Event-Id": "get-1",
        "X-Etl-Webhook-Event": "Flow.Created",
        "X-Etl-Webhook-Entity-Id": "42",
        "X-Etl-Webhook-Entity-URL": "https://app.etlworks.com/rest/v1/flows/42",
    }
    response = httpx.get(f"{app.url}/webhooks/etl", headers=headers)
    assert (response.status_code, response.json()) == (202, {"id": "get-1"})
    stored = eventlog.load(redis, "etl:get-1")
    assert stored is not None
    assert stored.event["kind"] == "resource.changed"
    assert stored.event["flow_id"] == "42"


def test_a_form_encoded_delivery_is_normalized(app: ServedApp, redis: Redis) -> None:
    body = b"eventId=form-1&eventType=FLOW_SUCCESS&flowId=9&flowName=marts&tags=a%2Cb"
    headers = signed(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(app, body, headers).status_code == 202
    stored = eventlog.load(redis, "etl:form-1")
    assert stored is not None
    assert (stored.event["kind"], stored.event["tags"]) == ("flow.succeeded", ["a", "b"])


def test_an_unknown_shape_is_stored_raw(app: ServedApp, redis: Redis) -> None:
    body = json.dumps([1, {"what": "ever"}]).encode()
    response = post(app, body, signed(body))
    assert response.status_code == 202
    stored = eventlog.load(redis, f"etl:{response.json()['id']}")
    assert stored is not None
    assert (stored.event["kind"], stored.event["raw"]) == ("other", [1, {"what": "ever"}])


def test_fifty_concurrent_copies_enqueue_one_job(app: ServedApp, redis: Redis) -> None:
    body = event_body("evt-concurrent")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=app.url) as client:
            calls = [
                client.post("/webhooks/etl", content=body, headers=signed(body)) for _ in range(50)
            ]
            return await asyncio.gather(*calls)

    statuses = sorted(r.status_code for r in asyncio.run(burst()))
    assert statuses == [200] * 49 + [202]
    assert redis.llen(QUEUE) == 1
    assert redis.zcard(keys.EVENT_INDEX) == 1


def test_redis_down_means_503_and_nothing_acknowledged(private_redis: RedisProcess) -> None:
    config = make_config(HMAC_CONFIG)
    with ServedApp(settings(private_redis.url, redis_timeout=2), config) as app:
        body = event_body("while-down")
        private_redis.stop()
        response = post(app, body, signed(body))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        private_redis.start()
        deadline = time.monotonic() + 10
        while (response := post(app, body, signed(body))).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (response.status_code, response.json()) == (202, {"id": "while-down"})


def test_health_readiness_and_metrics(app: ServedApp) -> None:
    body = event_body("m-1")
    post(app, body, signed(body))
    post(app, body, signed(body, "wrong"))
    assert httpx.get(f"{app.url}/healthz").status_code == 200
    assert httpx.get(f"{app.url}/readyz").json()["redis"] == "ok"
    text = httpx.get(f"{app.url}/metrics").text
    assert 'flowhooks_webhook_requests_total{outcome="accepted",source="etl"} 1.0' in text
    assert (
        'flowhooks_verification_failures_total{reason="signature_mismatch",source="etl"} 1.0'
        in text
    )
    assert "flowhooks_queue_depth 1.0" in text
    assert "flowhooks_enqueue_seconds_count 1.0" in text


def test_head_is_no_delivery(app: ServedApp, redis: Redis) -> None:
    headers = signed(b"") | {"X-Etl-Webhook-Event-Id": "head-1"}
    response = httpx.head(f"{app.url}/webhooks/etl", headers=headers)
    assert response.status_code == 405
    assert redis.dbsize() == 0
