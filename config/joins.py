"""Joins: act once every one of a set of flows succeeded within a window. The schema of the
config's ``joins:`` section, and the pure questions asked of it: the window an instant falls in
(:func:`window_of`) and the members an event meets (:func:`members_matched`).

    joins:
      marts-ready:
        all: ['flow_id="101"', ['flow_id="102"', 'source="prod"']]
        window: {cron: "0 0 * * *", timezone: Europe/Berlin}
        then: [load-marts]
        on_expire: [ops-slack]

A member of ``all`` is met by a ``flow.succeeded`` event matching all of its matchers, and is
written as one matcher, a list of matchers, or ``{name: ..., matchers: [...]}``. Unnamed members
are named after their matchers (``flow_id="101"``, ``{flow_id="102", source="prod"}``): the
name is what "missing" messages say, and what the state in Redis is kept under, so renaming a
member, or changing the matchers of an unnamed one, starts it afresh. One event meets every
member it matches.

A ``cron`` window starts at each fire of the expression, read on the wall clock of ``timezone``
(UTC unless given), and ends at the next fire: with ``0 0 * * *`` in Europe/Berlin, one local
day, 23 or 25 hours long on the days clocks change. A ``rolling`` window is a duration: the
join completes when every member succeeded within that long of each other (see
:mod:`workers.joins`). ``grace`` is how long after a window's end an event of that window, its
webhook delayed, still counts; after it the window is closed, and reported when incomplete.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    field_validator,
    model_validator,
)

from config.base import MatcherField, Strict
from config.durations import Duration
from config.timeintervals import _zone

MEMBER_KIND = "flow.succeeded"
"""The kind of event that meets a member: a join waits for successes."""
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIVE_FIELDS = "five fields: minute hour day-of-month month day-of-week, such as 0 0 * * *"
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


def _cron(text: str) -> str:
    """A standard five-field expression or an alias; one that never fires is refused too."""
    fields = text.split()
    if text.strip().startswith("@"):
        if text.strip() not in CRON_ALIASES:
            raise ValueError(f"unknown cron alias {text!r} (known: {', '.join(CRON_ALIASES)})")
    elif len(fields) != 5:
        raise ValueError(f"{text!r} is not a cron expression of {_FIVE_FIELDS}")
    # imported when first needed: croniter runs `file` on the interpreter when imported
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter  # noqa: PLC0415

    try:
        croniter(text, _REFERENCE).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{text!r} never fires") from None
    except (CroniterBadCronError, ValueError, KeyError):
        raise ValueError(f"{text!r} is not a cron expression of {_FIVE_FIELDS}") from None
    return text


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


class Window(Strict):
    """Exactly one of ``cron`` (with an optional ``timezone``) and ``rolling``."""

    cron: Annotated[str, AfterValidator(_cron)] | None = None
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    rolling: Annotated[Duration, AfterValidator(_positive)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Window":
        if (self.cron is None) == (self.rolling is None):
            raise ValueError("must name exactly one of cron, rolling")
        if self.rolling is not None and "timezone" in self.model_fields_set:
            raise ValueError("timezone applies to cron windows only: a rolling window has none")
        return self


def default_name(matchers: Sequence[object]) -> str:
    """A member's name when it has none: its matchers as written, a set of them in braces."""
    written = ", ".join(str(m) for m in matchers)
    return written if len(matchers) == 1 else f"{{{written}}}"


_MATCHER = TypeAdapter(MatcherField)
_MATCHER_SET = TypeAdapter(list[MatcherField])


