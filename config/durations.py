"""Durations as people write them in config files and environment variables: ``90s``, ``5m``,
``2h``, ``7d``, ``1h30m``, or a plain number of seconds."""

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m, 2h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif re.fullmatch(f"(?:{_PART.pattern})+", text):
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
        else:
            raise ValueError("must be a duration such as 30s, 5m, 2h or 7d")
    else:
        raise ValueError("must be a duration such as 30s, 5m, 2h or 7d")
    if not math.isfinite(seconds):
        raise ValueError("must be a duration such as 30s, 5m, 2h or 7d")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds, accepting the forms of :func:`parse_duration`."""


def positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(positive)]
"""A :data:`Duration` longer than zero."""
