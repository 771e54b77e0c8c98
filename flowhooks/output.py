"""How the commands print what they list or show: ``-o text`` (the default) for people, ``-o
json`` for programs.

Text: tables with a header row and columns as wide as their content, times in the local time
zone as ISO 8601 with their offset (``2026-05-09T14:00:00+02:00``, which ``--since`` takes
back), durations as the config writes them (``4h``, ``1m30s``). Values that come from events
are printed with their control characters escaped, so a flow name cannot move the cursor, clear
the screen or start a row of its own.

JSON: a list prints one object a line (JSON Lines, as ``events tail`` streams them), a single
thing one indented object.
"""

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
Output = Literal["text", "json"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def output_option(command: F) -> F:
    """``-o, --output text|json``, passed to the command as ``output``."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text: for people; json: for programs (one object a line for a list).",
    )(command)


def cell(value: object) -> str:
    """A value as one line of text: ``None`` is empty, lists are comma-separated, control
    characters are escaped (``\\n``, ``\\x1b``)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return _CONTROL.sub(_escape, str(value))


def block(text: str) -> str:
    """Lines of text as :func:`cell` shows a value: line breaks kept, other control characters
    escaped."""
    return "\n".join(cell(line) for line in text.splitlines())


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header row and the rows, each column as wide as its widest cell, two spaces apart."""
    lines = [list(headers), *([cell(v) for v in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def when(value: object) -> str:
    """An ISO 8601 time (as stored) in the local time zone with its offset, to the second;
    anything else as given."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return cell(value)
    if moment.tzinfo is None:
        return cell(value)  # no zone to convert from: shown as written
    return moment.astimezone().isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    """Seconds as the config writes durations: ``4h``, ``1h30m``, ``45s``, ``0s``."""
    whole, rest = divmod(seconds, 1)
    left, parts = int(whole), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    if left or rest or not parts:
        parts.append(f"{left + rest:g}s")
    return "".join(parts)


def lines(items: Iterable[object]) -> None:
    """JSON Lines: one compact object a line."""
    for item in items:
        click.echo(json.dumps(item, default=str))


def document(item: object) -> None:
    """One indented JSON document."""
    click.echo(json.dumps(item, indent=2, default=str))
