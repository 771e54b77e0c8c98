"""The service stand-ins keep the real services' limits and answer as they do."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.services import (
    PAGERDUTY_PATH,
    SLACK_BURST,
    SLACK_PATH,
    WEBHOOK_PATH,
    LeakyBucket,
    Services,
    SlidingWindow,
)

KEY = "routing-key-for-the-stand-in-tests"


class Ticks:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_slack_takes_a_burst_then_one_message_a_second() -> None:
    clock = Ticks()
    bucket = LeakyBucket(1.0, 4, clock)
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    clock.now = 0.9
    assert not bucket.take()
    clock.now = 1.0
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now = 10.0  # a quiet while refills the burst, no more
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]


def test_pagerduty_takes_120_events_in_any_minute() -> None:
    clock = Ticks()
    window = SlidingWindow(120, 60.0, clock)
    for i in range(120):
        clock.now = i * 0.25
        assert window.take()
    assert not window.take()
    clock.now = 60.0  # the first event leaves the window
    assert [window.take(), window.take()] == [True, False]


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    with Services(KEY) as served:
        yield served


def test_the_webhook_records_each_arrival_and_answers_as_told(services: Services) -> None:
    event = {"id": "e-1", "received_at": "2026-01-02T03:04:05.500000+00:00"}
    body = {"type": "flowhooks.notification", "event": event}
    headers = {"idempotency-key": "d123"}
    assert httpx.post(services.url(WEBHOOK_PATH), json=body, headers=headers).status_code == 200
    services.answer_webhook(429, retry_after=2)
    refused = httpx.post(services.url(WEBHOOK_PATH), json=body, headers=headers)
    services.answer_webhook(200)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "2")
    services.fetch()
    first, second = services.webhook[-2:]
    assert (first.status, first.event_id, first.idempotency_key) == (200, "e-1", "d123")
    assert first.received_at == 1767323045.5
    assert second.status == 429


def test_slack_answers_ok_then_rate_limited(services: Services) -> None:
    url = services.url(SLACK_PATH)
    assert httpx.post(url, json={"blocks": []}).content == b"invalid_payload"
    answers = [httpx.post(url, json={"text": f"m{i}"}) for i in range(SLACK_BURST + 1)]
    assert [a.content for a in answers] == [b"ok"] * SLACK_BURST + [b"rate_limited"]
    assert (answers[-1].status_code, answers[-1].headers["retry-after"]) == (429, "1")
    services.fetch()
    accepted = [m.text for m in services.slack if m.status == 200]
    assert accepted == [f"m{i}" for i in range(SLACK_BURST)]


def test_pagerduty_opens_one_incident_per_dedup_key_until_resolved(services: Services) -> None:
    url = services.url(PAGERDUTY_PATH)

    def send(action: str, event_id: str | None = None, key: str = KEY) -> httpx.Response:
        event: dict[str, object] = {
            "routing_key": key,
            "event_action": action,
            "dedup_key": "flowhooks:etl:7",
        }
        if event_id is not None:  # a resolve carries no payload
            event["payload"] = {"summary": "failed", "custom_details": {"event_id": event_id}}
        return httpx.post(url, content=json.dumps(event))

    answers = [send("trigger", "f1"), send("trigger", "f2"), send("resolve"), send("trigger", "f3")]
    assert [a.status_code for a in answers] == [202] * 4
    assert answers[0].json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "flowhooks:etl:7",
    }
    assert send("trigger", "f4", key="another-key").status_code == 400
    services.fetch()
    seen = [(e.action, e.event_id, e.opened, e.resolved) for e in services.pagerduty]
    assert seen == [
        ("trigger", "f1", True, False),
        ("trigger", "f2", False, False),
        ("resolve", None, False, True),
        ("trigger", "f3", True, False),
        ("trigger", "f4", False, False),
    ]
