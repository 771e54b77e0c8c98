"""config.expectations: the ``expect:`` section's schema, its errors by their exact messages
through the loader, and the pure deadline questions (a time zone's clock change included)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.expectations import Expectation, due, next_deadline
from config.loader import ConfigError, parse

HEAD = "sources: {etl: {allow_unsigned: true}}\nexpect:\n  nightly:\n"
SINCE = datetime(2026, 3, 1, tzinfo=UTC)


def errors(body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(HEAD + body, "flowhooks.yaml", {}, Path("."))
    return caught.value.errors


def expectation(**fields: Any) -> Expectation:
    return Expectation.model_validate({"matchers": ['flow_id="7"'], **fields})


def at(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


BERLIN_SIX = expectation(
    succeed_by={"cron": "0 6 * * 1-5", "timezone": "Europe/Berlin"}, grace="15m"
)
EVERY = expectation(every="26h")


def test_a_good_expectation_loads() -> None:
    config = parse(
        HEAD + "    matchers: ['flow_id=\"7\"']\n    every: 26h\n", "f.yaml", {}, Path(".")
    )
    assert config.expect["nightly"].every == 26 * 3600
    assert config.expect["nightly"].describe() == "every 26h"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "    matchers: ['flow_id=\"7\"']\n",
            "flowhooks.yaml:3: expect.nightly: must name exactly one of succeed_by, every",
        ),
        (
            "    matchers: ['flow_id=\"7\"']\n    every: 1d\n    succeed_by: {cron: '0 6 * * *'}\n",
            "flowhooks.yaml:3: expect.nightly: must name exactly one of succeed_by, every",
        ),
        (
            "    matchers: ['kind=\"flow.failed\"']\n    every: 1d\n",
            'flowhooks.yaml:3: expect.nightly: kind="flow.failed" never matches: an expectation'
            " is met by flow.succeeded events only",
        ),
        (
            "    matchers: []\n    every: 1d\n",
            "flowhooks.yaml:4: expect.nightly.matchers: must not be empty",
        ),
        (
            "    matchers: ['flow_id=\"7\"']\n    every: 0s\n",
            "flowhooks.yaml:5: expect.nightly.every: must be longer than zero",
        ),
        (
            "    matchers: ['flow_id=\"7\"']\n    succeed_by: {cron: '0 6 * *'}\n",
            "flowhooks.yaml:5: expect.nightly.succeed_by.cron: '0 6 * *' is not a cron"
            " expression of five fields: minute hour day-of-month month day-of-week,"
            " such as 0 0 * * *",
        ),
        (
            "    matchers: ['flow_id=\"7\"']\n"
            "    succeed_by: {cron: '0 6 * * *', timezone: Mars}\n",
            "flowhooks.yaml:5: expect.nightly.succeed_by.timezone: unknown time zone 'Mars'"
            " (an IANA name such as Europe/Berlin)",
        ),
    ],
)
def test_errors_point_at_the_key(body: str, message: str) -> None:
    assert errors(body) == [message]


@pytest.mark.parametrize(
    ("now", "last_success", "deadline", "met"),
    [
        # Tuesday 06:20 Berlin (04:20Z): the 06:00 deadline's grace has passed
        ("2026-05-12T04:20:00Z", None, "2026-05-12T04:00:00Z", False),
        ("2026-05-12T04:20:00Z", "2026-05-11T22:00:00Z", "2026-05-12T04:00:00Z", True),
        # a success before the previous deadline does not meet this one
        ("2026-05-12T04:20:00Z", "2026-05-11T03:59:00Z", "2026-05-12T04:00:00Z", False),
        # 06:10: within the grace, so Monday's deadline is still the latest judged
        ("2026-05-12T04:10:00Z", "2026-05-11T03:00:00Z", "2026-05-11T04:00:00Z", True),
        # Monday 06:20: the weekend has no deadlines, Friday's came before
        ("2026-05-11T04:20:00Z", "2026-05-08T10:00:00Z", "2026-05-11T04:00:00Z", True),
        # Monday after the spring clock change: 06:00 Berlin is 04:00Z, not 05:00Z
        ("2026-03-30T04:20:00Z", None, "2026-03-30T04:00:00Z", False),
        ("2026-03-27T05:20:00Z", None, "2026-03-27T05:00:00Z", False),
    ],
)
def test_the_deadline_due_and_whether_it_is_met(
    now: str, last_success: str | None, deadline: str, met: bool
) -> None:
    last = at(last_success) if last_success else None
    verdict = due(BERLIN_SIX, at(now), since=SINCE, last_success=last)
    assert verdict is not None
    assert (verdict.deadline, verdict.met) == (at(deadline), met)


def test_no_deadline_before_watching_began_counts() -> None:
    now = at("2026-05-12T04:20:00Z")
    assert due(BERLIN_SIX, now, since=now - timedelta(minutes=10), last_success=None) is None


@pytest.mark.parametrize(
    ("last_success", "deadline"),
    [
        (None, "2026-03-02T02:00:00Z"),  # 26 h after watching began
        ("2026-03-05T00:00:00Z", "2026-03-06T02:00:00Z"),
        # while none comes, one deadline every 26 h after the one missed
        ("2026-03-03T00:00:00Z", "2026-03-06T06:00:00Z"),
    ],
)
def test_every_counts_from_the_last_success(last_success: str | None, deadline: str) -> None:
    last = at(last_success) if last_success else None
    verdict = due(EVERY, at("2026-03-06T12:00:00Z"), since=SINCE, last_success=last)
    if last_success is None:
        verdict = due(EVERY, at("2026-03-02T03:00:00Z"), since=SINCE, last_success=None)
    assert verdict is not None
    assert (verdict.deadline, verdict.met) == (at(deadline), False)


def test_every_is_not_due_within_its_period() -> None:
    now = at("2026-03-06T12:00:00Z")
    assert due(EVERY, now, since=SINCE, last_success=now - timedelta(hours=25)) is None


def test_the_next_deadline() -> None:
    now = at("2026-05-08T05:00:00Z")  # Friday 07:00 Berlin: next is Monday 06:00
    assert next_deadline(BERLIN_SIX, now, since=SINCE, last_success=None) == at(
        "2026-05-11T04:00:00Z"
    )
    last = at("2026-05-08T00:00:00Z")
    assert next_deadline(EVERY, now, since=SINCE, last_success=last) == at("2026-05-09T02:00:00Z")
