"""The routing tree, table-driven from routing_cases.yaml, plus inheritance of settings."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.schema import Config
from tests.support import make_config
from workers.routing import DEFAULT_REPEAT_INTERVAL, expand, match

CASES = yaml.safe_load((Path(__file__).parent / "routing_cases.yaml").read_text())
HEAD = """
sources: {etl: {allow_unsigned: true}}
actions: {a: {log: {}}, b: {log: {}}, c: {log: {}}, d: {log: {}}}
time_intervals:
  nights: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
  office: [{weekdays: ["monday:friday"]}]
"""


def config_with(routes: dict[str, Any]) -> Config:
    return make_config(HEAD + yaml.safe_dump({"routes": routes}))


def labels(event: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    return {k: str(v) for k, v in event.items() if k != "tags"}, list(event.get("tags", []))


@pytest.mark.parametrize(
    ("table", "case"),
    [(t, c) for t in CASES for c in t["cases"]],
    ids=[f"{t['name']}: {c['event']}" for t in CASES for c in t["cases"]],
)
def test_routing_table(table: dict[str, Any], case: dict[str, Any]) -> None:
    tree = config_with(table["routes"]).routes
    found = match(tree, *labels(case["event"]))
    assert {m.path: list(m.actions) for m in found} == case["expect"]


def test_settings_are_inherited_and_overridden() -> None:
    tree = config_with(
        {
            "actions": ["a"],
            "resolve": True,
            "group_by": ["flow_id"],
            "mute_time_intervals": ["nights"],
            "routes": [
                {
                    "matchers": ['kind="flow.failed"'],
                    "repeat_interval": "1h",
                    "routes": [{"matchers": ['source="prod"'], "resolve": False, "group_by": []}],
                }
            ],
        }
    ).routes
    [root] = match(tree, {"kind": "flow.succeeded"})
    assert (root.resolve, root.repeat_interval, root.group_by) == (
        True,
        DEFAULT_REPEAT_INTERVAL,
        ("flow_id",),
    )
    [leaf] = match(tree, {"kind": "flow.failed", "source": "prod"})
    assert leaf.path == "routes.routes[0].routes[0]"
    assert (leaf.actions, leaf.resolve, leaf.repeat_interval, leaf.group_by) == (
        ("a",),
        False,
        3600.0,
        (),
    )
    assert leaf.mute_time_intervals == ("nights",)


def test_the_expanded_tree_holds_what_match_returns() -> None:
    """``routes show`` prints :func:`expand`: every route with the settings routing uses."""
    tree = config_with(
        {
            "actions": ["a"],
            "repeat_interval": "2h",
            "routes": [
                {"matchers": ['kind="flow.failed"'], "actions": ["b"], "continue": True},
                {
                    "matchers": ['kind="flow.failed"'],
                    "routes": [{"matchers": ['source="prod"'], "resolve": True}],
                },
            ],
        }
    ).routes
    root = expand(tree)
    first, second = root.children
    [leaf] = second.children
    assert [root.settings.path, first.settings.path, second.settings.path, leaf.settings.path] == [
        "routes",
        "routes.routes[0]",
        "routes.routes[1]",
        "routes.routes[1].routes[0]",
    ]
    assert (first.route.continue_, [str(m) for m in first.route.matchers]) == (
        True,
        ['kind="flow.failed"'],
    )
    assert match(tree, {"kind": "flow.failed", "source": "prod"}) == [
        first.settings,
        leaf.settings,
    ]
    assert (leaf.settings.actions, leaf.settings.repeat_interval, leaf.settings.resolve) == (
        ("a",),
        7200.0,
        True,
    )
    assert leaf.children == ()
