"""The destinations' registry agrees with the config: one module per destination, each named
by one field of an action, with the templates its settings declare."""

import pytest

from config.schema import COLLAPSIBLE, NOTIFIERS, Action
from config.sinks import SETTINGS
from workers.lanes import PACE
from workers.sinks.registry import DESTINATIONS


def test_every_destination_is_a_field_of_an_action_in_the_settings_order() -> None:
    assert tuple(DESTINATIONS) == tuple(SETTINGS) == NOTIFIERS
    for name in NOTIFIERS:
        assert name in Action.model_fields


@pytest.mark.parametrize("name", list(DESTINATIONS))
def test_a_destination_renders_the_templates_its_settings_name(name: str) -> None:
    destination = DESTINATIONS[name]
    assert destination.name == name
    assert destination.settings is SETTINGS[name]
    assert tuple(destination.templates) == SETTINGS[name].TEMPLATES


def test_pace_and_collapse_come_from_the_destinations() -> None:
    assert PACE == {
        "slack": 1.0,
        "pagerduty": 0.5,
        "teams": 1.0,
        "opsgenie": 0.5,
        "google_chat": 1.0,
        "apprise": 1.0,
    }
    assert {"slack", "email", "teams", "google_chat", "apprise"} == COLLAPSIBLE
