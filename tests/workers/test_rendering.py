"""workers.rendering: each sink's output, escaping of event data, limits, custom templates,
errors and digests. Pure: events and actions are built in memory."""

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.events import Event
from config.schema import TEMPLATES, Action
from workers import rendering
from workers.rendering import (
    DEFAULT_TEMPLATES,
    DIGEST_LINES,
    ERROR_EXCERPT,
    Rendered,
    RenderError,
    human_duration,
    mrkdwn,
    render,
    render_digest,
)

ENV = {
    "SLACK_URL": "https://hooks.slack.com/services/T000/B000/slack-secret-path",
    "PD_KEY": "pd-routing-key-0123456789abcdef",
    "HOOK_URL": "https://hooks.example.com/in/hook-secret-path",
    "HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "SMTP_PASSWORD": "smtp-pa55word",
    "TEAMS_URL": "https://example.test/workflows/w/invoke?sig=teams-secret-sig",
    "OG_KEY": "og-secret-key",
    "CHAT_URL": "https://chat.example.test/v1/spaces/S/messages?key=k&token=chat-secret-token",
    "APPRISE_URL": "tgram://123456:apprise-secret-token/987",
}
SINKS: dict[str, dict[str, Any]] = {
    "slack": {"slack": {"webhook_url": "${SLACK_URL}"}},
    "pagerduty": {"pagerduty": {"routing_key": "${PD_KEY}", "severity": "critical"}},
    "email": {
        "email": {
            "to": ["data@example.com"],
            "from": "flowhooks@example.com",
            "smtp": {"host": "smtp.example.com", "username": "u", "password": "${SMTP_PASSWORD}"},
        }
    },
    "webhook": {
        "webhook": {
            "url": "${HOOK_URL}",
            "headers": {"Authorization": "Bearer ${HOOK_URL}"},
            "sign": {"secret": "${HOOK_SECRET}"},
        }
    },
    "log": {"log": {}},
    "teams": {"teams": {"webhook_url": "${TEAMS_URL}"}},
    "opsgenie": {"opsgenie": {"api_key": "${OG_KEY}"}},
    "google_chat": {"google_chat": {"webhook_url": "${CHAT_URL}"}},
    "apprise": {"apprise": {"url": "${APPRISE_URL}"}},
}
EXECUTION = "https://app.etlworks.com/rest/v1/flows/12345?auditId=777"
FINISHED = datetime(2026, 5, 9, 3, 12, 34, tzinfo=UTC)


def action(sink: str, **templates: str) -> Action:
    """An action of ``sink`` as the config loader builds it, secrets from ``ENV``."""
    data = {**SINKS[sink], "templates": templates}
    return Action.model_validate(data, context={"environ": ENV})


def event(**changes: Any) -> dict[str, Any]:
    """A stored canonical event (as the worker loads it): a failed flow unless ``changes`` say
    otherwise."""
    fields: dict[str, Any] = {
        "id": "evt-1",
        "source": "etlworks-prod",
        "event": "Flow.Executed",
        "kind": "flow.failed",
        "status": "error",
        "flow_id": "12345",
        "flow_name": "warehouse-load",
        "audit_id": "777",
        "entity_url": EXECUTION,
        "tags": ["nightly"],
        "params": {"runDate": "2026-05-08"},
        "error": "Connection refused\nat step 3",
        "started_at": FINISHED - timedelta(minutes=12, seconds=34),
        "finished_at": FINISHED,
        "duration_ms": 754_000,
        "received_at": FINISHED + timedelta(seconds=1),
        "raw": {"eventType": "Flow.Executed", "secretish": "raw only"},
    }
    return Event(**{**fields, **changes}).model_dump(mode="json")


FAILED = event()
SUCCEEDED = event(kind="flow.succeeded", status="success", error=None, duration_ms=61_000)
WARNING = event(kind="flow.warning", status="warning", error="3 rows rejected", duration_ms=950)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-able value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def slack_texts(payload: Any) -> list[str]:
    """The texts Slack parses: the fallback and every text object's ``text``."""
    found = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        found += [element["text"] for element in block.get("elements", [])]
    return found


def block_texts(payload: Any, kind: str) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == kind]


# Slack ----------------------------------------------------------------------------------------


def test_slack_failed_message_in_full() -> None:
    rendered = render(action("slack"), FAILED, resolved=False, route="oncall")
    assert rendered == Rendered(
        sink="slack",
        payload={
            "text": "Flow failed: warehouse-load - Connection refused",
            "blocks": [
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": "Flow failed: warehouse-load",
                        "emoji": True,
                    },
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "*Flow:* warehouse-load (id 12345)\n*Status:* error\n"
                        "*Source:* etlworks-prod\n*Audit id:* 777\n*Duration:* 12m 34s",
                    },
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "*Error*\n```\nConnection refused\nat step 3\n```",
                    },
                },
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": f"Route: oncall · <{EXECUTION}|Open execution>",
                        }
                    ],
                },
            ],
        },
        summary="Flow failed: warehouse-load",
    )


