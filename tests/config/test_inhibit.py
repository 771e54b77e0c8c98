"""config.inhibit: the ``inhibit_rules`` schema by its errors, and which open incident inhibits
an event (pure); plan() holding back notifications, never a resolve nor an Etlworks action."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.inhibit import Inhibitor, InhibitRule, inhibiting
from config.loader import ConfigError, parse
from tests.support import make_config
from workers.delivery import Incident, plan

RULE = InhibitRule.model_validate(
    {
        "source_matchers": ['kind="flow.failed"', 'flow_name="warehouse-load"'],
        "target_matchers": ['kind="flow.failed"', 'flow_name=~"marts-.*"'],
        "equal": ["source"],
    }
)
WAREHOUSE = Inhibitor(
    "etl:100",
    "etl:wh-1",
    {"kind": "flow.failed", "flow_name": "warehouse-load", "source": "etl", "flow_id": "100"},
)


def mart(**labels: str) -> dict[str, str]:
    return {
        "id": "m-1",
        "kind": "flow.failed",
        "flow_name": "marts-orders",
        "source": "etl",
    } | labels


@pytest.mark.parametrize(
    ("labels", "own", "inhibited"),
    [
        (mart(), "etl:200", True),
        (mart(source="prod"), "prod:200", False),  # equal: [source] differs
        (mart(flow_name="crm"), "etl:300", False),  # not a target
        (mart(kind="flow.warning"), None, False),
        (mart(flow_name="warehouse-load"), "etl:100", False),  # its own flow
        (mart(id="wh-1", flow_name="marts-x"), "etl:7", False),  # the inhibiting event itself
    ],
)
def test_which_events_are_inhibited(
    labels: dict[str, str], own: str | None, inhibited: bool
) -> None:
    found = inhibiting([RULE], labels, (), [WAREHOUSE], own=own)
    assert (found is WAREHOUSE) is inhibited


def test_an_inhibitor_the_source_matchers_do_not_take_inhibits_nothing() -> None:
    other = Inhibitor(
        "etl:5", "etl:x", {"kind": "flow.failed", "flow_name": "crm", "source": "etl"}
    )
    assert inhibiting([RULE], mart(), (), [other], own="etl:200") is None


def errors(body: str) -> list[str]:
    head = "sources: {etl: {allow_unsigned: true}}\ninhibit_rules:\n"
    with pytest.raises(ConfigError) as caught:
        parse(head + body, "f.yaml", {}, Path("."))
    return caught.value.errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  - {target_matchers: ['kind=\"flow.failed\"']}\n",
            "f.yaml:3: inhibit_rules[0].source_matchers: required",
        ),
        (
            "  - {source_matchers: ['a=\"b\"'], target_matchers: ['kind=\"flow.failed\"']}\n",
            "f.yaml:3: inhibit_rules[0].source_matchers[0]: unknown label 'a' (known:"
            " audit_id, consecutive_failures, entity_id, entity_url, error, event, flow_id,"
            " flow_name, id, kind, source, status, tags, webhook_id)",
        ),
        (
            "  - {source_matchers: ['kind=\"flow.warning\"'],"
            " target_matchers: ['kind=\"flow.failed\"']}\n",
            'f.yaml:3: inhibit_rules[0].source_matchers: kind="flow.warning" never inhibits: only'
            " events that open an incident do (flow.failed, flow.timeout, expectation.missed)",
        ),
        (
            "  - source_matchers: ['kind=\"flow.failed\"']\n"
            "    target_matchers: ['kind=\"flow.failed\"']\n"
            "    equal: [flow, source, source]\n",
            "f.yaml:5: inhibit_rules[0].equal: unknown label 'flow' (known: audit_id, entity_id,"
            " entity_url, error, event, flow_id, flow_name, id, kind, source, status, webhook_id)",
        ),
    ],
)
def test_errors_point_at_the_key(body: str, message: str) -> None:
    assert errors(body) == [message]


CONFIG = """
sources: {etl: {allow_unsigned: true}}
actions: {page: {log: {}}}
routes:
  routes:
    - {name: failures, matchers: ['kind=~"flow.failed|flow.succeeded"'], actions: [page]}
inhibit_rules:
  - source_matchers: ['flow_name="warehouse-load"']
    target_matchers: ['flow_name=~"marts-.*"']
"""
AT = datetime(2026, 5, 9, 3, 12, tzinfo=UTC)


def test_plan_holds_back_a_notification_and_names_the_inhibiting_event() -> None:
    config = make_config(CONFIG)
    event = {**mart(), "flow_id": "200"}
    [held] = plan(config, event, at=AT, silences=[], incidents=[], inhibitors=[WAREHOUSE])
    assert (held.route, held.suppressed, held.detail) == ("failures", "inhibited", "etl:wh-1")


def test_a_resolve_is_never_inhibited() -> None:
    config = make_config(CONFIG)
    success = {**mart(), "kind": "flow.succeeded", "flow_id": "200", "id": "m-2"}
    incident = Incident("failures", "page", AT.timestamp() - 60, AT.timestamp() - 60, True)
    planned = plan(
        config, success, at=AT, silences=[], incidents=[incident], inhibitors=[WAREHOUSE]
    )
    assert [(p.kind, p.suppressed) for p in planned] == [("notify", "inhibited"), ("resolve", None)]
