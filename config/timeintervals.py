"""Named time intervals (Alertmanager's ``time_intervals``), for ``mute_time_intervals`` and
``active_time_intervals`` of routes. Pure: the instant is a parameter.

An interval is a list of specs, any of which may contain the instant; within a spec every field
given must hold (a field left out holds always), read in the spec's ``location``:

    time_intervals:
      office-hours:
        - weekdays: ["monday:friday"]
          times: [{start_time: "09:00", end_time: "17:30"}]
          location: Europe/Berlin
      month-end:
        - days_of_month: ["-3:-1"]          # the last three days of every month
"""

import calendar
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


def _minutes(text: str) -> int:
    if not _CLOCK.fullmatch(text):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


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

    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRange":
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError("start_time must be before end_time")
        return self

    def contains(self, minute_of_day: int) -> bool:
        return _minutes(self.start_time) <= minute_of_day < _minutes(self.end_time)


def _range(text: str, names: Sequence[str], low: int, high: int) -> tuple[int, int]:
    """``"a:b"`` or ``"a"`` as inclusive numbers; names (``monday``) or numbers accepted."""
    parts = text.strip().lower().split(":")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"{text!r} is not a value or a range a:b")

    def number(part: str) -> int:
        if part in names:
            return names.index(part) + low
        try:
            value = int(part)
        except ValueError:
            raise ValueError(
                f"{part!r} is not one of {', '.join(names) or 'the numbers'}"
            ) from None
        if not (low <= abs(value) <= high) or (value < 0 and names):
            raise ValueError(f"{part!r} is out of range {low}..{high}")
        return value

    start, end = number(parts[0]), number(parts[-1])
    if (start < 0) == (end < 0) and start > end:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


def _weekdays(items: list[str]) -> list[str]:
    for item in items:
        _range(item, WEEKDAYS, 0, 6)
    return items


def _days(items: list[str]) -> list[str]:
    for item in items:
        start, end = _range(item, (), 1, 31)
        if start < 0 < end:
            raise ValueError(f"{item!r} mixes a day counted from the end with one from the start")
    return items


def _months(items: list[str]) -> list[str]:
    for item in items:
        _range(item, MONTHS, 1, 12)
    return items


def _years(items: list[str]) -> list[str]:
    for item in items:
        _range(item, (), 1, 9999)
    return items


class TimeIntervalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] | None = None
    weekdays: Annotated[list[str], AfterValidator(_weekdays)] | None = None
    days_of_month: Annotated[list[str], AfterValidator(_days)] | None = None
    months: Annotated[list[str], AfterValidator(_months)] | None = None
    years: Annotated[list[str], AfterValidator(_years)] | None = None
    location: Annotated[str, AfterValidator(_zone)] = Field(default="UTC")

    def contains(self, at: datetime) -> bool:
        """Whether the aware instant ``at`` falls in this spec, read in its location."""
        local = at.astimezone(ZoneInfo(self.location))
        if self.times is not None:
            minute = local.hour * 60 + local.minute
            if not any(r.contains(minute) for r in self.times):
                return False
        if self.weekdays is not None and not _any_in(
            self.weekdays, WEEKDAYS, 0, 6, local.weekday()
        ):
            return False
        if self.days_of_month is not None and not self._day_matches(local):
            return False
        if self.months is not None and not _any_in(self.months, MONTHS, 1, 12, local.month):
            return False
        return self.years is None or _any_in(self.years, (), 1, 9999, local.year)

    def _day_matches(self, local: datetime) -> bool:
        assert self.days_of_month is not None
        last = calendar.monthrange(local.year, local.month)[1]
        for item in self.days_of_month:
            start, end = _range(item, (), 1, 31)
            start = start if start > 0 else last + 1 + start
            end = end if end > 0 else last + 1 + end
            if start <= local.day <= min(end, last):
                return True
        return False


def _any_in(items: list[str], names: Sequence[str], low: int, high: int, value: int) -> bool:
    for item in items:
        start, end = _range(item, names, low, high)
        if start <= value <= end:
            return True
    return False


def active(specs: Sequence[TimeIntervalSpec], at: datetime) -> bool:
    """Whether any spec of a named interval contains ``at``."""
    return any(spec.contains(at) for spec in specs)