@pytest.mark.parametrize(
    ("given", "resolved", "header", "text", "error"),
    [
        (
            FAILED,
            False,
            "Flow failed: warehouse-load",
            "*Flow:* warehouse-load (id 12345)\n*Status:* error\n*Source:* etlworks-prod\n"
            "*Audit id:* 777\n*Duration:* 12m 34s",
            "*Error*\n```\nConnection refused\nat step 3\n```",
        ),
        (
            SUCCEEDED,
            True,
            "Recovered: warehouse-load",
            "*Flow:* warehouse-load (id 12345)\n*Status:* success\n*Source:* etlworks-prod\n"
            "*Audit id:* 777\n*Duration:* 1m 1s",
            None,
        ),
        (
            SUCCEEDED,
            False,
            "Flow succeeded: warehouse-load",
            "*Flow:* warehouse-load (id 12345)\n*Status:* success\n*Source:* etlworks-prod\n"
            "*Audit id:* 777\n*Duration:* 1m 1s",
            None,
        ),
        (
            WARNING,
            False,
            "Flow finished with warnings: warehouse-load",
            "*Flow:* warehouse-load (id 12345)\n*Status:* warning\n*Source:* etlworks-prod\n"
            "*Audit id:* 777\n*Duration:* 950ms",
            "*Error*\n```\n3 rows rejected\n```",
        ),
        (
            event(flow_name=None, audit_id=None, duration_ms=None, error=None, status=None),
            False,
            "Flow failed: flow 12345",
            "*Flow id:* 12345\n*Status:* flow.failed\n*Source:* etlworks-prod",
            None,
        ),
        (
            event(kind="join.expired", flow_id=None, flow_name=None, event="join.expired"),
            False,
            "Join expired: join.expired",
            "*Status:* error\n*Source:* etlworks-prod\n*Audit id:* 777\n*Duration:* 12m 34s",
            "*Error*\n```\nConnection refused\nat step 3\n```",
        ),
    ],
    ids=["failed", "resolved", "succeeded", "warning", "sparse", "join-expired"],
)
def test_slack_messages(
    given: dict[str, Any], resolved: bool, header: str, text: str, error: str | None
) -> None:
    payload = render(action("slack"), given, resolved=resolved, route="r").payload
    assert isinstance(payload, dict)
    assert block_texts(payload, "header") == [header]
    assert block_texts(payload, "section") == [text] + ([error] if error else [])
    assert payload["text"].startswith(header)


# PagerDuty ------------------------------------------------------------------------------------


def test_pagerduty_trigger_in_full() -> None:
    rendered = render(action("pagerduty"), FAILED, resolved=False, route="oncall")
    assert rendered.payload == {
        "event_action": "trigger",
        "dedup_key": "flowhooks:etlworks-prod:12345",
        "payload": {
            "summary": "Flow failed: warehouse-load (etlworks-prod): Connection refused at step 3",
            "source": "flowhooks/etlworks-prod",
            "severity": "critical",
            "timestamp": "2026-05-09T03:12:34Z",
            "component": "warehouse-load",
            "group": "etlworks-prod",
            "class": "flow.failed",
            "custom_details": {
                "event_id": "evt-1",
                "event": "Flow.Executed",
                "flow_id": "12345",
                "flow_name": "warehouse-load",
                "audit_id": "777",
                "status": "error",
                "error": "Connection refused\nat step 3",
                "duration": "12m 34s",
                "tags": ["nightly"],
                "params": {"runDate": "2026-05-08"},
                "route": "oncall",
            },
        },
        "client": "flowhooks",
        "links": [{"href": EXECUTION, "text": "Open execution"}],
    }
    assert rendered.summary == (
        "trigger flowhooks:etlworks-prod:12345: "
        "Flow failed: warehouse-load (etlworks-prod): Connection refused at step 3"
    )


@pytest.mark.parametrize(
    ("given", "resolved", "expected"),
    [
        (
            SUCCEEDED,
            True,
            {"event_action": "resolve", "dedup_key": "flowhooks:etlworks-prod:12345"},
        ),
        (
            WARNING,
            False,
            "Flow finished with warnings: warehouse-load (etlworks-prod): 3 rows rejected",
        ),
        (SUCCEEDED, False, "Flow succeeded: warehouse-load (etlworks-prod)"),
    ],
    ids=["resolve", "warning", "succeeded"],
)
def test_pagerduty_events(given: dict[str, Any], resolved: bool, expected: Any) -> None:
    payload = render(action("pagerduty"), given, resolved=resolved, route="r").payload
    assert isinstance(payload, dict)
    if resolved:
        assert payload == expected
    else:
        assert payload["event_action"] == "trigger"
        assert payload["dedup_key"] == "flowhooks:etlworks-prod:12345"
        assert payload["payload"]["summary"] == expected
        assert payload["payload"]["severity"] == "critical"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({}, "flowhooks:etlworks-prod:12345"),
        ({"flow_id": None}, "flowhooks:etlworks-prod:event:evt-1"),
        ({"source": "eu", "flow_id": "9"}, "flowhooks:eu:9"),
        # one incident per expectation, whatever the deadline missed
        (
            {"flow_id": None, "kind": "expectation.missed", "entity_id": "nightly"},
            "flowhooks:etlworks-prod:expect:nightly",
        ),
    ],
)
def test_pagerduty_dedup_key_is_per_source_and_flow(changes: dict[str, Any], key: str) -> None:
    for resolved in (False, True):
        payload = render(action("pagerduty"), event(**changes), resolved=resolved, route="r")
        assert isinstance(payload.payload, dict)
        assert payload.payload["dedup_key"] == key


