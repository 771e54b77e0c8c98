"""The admin API's inputs, read and checked: query parameters, path parameters and the JSON of a
new silence. Pure. Whatever a client sends either becomes a typed value or raises
:class:`BadRequest` with a message fit to show it (the API answers 400 with it).

What is accepted is exactly what the OpenAPI document (:mod:`receiver.admin.openapi`) describes,
where JSON Schema can say it: the patterns, enums and bounds here and there are the same
constants.
"""

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from config.durations import parse_duration
from config.eventlog import Filters
from config.events import Kind, Status
from config.schema import SOURCE_NAME

KINDS: tuple[str, ...] = get_args(Kind)
STATUSES: tuple[str, ...] = get_args(Status)
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000
MAX_TEXT = 200
"""The longest a label filter (a flow id, an event id) may be."""
MAX_WINDOW_HOURS = 24 * 366
EPOCH_MS = r"^[0-9]{1,15}$"
INSTANT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
"""An RFC 3339 date-time (the profile of ISO 8601 that OpenAPI's ``date-time`` names)."""
JOB_ID = r"^[A-Za-z0-9_-]{1,200}$"
"""RQ's job ids."""
SILENCE_ID = r"^[A-Za-z0-9]{1,64}$"
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$|^[0-9]+(\.[0-9]+)?$"
"""The forms :func:`config.durations.parse_duration` reads."""
MAX_MATCHERS = 20
MAX_MATCHER = 1000
MAX_COMMENT = 2000
INTEGER = re.compile(r"[0-9]{1,10}")
NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
EVENT_FILTERS = ("source", "kind", "flow_id", "status", "since", "until")


class BadRequest(ValueError):
    """Input that cannot be used; the message names the parameter and what it must be."""


