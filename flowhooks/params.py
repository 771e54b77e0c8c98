"""Values the command line takes that click does not know, read by option callbacks: times and
labels. A value that does not fit is a usage error (exit 2) saying what would."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from config.durations import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


def instant(text: str, *, ago: bool) -> datetime:
    """An ISO 8601 time (``2026-05-09T14:00``: without an offset, in the local time zone), a
    duration (``30m``, ``2h``, ``7d``) before now (``ago``) or after now, or ``now``; raise
    ``click.BadParameter`` saying what is accepted."""
    text = text.strip()
    now = datetime.now().astimezone()
    if text == "now":
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return moment if moment.tzinfo else moment.astimezone()
    try:
        span = timedelta(seconds=parse_duration(text))
        return now - span if ago else now + span
    except (ValueError, OverflowError):
        relative = "ago" if ago else "from now"
        raise click.BadParameter(
            f"{text!r} is neither a time (2026-05-09T14:00:00+02:00) "
            f"nor a duration {relative} (30m, 2h, 7d)"
        ) from None


def time_option(name: str, *, ago: bool, help: str) -> Callable[[F], F]:
    """An option ``name TIME`` read by :func:`instant`, a duration being ``ago`` or ahead."""

    def read(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
        return None if value is None else instant(value, ago=ago)

    return click.option(name, metavar="TIME", callback=read, help=help)


def labels(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """Arguments ``name=value``, as amtool takes labels; a value in double quotes loses them."""
    found = []
    for text in values:
        name, equals, value = text.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"{text!r} is not a label: write name=value")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        found.append((name.strip(), value))
    return tuple(found)