def test_pagerduty_body_never_holds_the_routing_key() -> None:
    oncall = action("pagerduty")
    assert oncall.pagerduty is not None
    assert oncall.pagerduty.routing_key.get_secret_value() == ENV["PD_KEY"]
    bodies = [
        render(oncall, FAILED, resolved=False, route="r").payload,
        render(oncall, SUCCEEDED, resolved=True, route="r").payload,
        render_digest(oncall, [FAILED, WARNING], route="r", group={"kind": "flow.failed"}).payload,
    ]
    for body in bodies:
        text = json.dumps(body)
        assert "routing_key" not in text
        assert ENV["PD_KEY"] not in text


@pytest.mark.parametrize(
    "source",
    ["{{ routing_key }}", "{{ action.pagerduty.routing_key }}", "{{ pagerduty }}", "{{ self }}"],
)
def test_templates_cannot_reach_the_actions_secrets(source: str) -> None:
    try:
        rendered = render(action("pagerduty", summary=source), FAILED, resolved=False, route="r")
    except RenderError as exc:
        assert ENV["PD_KEY"] not in str(exc)
    else:
        assert ENV["PD_KEY"] not in json.dumps(rendered.payload)


# Email ----------------------------------------------------------------------------------------


def test_email_failed_in_full() -> None:
    rendered = render(action("email"), FAILED, resolved=False, route="oncall")
    assert isinstance(rendered.payload, dict)
    assert rendered.payload["subject"] == "[flowhooks] Flow failed: warehouse-load"
    assert rendered.summary == "[flowhooks] Flow failed: warehouse-load"
    assert rendered.payload["text"] == (
        "Flow failed: warehouse-load\n"
        "\n"
        "Flow:      warehouse-load (id 12345)\n"
        "Status:    error\n"
        "Source:    etlworks-prod\n"
        "Audit id:  777\n"
        "Duration:  12m 34s\n"
        "Time:      2026-05-09T03:12:34Z\n"
        "Route:     oncall\n"
        "\n"
        "Error:\n"
        "Connection refused\n"
        "at step 3\n"
        "\n"
        f"Open execution: {EXECUTION}\n"
    )
    page = rendered.payload["html"]
    assert "<h2>Flow failed: warehouse-load</h2>" in page
    assert '<pre style="white-space: pre-wrap">Connection refused\nat step 3</pre>' in page
    assert f'<a href="{EXECUTION.replace("&", "&amp;")}">Open execution</a>' in page


@pytest.mark.parametrize(
    ("given", "resolved", "subject", "status"),
    [
        (FAILED, False, "[flowhooks] Flow failed: warehouse-load", "error"),
        (SUCCEEDED, True, "[flowhooks] Recovered: warehouse-load", "success"),
        (WARNING, False, "[flowhooks] Flow finished with warnings: warehouse-load", "warning"),
    ],
    ids=["failed", "resolved", "warning"],
)
def test_email_messages(given: dict[str, Any], resolved: bool, subject: str, status: str) -> None:
    payload = render(action("email"), given, resolved=resolved, route="r").payload
    assert isinstance(payload, dict)
    assert payload["subject"] == subject
    assert f"Status:    {status}\n" in payload["text"]
    assert f"<td>{status}</td>" in payload["html"]
    assert ("Error:" in payload["text"]) == (given["error"] is not None)


# Webhook --------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolved", [False, True])
def test_webhook_default_body_is_the_event_without_raw(resolved: bool) -> None:
    rendered = render(action("webhook"), FAILED, resolved=resolved, route="oncall")
    expected_event = {key: value for key, value in FAILED.items() if key != "raw"}
    assert rendered.payload == {
        "type": "flowhooks.notification",
        "resolved": resolved,
        "route": "oncall",
        "event": expected_event,
    }
    json.dumps(rendered.payload, allow_nan=False)