class Member(Strict):
    """One of a join's members: a set of matchers a success must meet, and its name."""

    name: str = Field(default="", min_length=1)
    """Empty only while validating: a member without a name gets :func:`default_name`."""
    matchers: list[MatcherField] = Field(min_length=1)

    @model_validator(mode="wrap")
    @classmethod
    def _forms(cls, value: Any, handler: ModelWrapValidatorHandler["Member"]) -> "Member":
        """A matcher or a list of matchers stands for ``{matchers: [...]}``. Each is parsed
        here so that an error names the place written (``all[1][0]``), not ``.matchers``."""
        if isinstance(value, str):
            value = {"matchers": [_MATCHER.validate_python(value)]}
        elif isinstance(value, list):
            if not value:
                raise ValueError("an empty list of matchers: list at least one")
            value = {"matchers": _MATCHER_SET.validate_python(value)}
        elif not isinstance(value, Mapping | Member):
            raise ValueError(
                "must be a matcher, a list of matchers, or a mapping of name, matchers"
            )
        member = handler(value)
        for matcher in member.matchers:
            if matcher.label == "kind" and not matcher.matches({"kind": MEMBER_KIND}):
                raise ValueError(
                    f"{matcher} never matches: a member is met by {MEMBER_KIND} events only"
                )
        if not member.name:
            member = member.model_copy(update={"name": default_name(member.matchers)})
        return member


class Join(Strict):
    """Run ``then`` once per window in which every member of ``all`` succeeded; run
    ``on_expire`` for a window that closed with some members seen and some missing."""

    all: list[Member] = Field(min_length=1)
    window: Window
    then: list[str] = Field(default_factory=list)
    on_expire: list[str] = Field(default_factory=list)
    grace: Duration = 300.0

    @field_validator("all")
    @classmethod
    def _distinct(cls, members: list[Member]) -> list[Member]:
        for i, member in enumerate(members):
            for j, earlier in enumerate(members[:i]):
                if member.name == earlier.name:
                    raise ValueError(
                        f"[{j}] and [{i}] are both named {member.name!r}: name or drop one"
                    )
        return members

    @model_validator(mode="after")
    def _acts(self) -> "Join":
        if not self.then and not self.on_expire:
            raise ValueError("does nothing: give it then or on_expire actions")
        return self


@dataclass(frozen=True)
class WindowSpan:
    """A window ``[start, end)`` in UTC; ``key`` names it in Redis (its start, no colons).

    UTC because Python compares two datetimes of one zone by their wall clocks: in the hour
    clocks fall back, 02:30 summer time would equal 02:30 winter time an hour later."""

    start: datetime
    end: datetime
    key: str


def window_of(window: Window, at: datetime) -> WindowSpan:
    """The window the aware instant ``at`` falls in; raise ``ValueError`` for a naive one.

    For a cron window, the one from the last fire at or before ``at`` to the next fire after it,
    the fires read on the wall clock of the window's time zone. For a rolling window, the one a
    success at ``at`` opens: ``at`` to ``at`` plus the duration.
    """
    if at.utcoffset() is None:
        raise ValueError("the instant must be timezone-aware")
    if window.rolling is not None:
        start = at.astimezone(UTC)
        return WindowSpan(start, start + timedelta(seconds=window.rolling), window_key(start))
    assert window.cron is not None
    from croniter import croniter  # noqa: PLC0415 (see _cron)

    fires = croniter(window.cron, at.astimezone(ZoneInfo(window.timezone)))
    end = fires.get_next(datetime).astimezone(UTC)  # strictly after ``at``
    start = fires.get_prev(datetime).astimezone(UTC)  # before ``end``: ``at`` when ``at`` fires
    return WindowSpan(start, end, window_key(start))


def window_key(start: datetime) -> str:
    """``20260328T230000Z``: an instant in UTC to the second (to the microsecond if it has any)."""
    utc = start.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y%m%dT%H%M%S") + fraction + "Z"


def members_matched(join: Join, labels: Mapping[str, str], tags: Sequence[str] = ()) -> list[int]:
    """The indexes in ``join.all`` of the members an event with ``labels`` and ``tags`` meets:
    none unless it is a success."""
    if labels.get("kind") != MEMBER_KIND:
        return []
    return [
        i
        for i, member in enumerate(join.all)
        if all(m.matches(labels, tags) for m in member.matchers)
    ]
