"""Apprise: the title and body rendered for an event, the config's answer without the extra, and
the send through a real Apprise to a loopback stand-in by a ``json://`` URL (Apprise's JSON
service, which POSTs ``version``, ``title``, ``message`` and ``type``)."""

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from config.loader import ConfigError, load
from config.schema import Action
from config.sinks import AppriseAction
from tests.workers.sinks.standins import HttpStandIn, Reply, assert_no_secret, failure, run
from tests.workers.test_rendering import FAILED, SUCCEEDED, event
from workers.rendering import render, render_digest
from workers.sinks import apprise

TOKEN = "apprTok9Leak3Hx"


def apprise_action(form: str = "markdown", **templates: str) -> Action:
    return Action.model_validate(
        {"apprise": {"url": "${APPRISE_URL}", "format": form}, "templates": templates},
        context={"environ": {"APPRISE_URL": f"tgram://123456:{TOKEN}/987"}},
    )


def test_a_failure_is_a_title_and_a_markdown_body() -> None:
    payload = render(apprise_action(), FAILED, resolved=False, route="ops").payload
    assert isinstance(payload, dict)
    assert payload["title"] == "Flow failed: warehouse-load"
    assert payload["format"] == "markdown"
    assert "**Flow:** warehouse\\-load (id 12345)" in payload["body"]
    assert "**Error:** Connection refused\nat step 3" in payload["body"]
    assert "Open execution: https://app\\.etlworks\\.com/" in payload["body"]
    recovered = render(apprise_action(), SUCCEEDED, resolved=True, route="ops").payload
    assert isinstance(recovered, dict) and recovered["title"] == "Recovered: warehouse-load"


def test_event_data_is_inert_in_markdown_and_kept_as_is_in_text() -> None:
    nasty = "**x** [y](https://evil.example) <b>z</b> {{ 7*7 }}"
    marked = render(apprise_action(), event(flow_name=nasty), resolved=False, route="r").payload
    plain = render(apprise_action("text"), event(flow_name=nasty), resolved=False, route="r")
    assert isinstance(marked, dict) and isinstance(plain.payload, dict)
    escaped = r"\*\*x\*\* \[y\]\(https://evil\.example\) \<b\>z\</b\> \{\{ 7\*7 \}\}"
    assert f"**Flow:** {escaped} (id" in marked["body"]
    assert f"**Flow:** {nasty} (id" in plain.payload["body"]
    assert plain.payload["format"] == "text"


def test_a_storm_is_one_digest() -> None:
    events = [event(id=f"e{i}", flow_name=f"f_{i}") for i in range(55)]
    payload = render_digest(apprise_action(), events, route="r", group={}).payload
    assert isinstance(payload, dict)
    assert payload["title"] == "55 events"
    lines = payload["body"].splitlines()
    assert lines[0] == r"- 03:12:34 Flow failed: f\_0 \- Connection refused"
    assert lines[-2:] == ["… and 5 more", "Route: r"]


def test_the_config_says_how_to_install_apprise_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "flowhooks.yaml"
    config.write_text(
        "sources: {etl: {allow_unsigned: true}}\n"
        "actions:\n"
        '  chat: {apprise: {url: "${APPRISE_URL}"}}\n'
    )
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if it were not installed
    with pytest.raises(ConfigError) as raised:
        load(config, environ={"APPRISE_URL": "json://localhost/"})
    message = str(raised.value)
    assert "actions.chat.apprise: needs Apprise, an optional extra" in message
    assert "pip install 'flowhooks[apprise]'" in message


def settings(url: str) -> AppriseAction:
    return AppriseAction(url=SecretStr(url))


def notify(url: str, payload: Any) -> None:
    run(lambda client: apprise.send(settings(url), payload, client=client, delivery_id="d"), 10)


def test_apprise_delivers_through_its_json_service(standin: HttpStandIn) -> None:
    standin.reset(default=Reply(200, b"{}"))
    payload = render(apprise_action(), FAILED, resolved=False, route="r").payload
    assert isinstance(payload, dict)
    notify(f"json://127.0.0.1:{standin.port}/hooks/{TOKEN}", payload)
    [request] = standin.requests
    assert request.path == f"/hooks/{TOKEN}"
    sent = request.json()
    assert (sent["title"], sent["type"]) == ("Flow failed: warehouse-load", "info")
    assert "warehouse" in sent["message"]


def test_a_refusal_is_retryable_and_an_unreadable_url_permanent_and_neither_leaks(
    standin: HttpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    standin.reset(default=Reply(503, b"down"))
    payload = {"title": "t", "body": "b", "format": "text"}
    url = f"json://127.0.0.1:{standin.port}/hooks/{TOKEN}"
    error = failure(
        lambda client: apprise.send(settings(url), payload, client=client, delivery_id="d"), 10
    )
    assert (error.retryable, error.reason) == (True, "the service did not take the notification")
    assert len(standin.requests) == 1
    assert_no_secret(error, caplog.records, [TOKEN])
    error = failure(
        lambda client: apprise.send(
            settings(f"nosuchscheme://{TOKEN}"), payload, client=client, delivery_id="d"
        )
    )
    assert (error.retryable, error.reason) == (False, "Apprise cannot read the URL")
    assert_no_secret(error, caplog.records, [TOKEN])