def test_webhook_body_template() -> None:
    body = (
        '{"text": "{{ headline }}: {{ event.flow_name }}", "resolved": {{ resolved }},\n'
        ' "tags": {{ event.tags|tojson }}, "ms": {{ event.duration_ms }},\n'
        ' "audit": {{ event.audit_id }}}'
    )
    payload = render(action("webhook", body=body), FAILED, resolved=False, route="r").payload
    # A string value is JSON-escaped on output, so unquoted it is a quoted string's content:
    # {{ event.audit_id }} (a str) gave 777, a number, not "777".
    assert payload == {
        "text": "Flow failed: warehouse-load",
        "resolved": False,
        "tags": ["nightly"],
        "ms": 754000,
        "audit": 777,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"text": {{ event.flow_name }}}', "webhook template 'body' did not render JSON"),
        ('{"a": 1', "webhook template 'body' did not render JSON"),
        ('{"a": NaN}', "NaN is not JSON"),
        ("[1, 2]", "webhook template 'body' must render a JSON object, not list"),
        ('"text"', "must render a JSON object, not str"),
    ],
)
def test_webhook_body_must_render_a_json_object(body: str, message: str) -> None:
    with pytest.raises(RenderError, match=re.escape(message)):
        render(action("webhook", body=body), FAILED, resolved=False, route="r")


# Log ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "resolved", "line"),
    [
        (
            FAILED,
            False,
            "flow.failed: warehouse-load (flow 12345) status=error route=oncall "
            "error=Connection refused at step 3",
        ),
        (
            SUCCEEDED,
            True,
            "resolved flow.succeeded: warehouse-load (flow 12345) status=success route=oncall",
        ),
        (
            WARNING,
            False,
            "flow.warning: warehouse-load (flow 12345) status=warning route=oncall "
            "error=3 rows rejected",
        ),
    ],
    ids=["failed", "resolved", "warning"],
)
def test_log_lines(given: dict[str, Any], resolved: bool, line: str) -> None:
    assert render(action("log"), given, resolved=resolved, route="oncall") == Rendered(
        "log", line, line
    )


# Injection ------------------------------------------------------------------------------------

NASTY = [
    "<!channel> <@U123> <https://evil.example|click>",
    "{{ 7*7 }} {% for x in range(3) %}x{% endfor %}",
    "a\r\nBcc: victim@example.com\r\n\r\nbody",
    "<script>alert(1)</script>",
    "Tom & Jerry &amp; &lt;b&gt;",
    'quote " back\\slash \x00 \x1b[31m \u2028 end',
]


def _nasty(text: str, where: str) -> dict[str, Any]:
    return event(flow_name=text) if where == "flow_name" else event(error=text)


@pytest.mark.parametrize("where", ["flow_name", "error"])
@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("resolved", [False, True])
def test_event_data_is_inert_in_slack(text: str, where: str, resolved: bool) -> None:
    payload = render(action("slack"), _nasty(text, where), resolved=resolved, route="r").payload
    link = f"<{EXECUTION}|Open execution>"
    for parsed in slack_texts(payload):
        assert "<" not in parsed.replace(link, ""), parsed
        assert ">" not in parsed.replace(link, "").replace("```", ""), parsed
        assert not re.search(r"&(?!amp;|lt;|gt;)", parsed), parsed
        assert "49" not in parsed and "xxx" not in parsed
    if where == "flow_name":
        assert isinstance(payload, dict)
        assert mrkdwn(text.split("\r", maxsplit=1)[0]) in payload["blocks"][1]["text"]["text"]


