"""config.joins: the ``joins:`` section's schema, every error by its exact message through the
loader, and the pure window and member questions (DST changes included)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from config.joins import Join, Window, members_matched, window_of
from config.loader import ConfigError, parse

BERLIN = ZoneInfo("Europe/Berlin")
JOINS = TypeAdapter(dict[str, Join])


ACTIONS = "actions: {load-marts: {log: {}}, ops-slack: {log: {}}}\n"
HEAD = "sources: {etl: {allow_unsigned: true}}\njoins:\n  marts:\n"
GOOD = {
    "all": """['flow_id="101"', ['flow_id="102"', 'source="prod"']]""",
    "window": '{cron: "0 0 * * *", timezone: Europe/Berlin}',
    "then": "[load-marts]",
    "on_expire": "[ops-slack]",
}


def config_text(**parts: str | None) -> str:
    """A config whose join ``marts`` has the parts of :data:`GOOD`, replaced or (``None``)
    left out; its ``all`` is on line 4, ``window`` on 5, ``then`` on 6, ``on_expire`` on 7."""
    fields = {**GOOD, **parts}
    body = "".join(f"    {key}: {value}\n" for key, value in fields.items() if value is not None)
    return HEAD + body + ACTIONS


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, "flowhooks.yaml", {}, Path("."))
    return caught.value.errors


def join(**fields: Any) -> Join:
    return Join.model_validate({"then": ["load-marts"], **fields})


def test_a_good_join_loads() -> None:
    parse(config_text(), "flowhooks.yaml", {}, Path("."))
    loaded = JOINS.validate_python(
        {
            "marts": {
                "all": ['flow_id="101"', ['flow_id="102"', 'source="prod"']],
                "window": {"cron": "0 0 * * *", "timezone": "Europe/Berlin"},
                "then": ["load-marts"],
                "on_expire": ["ops-slack"],
            }
        }
    )["marts"]
    assert [m.name for m in loaded.all] == ['flow_id="101"', '{flow_id="102", source="prod"}']
    assert [[str(x) for x in m.matchers] for m in loaded.all] == [
        ['flow_id="101"'],
        ['flow_id="102"', 'source="prod"'],
    ]
    assert (loaded.window.cron, loaded.window.timezone, loaded.window.rolling) == (
        "0 0 * * *",
        "Europe/Berlin",
        None,
    )
    assert (loaded.then, loaded.on_expire, loaded.grace) == (["load-marts"], ["ops-slack"], 300.0)


def test_member_forms_and_names() -> None:
    loaded = join(
        all=[
            'flow_id = "101"',
            ['flow_id="102"'],
            {"name": "marts extract", "matchers": ['flow_name=~"marts-.*"', 'tags="daily"']},
            {"matchers": ['source!="test"', 'kind="flow.succeeded"']},
        ],
        window={"rolling": "6h"},
    )
    assert [m.name for m in loaded.all] == [
        'flow_id="101"',
        'flow_id="102"',
        "marts extract",
        '{source!="test", kind="flow.succeeded"}',
    ]
    assert loaded.window.rolling == 6 * 3600
    assert loaded.window.timezone == "UTC"


def test_a_join_without_then_may_only_report() -> None:
    loaded = Join.model_validate(
        {"all": ['flow_id="1"'], "window": {"cron": "@daily"}, "on_expire": ["ops-slack"]}
    )
    assert (loaded.then, loaded.on_expire) == ([], ["ops-slack"])


FIVE = "five fields: minute hour day-of-month month day-of-week, such as 0 0 * * *"
KNOWN_LABELS = (
    "audit_id, consecutive_failures, entity_id, entity_url,"
    " error, event, flow_id, flow_name, id, kind, source, status,"
    " tags, webhook_id"
)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (
            {"window": '{cron: "0 0 * *"}'},
            "flowhooks.yaml:5: joins.marts.window.cron:"
            f" '0 0 * *' is not a cron expression of {FIVE}",
        ),
        (
            {"window": '{cron: "0 0 * * * *"}'},
            "flowhooks.yaml:5: joins.marts.window.cron:"
            f" '0 0 * * * *' is not a cron expression of {FIVE}",
        ),
        (
            {"window": '{cron: "61 0 * * *"}'},
            "flowhooks.yaml:5: joins.marts.window.cron:"
            f" '61 0 * * *' is not a cron expression of {FIVE}",
        ),
        (
            {"window": '{cron: "0 0 * * funday"}'},
            "flowhooks.yaml:5: joins.marts.window.cron:"
            f" '0 0 * * funday' is not a cron expression of {FIVE}",
        ),
        (
            {"window": '{cron: "0 0 30 2 *"}'},
            "flowhooks.yaml:5: joins.marts.window.cron: '0 0 30 2 *' never fires",
        ),
        (
            {"window": "{cron: '@reboot'}"},
            "flowhooks.yaml:5: joins.marts.window.cron: unknown cron alias '@reboot'"
            " (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)",
        ),
        (
            {"window": "{cron: 5}"},
            "flowhooks.yaml:5: joins.marts.window.cron: must be a string",
        ),
        (
            {"window": '{cron: "0 0 * * *", timezone: Mars/Olympus}'},
            "flowhooks.yaml:5: joins.marts.window.timezone:"
            " unknown time zone 'Mars/Olympus' (an IANA name such as Europe/Berlin)",
        ),
        (
            {"window": '{cron: "0 0 * * *", timezone: europe/berlin}'},
            "flowhooks.yaml:5: joins.marts.window.timezone:"
            " unknown time zone 'europe/berlin' (an IANA name such as Europe/Berlin)",
        ),
        (
            {"window": '{cron: "0 0 * * *", rolling: 6h}'},
            "flowhooks.yaml:5: joins.marts.window: must name exactly one of cron, rolling",
        ),
        (
            {"window": "{}"},
            "flowhooks.yaml:5: joins.marts.window: must name exactly one of cron, rolling",
        ),
        (
            {"window": "{rolling: 6h, timezone: UTC}"},
            "flowhooks.yaml:5: joins.marts.window:"
            " timezone applies to cron windows only: a rolling window has none",
        ),
        (
            {"window": "{rolling: 0}"},
            "flowhooks.yaml:5: joins.marts.window.rolling: must be longer than zero",
        ),
        (
            {"window": "{rolling: soon}"},
            "flowhooks.yaml:5: joins.marts.window.rolling:"
            " must be a duration such as 30s, 5m, 2h or 7d",
        ),
        (
            {"window": '{cron: "0 0 * * *", tz: UTC}'},
            "flowhooks.yaml:5: joins.marts.window.tz: unknown key (known: cron, rolling, timezone)",
        ),
        ({"window": "daily"}, "flowhooks.yaml:5: joins.marts.window: must be a mapping"),
        ({"window": None}, "flowhooks.yaml:3: joins.marts.window: required"),
        ({"all": "[]"}, "flowhooks.yaml:4: joins.marts.all: must not be empty"),
        ({"all": None}, "flowhooks.yaml:3: joins.marts.all: required"),
        ({"all": 'flow_id="1"'}, "flowhooks.yaml:4: joins.marts.all: must be a list"),
        (
            {"all": "[[]]"},
            "flowhooks.yaml:4: joins.marts.all[0]: an empty list of matchers: list at least one",
        ),
        (
            {"all": "[5]"},
            "flowhooks.yaml:4: joins.marts.all[0]:"
            " must be a matcher, a list of matchers, or a mapping of name, matchers",
        ),
        (
            {"all": """['flw_id="1"']"""},
            f"flowhooks.yaml:4: joins.marts.all[0]: unknown label 'flw_id' (known: {KNOWN_LABELS})",
        ),
        (
            {"all": """['flow_id="1"', ['flow_id="2"', 'sorce="prod"']]"""},
            "flowhooks.yaml:4: joins.marts.all[1][1]:"
            f" unknown label 'sorce' (known: {KNOWN_LABELS})",
        ),
        (
            {"all": """[{name: B, matchers: ['flow_id=~"("']}]"""},
            "flowhooks.yaml:4: joins.marts.all[0].matchers[0]:"
            " bad regex '(': missing ), unterminated subpattern at position 0",
        ),
        (
            {"all": """[{name: B, matchers: ['flow_id="2"'], when: daily}]"""},
            "flowhooks.yaml:4: joins.marts.all[0].when: unknown key (known: matchers, name)",
        ),
        (
            {"all": """[{name: "", matchers: ['flow_id="2"']}]"""},
            "flowhooks.yaml:4: joins.marts.all[0].name: must not be empty",
        ),
        (
            {"all": "[{name: B}]"},
            "flowhooks.yaml:4: joins.marts.all[0].matchers: required",
        ),
        (
            {"all": """['kind="flow.failed"']"""},
            "flowhooks.yaml:4: joins.marts.all[0]:"
            ' kind="flow.failed" never matches: a member is met by flow.succeeded events only',
        ),
        (
            {"all": """['flow_id="1"', ['flow_id="1"']]"""},
            "flowhooks.yaml:4: joins.marts.all:"
            """ [0] and [1] are both named 'flow_id="1"': name or drop one""",
        ),
        (
            {"all": """[{name: A, matchers: ['flow_id="1"']}, {name: A, matchers: ['id="2"']}]"""},
            "flowhooks.yaml:4: joins.marts.all: [0] and [1] are both named 'A': name or drop one",
        ),
        (
            {"then": None, "on_expire": None},
            "flowhooks.yaml:3: joins.marts: does nothing: give it then or on_expire actions",
        ),
        ({"then": "load-marts"}, "flowhooks.yaml:6: joins.marts.then: must be a list"),
        ({"grace": "-5"}, "flowhooks.yaml:8: joins.marts.grace: must not be negative"),
        (
            {"every": "1d"},
            "flowhooks.yaml:8: joins.marts.every:"
            " unknown key (known: all, grace, on_expire, then, window)",
        ),
    ],
)
def test_errors(parts: dict[str, str | None], message: str) -> None:
    assert errors(config_text(**parts)) == [message]


# Windows ------------------------------------------------------------------------------------


def at(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None
    return instant


def cron(expression: str, timezone: str = "Europe/Berlin") -> Window:
    return Window(cron=expression, timezone=timezone)


def test_a_daily_window_is_the_local_day() -> None:
    span = window_of(cron("0 0 * * *"), at("2026-05-04T12:00:00+02:00"))
    assert (span.start, span.end) == (at("2026-05-04T00:00:00+02:00"), at("2026-05-05T00:00+02:00"))
    assert span.key == "20260503T220000Z"
    assert span.start.tzinfo is UTC


def test_a_window_includes_its_start_and_not_its_end() -> None:
    day = window_of(cron("0 0 * * *"), at("2026-05-04T00:00:00+02:00"))
    assert day.start == at("2026-05-04T00:00:00+02:00")
    assert window_of(cron("0 0 * * *"), day.end).start == day.end
    last = day.end - timedelta(microseconds=1)
    assert window_of(cron("0 0 * * *"), last) == day


def test_the_day_clocks_spring_forward_is_23_hours() -> None:
    span = window_of(cron("0 0 * * *"), at("2026-03-29T12:00:00+02:00"))
    assert span.start == at("2026-03-28T23:00:00Z")
    assert span.end == at("2026-03-29T22:00:00Z")
    assert span.end.astimezone(UTC) - span.start.astimezone(UTC) == timedelta(hours=23)
    assert span.key == "20260328T230000Z"
    # the first minutes of the day, still in winter time, belong to it too
    assert window_of(cron("0 0 * * *"), at("2026-03-29T00:30:00+01:00")) == span


def test_the_day_clocks_fall_back_is_25_hours() -> None:
    span = window_of(cron("0 0 * * *"), at("2026-10-25T12:00:00+01:00"))
    assert (span.start, span.end) == (at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z"))
    assert span.end.astimezone(UTC) - span.start.astimezone(UTC) == timedelta(hours=25)
    # both 02:30s of the day, summer and winter time, are in it
    assert window_of(cron("0 0 * * *"), at("2026-10-25T02:30:00+02:00")) == span
    assert window_of(cron("0 0 * * *"), at("2026-10-25T02:30:00+01:00")) == span


def test_hourly_windows_through_the_repeated_hour() -> None:
    summer = window_of(cron("0 * * * *"), at("2026-10-25T02:30:00+02:00"))
    winter = window_of(cron("0 * * * *"), at("2026-10-25T02:30:00+01:00"))
    assert (summer.start, summer.end) == (at("2026-10-25T00:00:00Z"), at("2026-10-25T01:00:00Z"))
    assert (winter.start, winter.end) == (at("2026-10-25T01:00:00Z"), at("2026-10-25T02:00:00Z"))
    assert summer.key != winter.key
    skipped = window_of(cron("0 * * * *"), at("2026-03-29T01:30:00+01:00"))
    assert (skipped.start, skipped.end) == (at("2026-03-29T00:00:00Z"), at("2026-03-29T01:00Z"))


@pytest.mark.parametrize("expression", ["0 0 * * *", "0 * * * *", "30 2 * * *", "*/20 1-3 * * *"])
@pytest.mark.parametrize("day", ["2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z"])
def test_windows_tile_time_across_dst_changes(expression: str, day: str) -> None:
    """Every instant is in exactly one window: each contains the instants asked about, starts
    where the one before ends, and is named by its start."""
    window = cron(expression)
    instant = at(day)
    spans = set()
    while instant < at(day) + timedelta(days=3):
        span = window_of(window, instant)
        assert span.start <= instant < span.end
        if span not in spans:
            assert window_of(window, span.end).start == span.end
            assert window_of(window, span.start) == span
            spans.add(span)
        instant += timedelta(minutes=15)
    assert len({s.key for s in spans}) == len({s.start for s in spans}) == len(spans)


def test_a_rolling_window_is_the_one_a_success_opens() -> None:
    span = window_of(Window(rolling=6 * 3600), at("2026-05-04T12:00:00.250+02:00"))
    assert (span.start, span.end) == (at("2026-05-04T10:00:00.250Z"), at("2026-05-04T16:00:00.25Z"))
    assert span.key == "20260504T100000.250000Z"


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_of(cron("0 0 * * *"), datetime(2026, 5, 4, 12))


# Members ------------------------------------------------------------------------------------

MARTS = join(
    all=['flow_id="101"', ['flow_id="102"', 'source="prod"'], ['tags="marts"']],
    window={"cron": "0 0 * * *"},
)


def labels(kind: str = "flow.succeeded", **values: str) -> dict[str, str]:
    return {"kind": kind, "source": "prod", **values}


@pytest.mark.parametrize(
    ("event", "tags", "matched"),
    [
        (labels(flow_id="101"), [], [0]),
        (labels(flow_id="102"), [], [1]),
        (labels(flow_id="102", source="test"), [], []),
        (labels(flow_id="101"), ["etl", "marts"], [0, 2]),
        (labels(flow_id="7"), ["marts"], [2]),
        (labels("flow.failed", flow_id="101"), ["marts"], []),
        (labels("flow.warning", flow_id="101"), [], []),
        (labels("join.expired", flow_id="101"), [], []),
    ],
)
def test_members_matched(event: dict[str, str], tags: list[str], matched: list[int]) -> None:
    assert members_matched(MARTS, event, tags) == matched
