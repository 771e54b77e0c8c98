"""The destinations added beside Slack and PagerDuty, end to end: a signed webhook to the real
receiver, a real worker process and Redis, and a loopback stand-in keeping to each service's
documented contract."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.e2e.delivery_support import (
    RETRY,
    Flowhooks,
    Sinks,
    running,
    serving_sinks,
)
from tests.support import free_port
from tests.workers.sinks.standins import (
    GOOGLE_CHAT_OK,
    OPSGENIE_OK,
    TEAMS_OK,
    HttpStandIn,
    Reply,
    google_chat_contract,
    opsgenie_contract,
    teams_contract,
)

pytestmark = pytest.mark.slow

CHAT_PATH = "/v1/spaces/E2E/messages?key=AIzaE2E&token=chat-token-is-a-secret-Pz1"
APPRISE_PATH = "apprise-path-is-a-secret-Lk2"
OPSGENIE_KEY = "og-key-is-a-secret-Ty6"
TEAMS_PATH = "/workflows/e2e/triggers/manual/paths/invoke?sig=teams-sig-is-a-secret-Mb4"

ROUTES = """
group_wait: 1s
actions: []
routes:
  - matchers: ['kind="flow.failed"']
    actions: [{actions}]
    resolve: true
    repeat_interval: 1h