@pytest.mark.parametrize("where", ["flow_name", "error"])
@pytest.mark.parametrize("text", NASTY)
def test_event_data_is_inert_in_email(text: str, where: str) -> None:
    payload = render(action("email"), _nasty(text, where), resolved=False, route="r").payload
    assert isinstance(payload, dict)
    subject = payload["subject"]
    assert not [c for c in subject if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert "49" not in subject and "xxx" not in subject
    page = payload["html"]
    for tag in ("<script", "<!channel", "<@U123", "<https", "<b>"):
        assert tag not in page
    assert "49" not in page and "xxx" not in page
    flat = text if where == "flow_name" else text.replace("\r\n", "\n").strip()
    assert flat in payload["text"]  # the text part is plain text: data as it was


@pytest.mark.parametrize("where", ["flow_name", "error"])
@pytest.mark.parametrize("text", NASTY)
def test_event_data_is_inert_in_pagerduty_log_and_webhook(text: str, where: str) -> None:
    given = _nasty(text, where)
    oncall = render(action("pagerduty"), given, resolved=False, route="r").payload
    assert isinstance(oncall, dict)
    summary = oncall["payload"]["summary"]
    line = render(action("log"), given, resolved=False, route="r").payload
    assert isinstance(line, str)
    for one_line in (summary, line):
        assert not [c for c in one_line if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
        assert "49" not in one_line and "xxx" not in one_line
    details = oncall["payload"]["custom_details"]
    assert details[where] == (text if where == "flow_name" else text.replace("\r\n", "\n").strip())
    hook = render(action("webhook"), given, resolved=False, route="r").payload
    assert isinstance(hook, dict)
    assert hook["event"][where] == text


@pytest.mark.parametrize("text", NASTY)
def test_data_never_becomes_template_or_markup_in_custom_templates(text: str) -> None:
    given = event(flow_name=text, error=text)
    slack = render(
        action("slack", title="{{ event.flow_name }}", text="<!here> {{ event.flow_name }}"),
        given,
        resolved=False,
        route="r",
    ).payload
    assert isinstance(slack, dict)
    # The operator's own <!here> is kept; the data is escaped.
    assert slack["blocks"][1]["text"]["text"] == "<!here> " + mrkdwn(text)
    hook = render(
        action("webhook", body='{"t": "{{ event.flow_name }}", "e": {{ event.error|tojson }}}'),
        given,
        resolved=False,
        route="r",
    ).payload
    assert hook == {"t": text, "e": text}
    log = render(action("log", text="{{ event.flow_name }}"), given, resolved=False, route="r")
    assert "49" not in log.payload and "xxx" not in log.payload


def test_safe_opts_out_of_escaping() -> None:
    slack = render(
        action("slack", text="{{ event.flow_name|safe }}"),
        event(flow_name="*bold* &amp; <!here>"),
        resolved=False,
        route="r",
    ).payload
    assert isinstance(slack, dict)
    assert slack["blocks"][1]["text"]["text"] == "*bold* &amp; <!here>"


# Links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (EXECUTION, EXECUTION),
        ("http://etl.local/a?x=1&y=2", "http://etl.local/a?x=1&y=2"),
        ("https://etl.example/a|b>c<d e\"f'g", "https://etl.example/a%7Cb%3Ec%3Cd%20e%22f'g"),
        ("https://etl.example/ü", "https://etl.example/%C3%BC"),
        ("javascript:alert(1)", None),
        ("ftp://etl.example/x", None),
        ("https:///no-host", None),
        ("http://[broken", None),
        ("not a url", None),
        (None, None),
    ],
)
def test_execution_link(url: str | None, expected: str | None) -> None:
    given = event(entity_url=url)
    slack = render(action("slack"), given, resolved=False, route="r").payload
    oncall = render(action("pagerduty"), given, resolved=False, route="r").payload
    mail = render(action("email"), given, resolved=False, route="r").payload
    assert isinstance(slack, dict) and isinstance(oncall, dict) and isinstance(mail, dict)
    footer = slack["blocks"][-1]["elements"][0]["text"]
    if expected is None:
        assert footer == "Route: r"
        assert "links" not in oncall
        assert "<a " not in mail["html"]
        assert "Open execution" not in mail["text"]
    else:
        assert footer == f"Route: r · <{mrkdwn(expected)}|Open execution>"
        assert oncall["links"] == [{"href": expected, "text": "Open execution"}]
        assert f"Open execution: {expected}\n" in mail["text"]


def test_links_given_by_the_caller_follow_the_execution() -> None:
    links = {"event_timeline": "https://flowhooks.example/e/1", "bad": "javascript:x"}
    slack = render(action("slack"), FAILED, resolved=False, route="r", links=links).payload
    oncall = render(action("pagerduty"), FAILED, resolved=False, route="r", links=links).payload
    assert isinstance(slack, dict) and isinstance(oncall, dict)
    assert slack["blocks"][-1]["elements"][0]["text"] == (
        f"Route: r · <{EXECUTION}|Open execution> · <https://flowhooks.example/e/1|Event timeline>"
    )
    assert oncall["links"] == [
        {"href": EXECUTION, "text": "Open execution"},
        {"href": "https://flowhooks.example/e/1", "text": "Event timeline"},
    ]


# Limits ---------------------------------------------------------------------------------------


def assert_slack_limits(payload: Any) -> None:
    assert len(payload["blocks"]) <= 50
    assert len(payload["text"]) <= 3000
    for block in payload["blocks"]:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3000
        else:
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
    for parsed in slack_texts(payload):
        assert not re.search(r"&(?!amp;|lt;|gt;)", parsed), "an entity was cut"


@pytest.mark.parametrize("filler", ["x", "&", "<", "ab\n"])
def test_slack_keeps_its_limits(filler: str) -> None:
    huge = event(flow_name=filler * 500, error=filler * 10_000, source="s" * 60)
    payload = render(action("slack"), huge, resolved=False, route="r").payload
    assert_slack_limits(payload)
    assert isinstance(payload, dict)
    header, _, error = (b["text"]["text"] for b in payload["blocks"][:3])
    assert header.endswith("…")
    assert error.startswith("*Error*\n```\n") and error.endswith("…\n```")


def test_slack_cuts_a_long_custom_text_with_a_marker() -> None:
    long = "{% for i in range(5000) %}ab {% endfor %}"
    code = "```{% for i in range(5000) %}ab {% endfor %}```"
    for source in (long, code):
        payload = render(action("slack", text=source), FAILED, resolved=False, route="r").payload
        assert_slack_limits(payload)
        assert isinstance(payload, dict)
        text = payload["blocks"][1]["text"]["text"]
        assert "…" in text[-5:]
        assert text.count("```") % 2 == 0