def one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The value of ``name``, given at most once."""
    values = params.get(name) or []
    if len(values) > 1:
        raise BadRequest(f"{name}: give it once")
    return values[0] if values else None


def known(params: Mapping[str, Sequence[str]], names: Sequence[str]) -> None:
    """Refuse a parameter not in ``names``: a misspelt filter would silently list everything."""
    for name in params:
        if name not in names:
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise BadRequest(f"unknown parameter {shown!r} (known: {', '.join(names)})")


def integer(text: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not INTEGER.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequest(f"{name}: must be a whole number from {low} to {high}")
    return int(text)


def flag(text: str | None, name: str) -> bool:
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise BadRequest(f"{name}: must be true or false")


def instant_ms(text: str, name: str) -> int:
    """Unix milliseconds from epoch milliseconds or an RFC 3339 date-time."""
    if re.fullmatch(EPOCH_MS, text):
        return int(text)
    if re.fullmatch(INSTANT, text):
        whole, dot, rest = text.partition(".")
        if dot:  # Python reads at most microseconds
            digits = re.match(r"[0-9]+", rest)
            assert digits is not None
            text = f"{whole}.{digits.group()[:6]}{rest[digits.end() :]}"
        try:
            return int(datetime.fromisoformat(text).timestamp() * 1000)
        except (ValueError, OverflowError):
            pass
    raise BadRequest(f"{name}: must be an RFC 3339 date-time or Unix milliseconds")


def text(value: str | None, name: str, pattern: str | None = None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_TEXT:
        raise BadRequest(f"{name}: must be 1 to {MAX_TEXT} characters")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise BadRequest(f"{name}: {value!r} is not valid")
    return value


def choice(value: str | None, name: str, allowed: Sequence[str]) -> str | None:
    if value is not None and value not in allowed:
        raise BadRequest(f"{name}: must be one of {', '.join(allowed)}")
    return value


def event_filters(params: Mapping[str, Sequence[str]]) -> Filters:
    since, until = one(params, "since"), one(params, "until")
    filters = Filters(
        source=text(one(params, "source"), "source", SOURCE_NAME),
        kind=choice(one(params, "kind"), "kind", KINDS),
        flow_id=text(one(params, "flow_id"), "flow_id"),
        status=choice(one(params, "status"), "status", STATUSES),
        since_ms=None if since is None else instant_ms(since, "since"),
        until_ms=None if until is None else instant_ms(until, "until"),
    )
    low, high = filters.since_ms, filters.until_ms
    if low is not None and high is not None and low > high:
        raise BadRequest("since: must not be after until")
    return filters


def page(params: Mapping[str, Sequence[str]]) -> tuple[int, int]:
    """``limit`` and ``offset``."""
    limit = integer(one(params, "limit"), "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    offset = integer(one(params, "offset"), "offset", default=0, low=0, high=MAX_OFFSET)
    return limit, offset


def window_hours(text: str | None) -> float:
    if text is None:
        return 24.0
    hours = float(text) if NUMBER.fullmatch(text) else math.nan
    if not 0 < hours <= MAX_WINDOW_HOURS:  # also refuses nan
        raise BadRequest(f"windowHours: must be a number above 0 and at most {MAX_WINDOW_HOURS}")
    return hours


OUTCOMES = (
    "delivered",
    "done",
    "unconfirmed",
    "failed",
    "dead_letter",
    "skipped",
    "paced",
    "waiting",
)
"""What a delivery attempt may come to (``done``, ``unconfirmed`` and ``waiting``: an Etlworks
action's; ``paced``: a notification that waits its turn)."""
SPANS = (60, 180, 360, 1440)
"""The windows the overview offers, in minutes (its counts are kept a day)."""
MAX_MINUTES = 1440


def minutes(text: str | None) -> int:
    """The overview's window in minutes: 180 unless given."""
    return integer(text, "minutes", default=180, low=5, high=MAX_MINUTES)


def path_value(value: str, name: str, pattern: str) -> str:
    if not re.fullmatch(pattern, value):
        raise BadRequest(f"{name}: {value[:80]!r} is not valid")
    return value


NEW_SILENCE = ("matchers", "duration", "endsAt", "comment", "author")


def new_silence(body: object) -> dict[str, Any]:
    """The arguments of :func:`config.silences.create` but ``now``: ``matchers``, ``duration``
    or ``ends_at``, ``author`` and ``comment``. The matchers themselves are checked by
    ``create``, which raises ``ValueError``."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    for name in body:
        if name not in NEW_SILENCE:
            raise BadRequest(f"unknown field {str(name)[:40]!r} (known: {', '.join(NEW_SILENCE)})")
    matchers = body.get("matchers")
    if (
        not isinstance(matchers, list)
        or not 1 <= len(matchers) <= MAX_MATCHERS
        or not all(isinstance(m, str) and 1 <= len(m) <= MAX_MATCHER for m in matchers)
    ):
        raise BadRequest(
            f'matchers: must be a list of 1 to {MAX_MATCHERS} matchers such as kind="flow.failed"'
        )
    author = body.get("author")
    if not isinstance(author, str) or not 1 <= len(author) <= MAX_TEXT:
        raise BadRequest(f"author: must be text of 1 to {MAX_TEXT} characters")
    comment = body.get("comment")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise BadRequest(f"comment: must be text of at most {MAX_COMMENT} characters")
    if ("duration" in body) == ("endsAt" in body):
        raise BadRequest("give either duration or endsAt")
    if "duration" in body:
        return {
            "matchers": matchers,
            "duration": _duration(body["duration"]),
            "author": author,
            "comment": comment,
        }
    ends = body["endsAt"]
    if not isinstance(ends, str) or not re.fullmatch(INSTANT, ends):
        raise BadRequest("endsAt: must be an RFC 3339 date-time")
    try:
        at = datetime.fromtimestamp(instant_ms(ends, "endsAt") / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # past the year 9999 in UTC
        raise BadRequest("endsAt: must be an RFC 3339 date-time") from None
    return {"matchers": matchers, "ends_at": at, "author": author, "comment": comment}


def _duration(value: object) -> float:
    """Seconds from ``2h``-style text or a number of seconds above zero."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequest("duration: must be a duration such as 2h, or seconds")
    if isinstance(value, str) and not re.fullmatch(DURATION, value):
        raise BadRequest("duration: must be a duration such as 2h, or seconds")
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise BadRequest("duration: must be a duration such as 2h, or seconds") from None
    if not seconds > 0:
        raise BadRequest("duration: must be longer than zero")
    return seconds
