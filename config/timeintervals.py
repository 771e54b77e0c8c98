"""Named time intervals (Alertmanager's ``time_intervals``), for ``mute_time_intervals`` and
``active_time_intervals`` of routes. Pure: the instant is a parameter.

An interval is a list of specs, any of which may contain the instant; within a spec every field
given must hold (a field left out holds always), read on the wall clock of the spec's
``location`` (UTC unless given), as Alertmanager does:

    time_intervals:
      office-hours:
        - weekdays: ["monday:friday"]
          times: [{start_time: "09:00", end_time: "17:30"}]
          location: Europe/Berlin
      month-end:
        - days_of_month: ["-3:-1"]          # the last three days of every month

Ranges ``a:b`` include both ends; ``times`` include their start and exclude their end (``24:00``
is the end of the day). On a day clocks spring forward the skipped wall-clock times never occur;
on a day they fall back the repeated ones occur twice, and both count.

``weekdays`` are names; ``months`` names or 1 to 12; ``days_of_month`` 1 to 31, or -31 to -1
counted from the month's end, and a range may run from a day counted from the start to one
counted from the end (``15:-1``), clamped to the month. ``location`` is an IANA zone name: unlike
Alertmanager there is no ``Local``, since a worker's own zone is no one's office hours.
"""

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _unquoted(value: int, quoted: str, written: str) -> ValueError:
    """YAML 1.1 reads an unquoted ``17:30`` as 17 * 60 + 30 = 1050, a number in base 60."""
    return ValueError(
        f'must be quoted, as "{quoted}": YAML reads an unquoted {written} as the number {value}'
    )


def _clock_input(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 60:
            hours, minutes = divmod(value, 60)
            raise _unquoted(value, f"{hours:02d}:{minutes:02d}", f"{hours}:{minutes:02d}")
        raise ValueError('must be a time of day in quotes, such as "09:00"')
    return value


def _clock(text: str) -> str:
    if not _CLOCK.fullmatch(text):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 24:00)")
    return text


Clock = Annotated[str, BeforeValidator(_clock_input), AfterValidator(_clock)]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from None
    return name


class TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: Clock
    end_time: Clock

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRange":
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(
                "start_time must be before end_time (split a range across midnight in two)"
            )
        return self

    def contains(self, minute_of_day: int) -> bool:
        return _minutes(self.start_time) <= minute_of_day < _minutes(self.end_time)


@dataclass(frozen=True)
class _Kind:
    """What one list of a spec holds: names (numbered from ``low``), numbers, or both."""

    what: str
    accepted: str
    names: tuple[str, ...]
    low: int
    high: int
    numbers: bool
    from_end: bool = False
    """Whether ``-high`` to ``-1`` count back from the end (days of the month)."""


_WEEKDAY = _Kind("weekday", "monday to sunday", WEEKDAYS, 0, 6, numbers=False)
_MONTH = _Kind("month", "january to december, or 1 to 12", MONTHS, 1, 12, numbers=True)
_DAY = _Kind(
    "day of the month", "1 to 31, or -31 to -1 from the end", (), 1, 31, numbers=True, from_end=True
)
_YEAR = _Kind("year", "1 to 9999", (), 1, 9999, numbers=True)


@lru_cache(maxsize=4096)
def _range(text: str, kind: _Kind) -> tuple[int, int]:
    """``"a:b"`` or ``"a"`` as inclusive numbers; raise ``ValueError`` for the config's author."""
    parts = [part.strip() for part in text.split(":")]
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"{text!r} is not a value or a range a:b")
    start, end = (_number(part, kind) for part in (parts[0], parts[-1]))
    if start < 0 < end:
        raise ValueError(
            f"{text!r} starts counting from the end of the month but ends from its start"
        )
    # start:-n runs to the month's n-th last day: whether it can hold the longest month decides
    if start > (32 + end if start > 0 > end else end):
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


def _number(part: str, kind: _Kind) -> int:
    if part.lower() in kind.names:
        return kind.names.index(part.lower()) + kind.low
    try:
        value = int(part) if kind.numbers else None
    except ValueError:
        value = None
    if value is None or not (
        kind.low <= value <= kind.high or (kind.from_end and -kind.high <= value <= -1)
    ):
        raise ValueError(f"{part!r} is not a {kind.what} ({kind.accepted})")
    return value


def _bare(kind: _Kind) -> Callable[[Any], Any]:
    def text(value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return value
        if value >= 60 and not kind.low <= value <= kind.high:
            written = "{}:{}".format(*divmod(value, 60))
            raise _unquoted(value, written, written)
        return str(value)  # a number written bare, as in years: [2026]

    return text


def _checked(kind: _Kind) -> Callable[[str], str]:
    def check(item: str) -> str:
        _range(item, kind)
        return item

    return check


WeekdayRange = Annotated[str, BeforeValidator(_bare(_WEEKDAY)), AfterValidator(_checked(_WEEKDAY))]
DayRange = Annotated[str, BeforeValidator(_bare(_DAY)), AfterValidator(_checked(_DAY))]
MonthRange = Annotated[str, BeforeValidator(_bare(_MONTH)), AfterValidator(_checked(_MONTH))]
YearRange = Annotated[str, BeforeValidator(_bare(_YEAR)), AfterValidator(_checked(_YEAR))]
"""One entry of a spec's list: a value or a range ``a:b``."""


class TimeIntervalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] | None = None
    weekdays: list[WeekdayRange] | None = None
    days_of_month: list[DayRange] | None = None
    months: list[MonthRange] | None = None
    years: list[YearRange] | None = None
    location: Annotated[str, AfterValidator(_zone)] = Field(default="UTC")

    def contains(self, at: datetime) -> bool:
        """Whether the aware instant ``at`` falls in this spec, read in its location; raise
        ``ValueError`` for a naive one, which names no instant."""
        if at.utcoffset() is None:
            raise ValueError("the instant must be timezone-aware")
        local = at.astimezone(ZoneInfo(self.location))
        if self.times is not None:
            minute = local.hour * 60 + local.minute
            if not any(r.contains(minute) for r in self.times):
                return False
        if self.weekdays is not None and not _any_in(self.weekdays, _WEEKDAY, local.weekday()):
            return False
        if self.days_of_month is not None and not self._day_matches(local):
            return False
        if self.months is not None and not _any_in(self.months, _MONTH, local.month):
            return False
        return self.years is None or _any_in(self.years, _YEAR, local.year)

    def _day_matches(self, local: datetime) -> bool:
        assert self.days_of_month is not None
        last = calendar.monthrange(local.year, local.month)[1]
        for item in self.days_of_month:
            start, end = _range(item, _DAY)
            start = start if start > 0 else last + 1 + start
            end = end if end > 0 else last + 1 + end
            if start <= local.day <= min(end, last):
                return True
        return False


def _any_in(items: Sequence[str], kind: _Kind, value: int) -> bool:
    for item in items:
        start, end = _range(item, kind)
        if start <= value <= end:
            return True
    return False


def active(specs: Sequence[TimeIntervalSpec], at: datetime) -> bool:
    """Whether any spec of a named interval contains ``at`` (an aware instant)."""
    return any(spec.contains(at) for spec in specs)