def test_empty_slack_title_or_text_is_never_sent() -> None:
    payload = render(action("slack", title=" ", text=""), FAILED, resolved=False, route="r").payload
    assert isinstance(payload, dict)
    assert block_texts(payload, "header") == ["Flow failed: warehouse-load"]
    assert len(block_texts(payload, "section")) == 1  # the error only


def test_other_sinks_keep_their_limits() -> None:
    huge = event(flow_name="n" * 5000, error="e" * 10_000)
    oncall = render(action("pagerduty"), huge, resolved=False, route="r").payload
    assert isinstance(oncall, dict)
    assert len(oncall["payload"]["summary"]) == 1024
    assert oncall["payload"]["summary"].endswith("…")
    assert len(oncall["payload"]["custom_details"]["error"]) == ERROR_EXCERPT
    mail = render(action("email"), huge, resolved=False, route="r").payload
    assert isinstance(mail, dict)
    assert len(mail["subject"]) == 200 and mail["subject"].endswith("…")
    line = render(action("log", text="{{ event.error }}"), huge, resolved=False, route="r")
    assert isinstance(line.payload, str)
    assert len(line.payload) == 2000
    assert len(line.summary) <= 300


def test_long_dedup_keys_stay_distinct_and_within_pagerduty_limit() -> None:
    source = "{{ event.flow_name }}"
    keys = set()
    for name in ("a" * 400 + "1", "a" * 400 + "2"):
        body = render(
            action("pagerduty", dedup_key=source), event(flow_name=name), resolved=True, route="r"
        )
        assert isinstance(body.payload, dict)
        assert len(body.payload["dedup_key"]) == 255
        keys.add(body.payload["dedup_key"])
    assert len(keys) == 2


def test_empty_dedup_key_is_an_error() -> None:
    with pytest.raises(RenderError, match="pagerduty template 'dedup_key' rendered an empty key"):
        render(action("pagerduty", dedup_key="  "), FAILED, resolved=False, route="r")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("a\r\nBcc: x@example.com", "a Bcc: x@example.com"),
        ("tab\there\x00nul\x7fdel", "tab here nul del"),
        ("line\u2028sep\u2029para\x85nel", "line sep para nel"),
        ("  spaced   out  ", "spaced out"),
        ("\r\n", "[flowhooks] Flow failed: warehouse-load"),
    ],
)
def test_email_subject_is_one_clean_line(subject: str, expected: str) -> None:
    mail = render(action("email", subject=subject), FAILED, resolved=False, route="r").payload
    assert isinstance(mail, dict)
    assert mail["subject"] == expected


# Custom templates and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sink", "name", "source", "pick", "expected"),
    [
        (
            "slack",
            "title",
            "{{ event.source }} / {{ name }}",
            "header",
            "etlworks-prod / warehouse-load",
        ),
        (
            "slack",
            "text",
            "Run *{{ event.audit_id }}* took {{ duration }}",
            "section",
            "Run *777* took 12m 34s",
        ),
        (
            "pagerduty",
            "summary",
            "{{ name }} on {{ route }}",
            "summary",
            "warehouse-load on r",
        ),
        ("pagerduty", "dedup_key", "etl-{{ event.flow_id }}", "dedup_key", "etl-12345"),
        (
            "email",
            "subject",
            "ETL: {{ name }} {{ event.status }}",
            "subject",
            "ETL: warehouse-load error",
        ),
        ("email", "text", "{{ event.params.runDate }}", "text", "2026-05-08"),
        ("email", "html", "<b>{{ event.raw.eventType }}</b>", "html", "<b>Flow.Executed</b>"),
        ("log", "text", "{{ event.tags|join(',') }} {{ resolved }}", "log", "nightly False"),
    ],
)
def test_custom_templates(sink: str, name: str, source: str, pick: str, expected: str) -> None:
    payload: Any = render(action(sink, **{name: source}), FAILED, resolved=False, route="r").payload
    picked: Any
    if pick == "header":
        picked = block_texts(payload, "header")[0]
    elif pick == "section":
        picked = block_texts(payload, "section")[0]
    elif pick == "summary":
        picked = payload["payload"]["summary"]
    elif pick == "log":
        picked = payload
    else:
        picked = payload[pick]
    assert picked == expected


