"""Google Chat: the card rendered for an event, a recovery in the same thread and a storm, and
the send against a stand-in that keeps to a space webhook's contract (key and token, cards v2,
32,000 bytes, 400, 429)."""

import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr

from config.schema import Action
from config.sinks import GoogleChatAction
from tests.workers.sinks.standins import (
    GOOGLE_CHAT_OK,
    HttpStandIn,
    Reply,
    assert_no_secret,
    failure,
    google_chat_contract,
    run,
)
from tests.workers.test_rendering import FAILED, SUCCEEDED, event
from workers.rendering import render, render_digest, with_note
from workers.sinks import DeliveryError, google_chat

TOKEN = "chatTok3nLeak8Zq"
PATH = "/v1/spaces/AAAA/messages"
QUERY = f"?key=AIzaKeyLeak5&token={TOKEN}"


def chat_action(thread: bool = True, **templates: str) -> Action:
    return Action.model_validate(
        {"google_chat": {"webhook_url": "${CHAT_URL}", "thread": thread}, "templates": templates},
        context={"environ": {"CHAT_URL": "https://chat.example.test" + PATH + QUERY}},
    )


def card(payload: Any) -> dict[str, Any]:
    [entry] = payload["cardsV2"]
    content: dict[str, Any] = entry["card"]
    return content


def paragraphs(payload: Any) -> list[str]:
    widgets = card(payload)["sections"][0]["widgets"]
    return [w["textParagraph"]["text"] for w in widgets if "textParagraph" in w]


def test_a_failure_is_one_card_in_the_flows_thread() -> None:
    rendered = render(chat_action(), FAILED, resolved=False, route="ops")
    payload = rendered.payload
    assert isinstance(payload, dict)
    assert "text" not in payload
    assert payload["thread"] == {"threadKey": "flowhooks:etlworks-prod:12345"}
    assert card(payload)["header"] == {"title": "Flow failed: warehouse-load"}
    text, error, route = paragraphs(payload)
    assert text.split("<br>") == [
        "<b>Flow:</b> warehouse-load (id 12345)",
        "<b>Status:</b> error",
        "<b>Source:</b> etlworks-prod",
        "<b>Audit id:</b> 777",
        "<b>Duration:</b> 12m 34s",
    ]
    assert error == "<b>Error</b><br>Connection refused<br>at step 3"
    assert route == "<i>Route: ops</i>"
    [buttons] = [w for w in card(payload)["sections"][0]["widgets"] if "buttonList" in w]
    assert buttons["buttonList"]["buttons"] == [
        {"text": "Open execution", "onClick": {"openLink": {"url": FAILED["entity_url"]}}}
    ]


def test_the_recovery_answers_in_the_same_thread() -> None:
    failed = render(chat_action(), FAILED, resolved=False, route="r").payload
    recovered = render(chat_action(), SUCCEEDED, resolved=True, route="r").payload
    assert isinstance(failed, dict) and isinstance(recovered, dict)
    assert recovered["thread"] == failed["thread"]
    assert card(recovered)["header"] == {"title": "Recovered: warehouse-load"}
    assert recovered["cardsV2"][0]["cardId"] == "recovered"
    unthreaded = render(chat_action(thread=False), FAILED, resolved=False, route="r").payload
    assert isinstance(unthreaded, dict) and "thread" not in unthreaded


def test_event_data_is_inert_in_the_cards_html() -> None:
    nasty = '<users/all> <b>x</b> <a href="https://evil.example">y</a> {{ 7*7 }}'
    payload = render(chat_action(), event(flow_name=nasty, error=nasty), resolved=False, route="r")
    text, error, _ = paragraphs(payload.payload)
    escaped = (
        "&lt;users/all&gt; &lt;b&gt;x&lt;/b&gt; &lt;a href=&#34;https://evil.example&#34;&gt;"
        "y&lt;/a&gt; {{ 7*7 }}"
    )
    assert text.startswith(f"<b>Flow:</b> {escaped} (id")
    assert error.startswith("<b>Error</b><br>&lt;users/all&gt; &lt;b&gt;x&lt;/b&gt;")
    assert card(payload.payload)["header"]["title"] == f"Flow failed: {nasty}"  # plain text


def test_an_oversized_card_is_cut_within_32000_bytes_with_a_visible_line() -> None:
    rendered = render(
        chat_action(text="x&amp;" * 8000), event(error="<" * 3000), resolved=False, route="r"
    )
    assert len(json.dumps(rendered.payload, separators=(",", ":")).encode()) <= google_chat.LIMIT
    said = paragraphs(rendered.payload)
    assert said[-1] == google_chat.CUT
    assert said[0].endswith("…") and not said[0].endswith("&…")
    assert said[1].endswith("…")


def test_a_storm_is_one_digest_card_and_a_note_one_more_line() -> None:
    events = [event(id=f"e{i}", flow_name=f"<flow {i}>") for i in range(60)]
    rendered = render_digest(chat_action(), events, route="ops", group={"source": "etl"})
    assert card(rendered.payload)["header"] == {"title": "60 events: source=etl"}
    lines, footer = paragraphs(rendered.payload)
    assert lines.count("<br>") == 49
    assert lines.startswith("• 03:12:34 Flow failed: &lt;flow 0&gt;")
    assert footer == "<i>Route: ops · … and 10 more</i>"
    noted = with_note(render(chat_action(), FAILED, resolved=False, route="r"), "Inc <4>")
    assert paragraphs(noted.payload)[-1] == "Inc &lt;4&gt;"


def settings(url: str) -> GoogleChatAction:
    return GoogleChatAction(webhook_url=SecretStr(url))


def test_a_threaded_card_is_posted_with_its_reply_option(standin: HttpStandIn) -> None:
    standin.reset(default=GOOGLE_CHAT_OK, contract=google_chat_contract)
    payload = render(chat_action(), FAILED, resolved=False, route="r").payload
    assert isinstance(payload, dict)
    url = standin.url(PATH + QUERY)
    status = run(
        lambda client: google_chat.send(settings(url), payload, client=client, delivery_id="d")
    )
    assert status == 200
    [request] = standin.requests
    assert request.query.endswith("&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")
    assert request.json() == payload


def test_429_is_retried_and_400_and_403_are_permanent(
    standin: HttpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = render(chat_action(), FAILED, resolved=False, route="r").payload
    standin.reset(
        Reply(429, b'{"error":{"status":"RESOURCE_EXHAUSTED"}}', headers={"retry-after": "2"}),
        default=GOOGLE_CHAT_OK,
        contract=google_chat_contract,
    )

    def failed(url: str, body: Any) -> DeliveryError:
        return failure(
            lambda client: google_chat.send(settings(url), body, client=client, delivery_id="d")
        )

    error = failed(standin.url(PATH + QUERY), payload)
    assert (error.retryable, error.status, error.retry_after) == (True, 429, 2.0)
    error = failed(standin.url(PATH + QUERY), {"cardsV2": [{"cardId": "x"}]})
    assert (error.retryable, error.status) == (False, 400)
    error = failed(standin.url(PATH + "?key=AIzaKeyLeak5"), payload)
    assert (error.retryable, error.status) == (False, 403)
    assert_no_secret(error, caplog.records, [TOKEN])