"""


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture(scope="module")
def far_side() -> Iterator[HttpStandIn]:
    server = HttpStandIn(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def teams_only(
    redis: Redis, redis_url: str, sinks: Sinks, far_side: HttpStandIn, tmp_path: Path
) -> Iterator[Flowhooks]:
    far_side.reset(default=TEAMS_OK, contract=teams_contract)
    actions = f"""
    teams:
      teams: {{webhook_url: "${{TEAMS_URL}}"}}
      retry: {RETRY}
    """
    secrets = {"TEAMS_URL": far_side.url(TEAMS_PATH)}
    routes = ROUTES.format(actions="teams")
    with running(
        redis, redis_url, sinks, tmp_path, routes, secrets=secrets, actions=actions
    ) as flowhooks:
        flowhooks.start_worker()
        yield flowhooks


def test_a_failure_and_its_recovery_reach_teams_as_cards_through_a_throttle(
    teams_only: Flowhooks, far_side: HttpStandIn
) -> None:
    far_side.script.append(Reply(429, b"throttled", headers={"retry-after": "1"}))
    failed = teams_only.post(
        "FLOW_FAILED", "teams-1", flow_id=801, flow_name="**orders** <at>all</at>", error="boom"
    )
    first, second = teams_only.wait_deliveries(failed, "teams", 2)
    assert (first["outcome"], first["status"], first["retryable"]) == ("failed", 429, True)
    assert (first["error"], first["attempt"]) == (
        "teams: HTTP 429 Too Many Requests (retryable, retry after 1s)",
        1,
    )
    assert (second["outcome"], second["status"], second["attempt"]) == ("delivered", 202, 2)

    recovered = teams_only.post("FLOW_SUCCESS", "teams-2", flow_id=801, flow_name="orders")
    [resolved] = teams_only.wait_deliveries(recovered, "teams", 1)
    assert (resolved["outcome"], resolved["status"]) == ("delivered", 202)

    cards = [r.json()["attachments"][0]["content"] for r in far_side.requests]
    assert len(cards) == 3
    assert cards[1] == cards[0]  # the retry sends the same card
    failure_title, recovery_title = cards[1]["body"][0], cards[2]["body"][0]
    assert failure_title["text"] == r"Flow failed: \*\*orders\*\* \<at\>all\</at\>"
    assert failure_title["color"] == "Attention"
    assert (recovery_title["text"], recovery_title["color"]) == ("Recovered: orders", "Good")
    assert all(teams_contract(r) is None for r in far_side.requests)
    timeline = json.dumps(teams_only.timeline(failed) + teams_only.timeline(recovered))
    assert "teams-sig-is-a-secret" not in timeline


@pytest.fixture
def opsgenie_only(
    redis: Redis, redis_url: str, sinks: Sinks, far_side: HttpStandIn, tmp_path: Path
) -> Iterator[Flowhooks]:
    far_side.reset(default=OPSGENIE_OK, contract=opsgenie_contract(OPSGENIE_KEY))
    actions = f"""
    genie:
      opsgenie: {{api_key: "${{OPSGENIE_KEY}}", url: "{far_side.url()}", priority: P1}}
      retry: {RETRY}
    """
    routes = ROUTES.format(actions="genie")
    with running(
        redis,
        redis_url,
        sinks,
        tmp_path,
        routes,
        secrets={"OPSGENIE_KEY": OPSGENIE_KEY},
        actions=actions,
    ) as flowhooks:
        flowhooks.start_worker()
        yield flowhooks


def test_opsgenie_alerts_once_per_flow_and_the_next_success_closes_it(
    opsgenie_only: Flowhooks, far_side: HttpStandIn
) -> None:
    far_side.script.append(Reply(503, b"{}"))
    failed = opsgenie_only.post("FLOW_FAILED", "og-1", flow_id=901, error="ORA-00942")
    first, second = opsgenie_only.wait_deliveries(failed, "genie", 2)
    assert (first["outcome"], first["status"], first["retryable"]) == ("failed", 503, True)
    assert (second["outcome"], second["status"]) == ("delivered", 202)

    recovered = opsgenie_only.post("FLOW_SUCCESS", "og-2", flow_id=901)
    [closed] = opsgenie_only.wait_deliveries(recovered, "genie", 1)
    assert (closed["outcome"], closed["status"]) == ("delivered", 202)

    retried, created, closing = far_side.requests
    assert retried.body == created.body
    alert = created.json()
    assert (created.path, alert["alias"], alert["priority"]) == (
        "/v2/alerts",
        "flowhooks:etl:901",
        "P1",
    )
    assert alert["details"]["error"] == "ORA-00942"
    assert closing.raw_path == "/v2/alerts/flowhooks%3Aetl%3A901/close"
    assert closing.query == "identifierType=alias"
    assert all(opsgenie_contract(OPSGENIE_KEY)(r) is None for r in far_side.requests)
    timeline = json.dumps(opsgenie_only.timeline(failed) + opsgenie_only.timeline(recovered))
    assert OPSGENIE_KEY not in timeline


@pytest.fixture
def chat_only(
    redis: Redis, redis_url: str, sinks: Sinks, far_side: HttpStandIn, tmp_path: Path
) -> Iterator[Flowhooks]:
    far_side.reset(default=GOOGLE_CHAT_OK, contract=google_chat_contract)
    actions = f"""
    chat:
      google_chat: {{webhook_url: "${{CHAT_URL}}"}}
      retry: {RETRY}
    """
    routes = ROUTES.format(actions="chat")
    secrets = {"CHAT_URL": far_side.url(CHAT_PATH)}
    with running(
        redis, redis_url, sinks, tmp_path, routes, secrets=secrets, actions=actions
    ) as flowhooks:
        flowhooks.start_worker()
        yield flowhooks


def test_google_chat_gets_a_card_and_the_recovery_in_its_thread(
    chat_only: Flowhooks, far_side: HttpStandIn
) -> None:
    failed = chat_only.post("FLOW_FAILED", "chat-1", flow_id=77, flow_name="<users/all>")
    [sent] = chat_only.wait_deliveries(failed, "chat", 1)
    recovered = chat_only.post("FLOW_SUCCESS", "chat-2", flow_id=77, flow_name="<users/all>")
    [resolved] = chat_only.wait_deliveries(recovered, "chat", 1)
    assert (sent["status"], resolved["status"]) == (200, 200)

    first, second = (r.json() for r in far_side.requests)
    assert first["thread"] == second["thread"] == {"threadKey": "flowhooks:etl:77"}
    assert first["cardsV2"][0]["card"]["header"]["title"] == "Flow failed: <users/all>"
    assert "text" not in first
    assert "&lt;users/all&gt;" in json.dumps(first["cardsV2"][0]["card"]["sections"])
    assert second["cardsV2"][0]["card"]["header"]["title"] == "Recovered: <users/all>"
    assert all(google_chat_contract(r) is None for r in far_side.requests)
    timeline = json.dumps(chat_only.timeline(failed) + chat_only.timeline(recovered))
    assert "chat-token-is-a-secret" not in timeline


@pytest.fixture
def apprise_only(
    redis: Redis, redis_url: str, sinks: Sinks, far_side: HttpStandIn, tmp_path: Path
) -> Iterator[Flowhooks]:
    far_side.reset(default=Reply(200, b"{}"))
    actions = f"""
    push:
      apprise: {{url: "${{APPRISE_URL}}"}}
      retry: {RETRY}
    """
    routes = ROUTES.format(actions="push")
    secrets = {"APPRISE_URL": f"json://127.0.0.1:{far_side.port}/{APPRISE_PATH}"}
    with running(
        redis, redis_url, sinks, tmp_path, routes, secrets=secrets, actions=actions
    ) as flowhooks:
        flowhooks.start_worker()
        yield flowhooks


def test_apprise_notifies_through_its_url_and_a_refusal_is_retried(
    apprise_only: Flowhooks, far_side: HttpStandIn
) -> None:
    far_side.script.append(Reply(500, b"{}"))
    failed = apprise_only.post("FLOW_FAILED", "ap-1", flow_id=55, flow_name="**loud** <b>")
    first, second = apprise_only.wait_deliveries(failed, "push", 2)
    assert (first["outcome"], first["retryable"]) == ("failed", True)
    assert second["outcome"] == "delivered"

    retried, sent = (r.json() for r in far_side.requests)
    assert retried == sent
    assert sent["title"] == "Flow failed: **loud** <b>"
    assert r"\*\*loud\*\* \<b\>" in sent["message"]
    timeline = json.dumps(apprise_only.timeline(failed))
    assert APPRISE_PATH not in timeline
    assert APPRISE_PATH not in apprise_only.worker_logs()