@pytest.mark.parametrize(
    ("sink", "name", "source", "message"),
    [
        (
            "slack",
            "title",
            "{{ event.nope }}",
            "slack template 'title', line 1: UndefinedError: 'dict object' has no attribute 'nope'",
        ),
        (
            "slack",
            "text",
            "ok\n{{ missing }}",
            "slack template 'text', line 2: UndefinedError: 'missing' is undefined",
        ),
        ("pagerduty", "summary", "{{ event.raw.nope.deeper }}", "pagerduty template 'summary'"),
        (
            "pagerduty",
            "dedup_key",
            "{{ 1 / 0 }}",
            "pagerduty template 'dedup_key', line 1: ZeroDivisionError: division by zero",
        ),
        ("email", "subject", "{{ event.nope }}", "email template 'subject'"),
        ("email", "html", "{{ event.nope }}", "email template 'html'"),
        ("webhook", "body", '{"a": "{{ event.nope }}"}', "webhook template 'body'"),
        ("log", "text", "{{ ''.__class__.__mro__ }}", "log template 'text'"),
        ("log", "text", "{{ event.update({}) }}", "log template 'text', line 1: SecurityError"),
    ],
)
def test_template_failures_are_render_errors(
    sink: str, name: str, source: str, message: str
) -> None:
    with pytest.raises(RenderError) as caught:
        render(action(sink, **{name: source}), FAILED, resolved=False, route="r")
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)
    for secret in ENV.values():
        assert secret not in str(caught.value)


def test_templates_do_not_change_the_event() -> None:
    given = event()
    before = json.dumps(given, sort_keys=True)
    with pytest.raises(RenderError):
        render(action("log", text="{{ event.tags.append('x') }}"), given, resolved=False, route="r")
    assert json.dumps(given, sort_keys=True) == before


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, ""),
        (-5, ""),
        (True, ""),
        ("754000", ""),
        (0, "0ms"),
        (999, "999ms"),
        (1000, "1s"),
        (60_000, "1m 0s"),
        (754_000, "12m 34s"),
        (3_723_000, "1h 2m 3s"),
        (90_061_000, "1d 1h 1m 1s"),
    ],
)
def test_human_duration(ms: object, text: str) -> None:
    assert human_duration(ms) == text


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("a & b", "a &amp; b"),
        ("&lt;", "&amp;lt;"),
        ("*ok*", "*ok*"),
    ],
)
def test_mrkdwn(text: str, escaped: str) -> None:
    assert mrkdwn(text) == escaped


def test_context_names_the_template_helpers() -> None:
    source = (
        "{{ headline }}|{{ name }}|{{ duration }}|{{ excerpt }}|{{ route }}|{{ links.execution }}"
        "|{{ digest }}|{{ count }}|{{ events|length }}|{{ group }}"
    )
    line = render(action("log", text=source), FAILED, resolved=False, route="oncall").payload
    assert line == (
        f"Flow failed|warehouse-load|12m 34s|Connection refused at step 3|oncall|{EXECUTION}"
        "|False|1|1|{}"
    )


def test_defaults_cover_every_template_and_load_as_config() -> None:
    assert {sink: tuple(names) for sink, names in DEFAULT_TEMPLATES.items()} == {
        **TEMPLATES,
        "webhook": (),  # built in code: the event as JSON
    }
    for sink, templates in DEFAULT_TEMPLATES.items():
        explicit = action(sink, **templates)  # what the config loader accepts
        for given, resolved in ((FAILED, False), (SUCCEEDED, True), (WARNING, False)):
            assert render(explicit, given, resolved=resolved, route="r") == render(
                action(sink), given, resolved=resolved, route="r"
            )


