"""Microsoft Teams: the Adaptive Card rendered for an event, a recovery and a storm, and the send
against a stand-in that keeps to the Workflows webhook's contract (202, 28 KB, 400, 429)."""

import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr

from config.schema import Action
from config.sinks import TeamsAction
from tests.workers.sinks.standins import (
    TEAMS_LIMIT,
    TEAMS_OK,
    HttpStandIn,
    Reply,
    assert_no_secret,
    failure,
    run,
    teams_contract,
)
from tests.workers.test_rendering import FAILED, SUCCEEDED, event
from workers.rendering import render, render_digest, with_note
from workers.sinks import teams

TOKEN = "TeamsSig0Leak7Qw2Zx"
PATH = f"/workflows/0a1b2c/triggers/manual/paths/invoke?sig={TOKEN}"


def teams_action(**templates: str) -> Action:
    return Action.model_validate(
        {"teams": {"webhook_url": "${TEAMS_URL}"}, "templates": templates},
        context={"environ": {"TEAMS_URL": "https://example.test" + PATH}},
    )


def card(payload: Any) -> dict[str, Any]:
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content: dict[str, Any] = attachment["content"]
    return content


def texts(payload: Any) -> list[str]:
    return [block["text"] for block in card(payload)["body"]]


def test_a_failure_is_one_card_with_the_slack_messages_content() -> None:
    rendered = render(teams_action(), FAILED, resolved=False, route="ops")
    content = card(rendered.payload)
    assert (content["type"], content["version"]) == ("AdaptiveCard", "1.4")
    title, fields, error_head, error, route = content["body"]
    assert title["text"] == "Flow failed: warehouse\\-load"
    assert (title["weight"], title["color"]) == ("Bolder", "Attention")
    assert fields["text"].split("\n\n") == [
        "**Flow:** warehouse\\-load (id 12345)",
        "**Status:** error",
        "**Source:** etlworks\\-prod",
        "**Audit id:** 777",
        "**Duration:** 12m 34s",
    ]
    assert error_head["text"] == "**Error**"
    assert (error["text"], error["fontType"]) == ("Connection refused\nat step 3", "Monospace")
    assert route["text"] == "Route: ops"
    assert content["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open execution", "url": FAILED["entity_url"]}
    ]
    assert rendered.summary == "Flow failed: warehouse-load"


def test_a_recovery_is_a_green_recovered_card() -> None:
    rendered = render(teams_action(), SUCCEEDED, resolved=True, route="ops")
    title = card(rendered.payload)["body"][0]
    assert (title["text"], title["color"]) == ("Recovered: warehouse\\-load", "Good")
    assert not any("Error" in text for text in texts(rendered.payload))


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        (
            "**bold** [click](https://evil.example/x) <at>all</at>",
            r"\*\*bold\*\* \[click\]\(https://evil\.example/x\) \<at\>all\</at\>",
        ),
        ("{{ 7*7 }} {% raw %}", r"\{\{ 7\*7 \}\} \{% raw %\}"),
        ("# heading | - item", r"\# heading \| \- item"),
    ],
)
def test_event_data_is_inert_in_the_cards_markdown(name: str, escaped: str) -> None:
    rendered = render(teams_action(), event(flow_name=name, error=name), resolved=False, route="r")
    title, fields, _, error, _ = texts(rendered.payload)
    assert title == f"Flow failed: {escaped}"
    assert fields.startswith(f"**Flow:** {escaped} (id")
    assert error == escaped
    assert not any(name in text for text in texts(rendered.payload))


def test_the_operators_own_template_keeps_its_markdown() -> None:
    rendered = render(
        teams_action(text="**Flow** {{ name }} _now_"), FAILED, resolved=False, route="r"
    )
    assert texts(rendered.payload)[1] == "**Flow** warehouse\\-load _now_"


def test_an_oversized_card_is_cut_within_28_kb_with_a_visible_line() -> None:
    huge = "x" * 40_000
    rendered = render(teams_action(text=huge), event(error="y" * 3_000), resolved=False, route="r")
    body = json.dumps(rendered.payload, separators=(",", ":")).encode()  # as it is posted
    assert len(body) <= teams.LIMIT
    said = texts(rendered.payload)
    assert said[-1] == teams.CUT
    assert said[1].startswith("xxx") and said[1].endswith("…")
    assert said[3].endswith("…")


def test_a_storm_is_one_digest_card() -> None:
    events = [event(id=f"e{i}", flow_name=f"flow_{i}*") for i in range(60)]
    rendered = render_digest(teams_action(), events, route="ops", group={"source": "etl"})
    title, lines, footer = card(rendered.payload)["body"]
    assert title["text"] == "60 events: source=etl"
    assert lines["text"].count("\n") == 49
    assert lines["text"].startswith("- 03:12:34 Flow failed: flow\\_0\\*")
    assert "[open](https://app.etlworks.com/" in lines["text"]
    assert footer["text"] == "Route: ops · … and 10 more"
    assert rendered.summary == "digest: 60 events: source=etl"


def test_a_note_is_one_more_line() -> None:
    rendered = with_note(render(teams_action(), FAILED, resolved=False, route="r"), "Inc #4")
    assert texts(rendered.payload)[-1] == "Inc \\#4"


def send(url: str) -> int:
    payload = render(teams_action(), FAILED, resolved=False, route="r").payload
    assert isinstance(payload, dict)
    settings = TeamsAction(webhook_url=SecretStr(url))
    return run(lambda client: teams.send(settings, payload, client=client, delivery_id="d1"))


def send_failure(url: str, payload: Any) -> Any:
    settings = TeamsAction(webhook_url=SecretStr(url))
    return failure(lambda client: teams.send(settings, payload, client=client, delivery_id="d1"))


def test_a_card_is_accepted_with_202(standin: HttpStandIn) -> None:
    standin.reset(default=TEAMS_OK, contract=teams_contract)
    assert send(standin.url(PATH)) == 202
    [request] = standin.requests
    assert request.headers["content-type"] == "application/json"
    assert teams_contract(request) is None


def test_429_is_retried_after_what_teams_asks_and_400_is_permanent(
    standin: HttpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = render(teams_action(), FAILED, resolved=False, route="r").payload
    standin.reset(
        Reply(429, b"throttled", headers={"retry-after": "7"}),
        default=TEAMS_OK,
        contract=teams_contract,
    )
    error = send_failure(standin.url(PATH), payload)
    assert (error.retryable, error.status, error.retry_after) == (True, 429, 7.0)
    error = send_failure(standin.url(PATH), {"type": "message", "text": "no card"})
    assert (error.retryable, error.status) == (False, 400)
    assert_no_secret(error, caplog.records, [TOKEN])


def test_what_teams_refuses_as_too_large_is_permanent(standin: HttpStandIn) -> None:
    standin.reset(default=TEAMS_OK, contract=teams_contract)
    payload = {"type": "message", "attachments": [], "padding": "z" * TEAMS_LIMIT}
    error = send_failure(standin.url(PATH), payload)
    assert (error.retryable, error.status) == (False, 413)
