"""Expectations: the flows that must succeed on a schedule, so that one that never ran is
noticed. The schema of the config's ``expect:`` section, and the pure question asked of it:
which deadline is due at an instant, and whether the successes seen meet it (:func:`due`).

    expect:
      nightly-warehouse:
        matchers: ['flow_name="warehouse-load"']
        succeed_by: {cron: "0 6 * * 1-5", timezone: Europe/Berlin}
        grace: 15m
      crm-sync:
        matchers: ['flow_id="42"', 'source="prod"']
        every: 26h

With ``succeed_by``, each fire of the cron expression (read on the wall clock of ``timezone``,
UTC unless given) is a deadline, met by a matching success after the previous deadline; the
deadline is judged ``grace`` after it, so that a success finishing on time whose webhook is
late still counts. With ``every``, the deadline is ``every`` after the last success (after
flowhooks began watching, when there was none yet), and, while none comes, every ``every``
after the deadline missed.

A success is a ``flow.succeeded`` event matching every matcher, timed by when the flow
finished (else when flowhooks received it). A deadline missed becomes one
``expectation.missed`` event (:mod:`workers.expectations`).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, model_validator

from config.base import MatcherField, Strict
from config.durations import Duration
from config.joins import _cron
from config.timeintervals import _zone

SUCCESS_KIND = "flow.succeeded"
MISSED_KIND = "expectation.missed"


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


class Deadline(Strict):
    """``succeed_by``: each fire of ``cron`` on the wall clock of ``timezone``."""

    cron: Annotated[str, AfterValidator(_cron)]
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"


class Expectation(Strict):
    """Exactly one of ``succeed_by`` and ``every``; ``grace`` delays the judgement."""

    matchers: list[MatcherField] = Field(min_length=1)
    succeed_by: Deadline | None = None
    every: Annotated[Duration, AfterValidator(_positive)] | None = None
    grace: Duration = 0.0

    @model_validator(mode="after")
    def _one_kind(self) -> "Expectation":
        if (self.succeed_by is None) == (self.every is None):
            raise ValueError("must name exactly one of succeed_by, every")
        for matcher in self.matchers:
            if matcher.label == "kind" and not matcher.matches({"kind": SUCCESS_KIND}):
                raise ValueError(
                    f"{matcher} never matches: an expectation is met by {SUCCESS_KIND} events only"
                )
        return self

    def label(self, name: str) -> str:
        """An equality matcher's value for ``name`` (``flow_id``, ``source``), if one pins it."""
        return next((m.value for m in self.matchers if m.label == name and m.op == "="), "")

    def describe(self) -> str:
        """The expectation as people say it: ``by 0 6 * * 1-5 (Europe/Berlin)``, ``every 26h``."""
        if self.succeed_by is not None:
            return f"by {self.succeed_by.cron} ({self.succeed_by.timezone})"
        assert self.every is not None
        return f"every {_hours(self.every)}"


def _hours(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Verdict:
    """The latest deadline judged by an instant: when it was, what a success had to follow
    (``after``), and whether one did."""

    deadline: datetime
    after: datetime
    met: bool


def due(
    expectation: Expectation, now: datetime, *, since: datetime, last_success: datetime | None
) -> Verdict | None:
    """The latest deadline whose grace has passed by ``now`` and which falls after ``since``
    (when flowhooks began watching), with whether ``last_success`` meets it; ``None`` when no
    such deadline is due yet. Every instant is aware; the result is in UTC."""
    judged = now - timedelta(seconds=expectation.grace)
    if expectation.every is not None:
        period = timedelta(seconds=expectation.every)
        base = max(last_success or since, since)
        if judged < base + period:
            return None
        # while no success comes, the deadlines follow one another every period
        periods = (judged - base) // period
        deadline = (base + period * periods).astimezone(UTC)
        return Verdict(deadline, deadline - period, met=False)
    assert expectation.succeed_by is not None
    from croniter import croniter  # noqa: PLC0415 (see config.joins._cron)

    zone = ZoneInfo(expectation.succeed_by.timezone)
    fires = croniter(expectation.succeed_by.cron, judged.astimezone(zone))
    # the fire at or before ``judged``, then the one before it
    fires.get_next(datetime)
    deadline = fires.get_prev(datetime)
    previous = fires.get_prev(datetime).astimezone(UTC)
    deadline = deadline.astimezone(UTC)
    if deadline <= since:
        return None
    met = last_success is not None and last_success > previous
    return Verdict(deadline, previous, met)


def next_deadline(
    expectation: Expectation, now: datetime, *, since: datetime, last_success: datetime | None
) -> datetime:
    """The next deadline after ``now`` (UTC), for ``flowhooks expect status``."""
    if expectation.every is not None:
        period = timedelta(seconds=expectation.every)
        base = max(last_success or since, since)
        deadline = base + period
        if deadline <= now:
            deadline += period * ((now - deadline) // period + 1)
        return deadline.astimezone(UTC)
    assert expectation.succeed_by is not None
    from croniter import croniter  # noqa: PLC0415

    zone = ZoneInfo(expectation.succeed_by.timezone)
    fire: datetime = croniter(expectation.succeed_by.cron, now.astimezone(zone)).get_next(datetime)
    return fire.astimezone(UTC)