def test_rendered_is_frozen_and_the_public_surface_is_listed() -> None:
    rendered = render(action("log"), FAILED, resolved=False, route="r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendered.summary = "x"  # type: ignore[misc]
    public = {
        name
        for name, value in vars(rendering).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", None) == rendering.__name__
    }
    assert public <= set(rendering.__all__)


# Digests --------------------------------------------------------------------------------------

GROUP = {"kind": "flow.failed", "source": "etlworks-prod"}


def many(count: int, **changes: Any) -> list[dict[str, Any]]:
    return [
        event(
            id=f"evt-{i}",
            flow_id=str(1000 + i),
            flow_name=f"flow-{i}",
            finished_at=FINISHED + timedelta(seconds=i),
            **changes,
        )
        for i in range(count)
    ]


def test_slack_digest() -> None:
    rendered = render_digest(action("slack"), many(200), route="oncall", group=GROUP)
    payload = rendered.payload
    assert_slack_limits(payload)
    assert isinstance(payload, dict)
    head = "200 events: kind=flow.failed, source=etlworks-prod"
    assert payload["text"] == head
    assert block_texts(payload, "header") == [head]
    lines = "\n".join(block_texts(payload, "section")).split("\n")
    assert len(lines) == DIGEST_LINES
    # each line links to its execution
    link = " <https://app.etlworks.com/rest/v1/flows/12345?auditId=777|open>"
    assert lines[0] == "• 03:12:34 Flow failed: flow-0 - Connection refused" + link
    assert lines[-1] == "• 03:13:23 Flow failed: flow-49 - Connection refused" + link
    assert payload["blocks"][-1]["elements"][0]["text"] == "Route: oncall · … and 150 more"
    assert rendered.summary == f"digest: {head}"


@pytest.mark.parametrize("filler", ["x", "&", "<!channel>"])
def test_slack_digest_keeps_limits_with_huge_events(filler: str) -> None:
    events = many(200, error=filler * 10_000)
    events = [{**e, "flow_name": filler * 3000} for e in events]
    group = {"flow_name": filler * 3000}
    payload = render_digest(action("slack"), events, route="r", group=group).payload
    assert_slack_limits(payload)
    for parsed in slack_texts(payload):
        assert "<!channel>" not in parsed


def test_small_digest_has_no_more_marker() -> None:
    payload = render_digest(action("slack"), many(1), route="r", group={}).payload
    assert isinstance(payload, dict)
    assert payload["text"] == "1 event"
    assert payload["blocks"][-1]["elements"][0]["text"] == "Route: r"


def test_pagerduty_digest() -> None:
    payload = render_digest(action("pagerduty"), many(200), route="oncall", group=GROUP).payload
    assert isinstance(payload, dict)
    assert payload["dedup_key"] == ("flowhooks:digest:oncall:kind=flow.failed,source=etlworks-prod")
    body = payload["payload"]
    assert len(body["summary"]) <= 1024
    assert body["summary"].startswith("200 events: kind=flow.failed, source=etlworks-prod: ")
    assert re.search(r"; … and \d+ more$", body["summary"])
    assert body["severity"] == "critical"
    assert body["source"] == "flowhooks/etlworks-prod"
    assert body["class"] == "flow.failed"
    assert "component" not in body  # many flows
    details = body["custom_details"]
    assert (details["count"], details["more"], len(details["events"])) == (200, 150, 50)


def test_pagerduty_digest_of_one_flow_shares_the_flows_incident() -> None:
    events = [event(id=f"e{i}") for i in range(3)]
    payload = render_digest(
        action("pagerduty"), events, route="r", group={"flow_id": "12345"}
    ).payload
    assert isinstance(payload, dict)
    assert payload["dedup_key"] == "flowhooks:etlworks-prod:12345"
    assert payload["payload"]["component"] == "warehouse-load"


def test_email_digest() -> None:
    events = many(200)
    events[0] = {**events[0], "flow_name": "<script>x</script>\r\nBcc: a@b"}
    payload = render_digest(action("email"), events, route="oncall", group=GROUP).payload
    assert isinstance(payload, dict)
    assert payload["subject"] == "[flowhooks] 200 events: kind=flow.failed, source=etlworks-prod"
    lines = payload["text"].splitlines()
    assert lines[0] == "200 events: kind=flow.failed, source=etlworks-prod"
    assert lines[2] == "- 03:12:34 Flow failed: <script>x</script> Bcc: a@b - Connection refused"
    assert lines[2 + DIGEST_LINES] == "… and 150 more"
    assert payload["html"].count("<li>") == DIGEST_LINES
    assert "<script>" not in payload["html"]
    assert "&lt;script&gt;" in payload["html"]


def test_email_digest_subject_is_one_line() -> None:
    group = {"flow_name": "x\r\nBcc: victim@example.com"}
    payload = render_digest(action("email"), many(2), route="r", group=group).payload
    assert isinstance(payload, dict)
    assert payload["subject"] == "[flowhooks] 2 events: flow_name=x Bcc: victim@example.com"


def test_log_digest() -> None:
    line = render_digest(action("log"), many(200), route="oncall", group=GROUP).payload
    assert isinstance(line, str)
    assert line.startswith(
        "digest route=oncall 200 events: kind=flow.failed, source=etlworks-prod: "
        "03:12:34 Flow failed: flow-0 - Connection refused; "
    )
    assert len(line) <= 2000
    assert re.search(r"; … and \d+ more$", line)
    assert "\n" not in line


def test_webhook_digest_default_and_custom() -> None:
    events = many(200)
    payload = render_digest(action("webhook"), events, route="oncall", group=GROUP).payload
    assert isinstance(payload, dict)
    assert payload["type"] == "flowhooks.digest"
    assert (payload["route"], payload["group"], payload["count"]) == ("oncall", GROUP, 200)
    assert payload["events"] == [{k: v for k, v in e.items() if k != "raw"} for e in events]
    body = (
        '{"text": "{% if digest %}{{ count }} of {{ group.kind }}, last {{ event.flow_name }}'
        '{% else %}{{ name }}{% endif %}"}'
    )
    custom = action("webhook", body=body)
    assert render_digest(custom, events, route="r", group=GROUP).payload == {
        "text": "200 of flow.failed, last flow-199"
    }
    assert render(custom, FAILED, resolved=False, route="r").payload == {"text": "warehouse-load"}


@pytest.mark.parametrize("sink", list(SINKS))
def test_digest_needs_events(sink: str) -> None:
    with pytest.raises(RenderError, match="a digest needs at least one event"):
        render_digest(action(sink), [], route="r", group={})
