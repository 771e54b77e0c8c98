"""Durations as people write them: ``30s``, ``5m``, ``2h``, ``7d``, ``1h30m``, plain seconds."""

import math
import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from config.durations import Duration, parse_duration

FORMS = "must be a duration such as 30s, 5m, 2h or 7d"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("250ms", 0.25),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("1m30s500ms", 90.5),
        ("1.5h", 5400),
        ("0.5s", 0.5),
        ("1h 30m", 5400),
        ("  90s  ", 90),
        ("90", 90),
        ("2.5", 2.5),
        ("0", 0),
        ("0s", 0),
        (30, 30),
        (0, 0),
        (2.5, 2.5),
    ],
)
def test_accepted_forms(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "soon",
        "5 minutes",
        "5M",
        "5min",
        "h",
        "1h30",
        "30s5",
        "1.5.5h",
        ".5h",
        "5.h",
        "1e3",
        "+5s",
        "0x10",
        "nan",
        "inf",
        "5s-",
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
        None,
        [30],
        {"s": 30},
        b"30s",
    ],
)
def test_rejected_values(value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(FORMS)}$"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.5, -86400])
def test_negative_numbers_are_rejected(value: float) -> None:
    with pytest.raises(ValueError, match=r"^must not be negative$"):
        parse_duration(value)


@pytest.mark.parametrize("text", ["-5s", "-5", "- 1h"])
def test_negative_text_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(FORMS)}$"):
        parse_duration(text)


def test_the_result_is_a_float() -> None:
    assert isinstance(parse_duration(30), float)
    assert isinstance(parse_duration("30s"), float)


class Timeouts(BaseModel):
    wait: Duration = 60.0


def test_as_a_pydantic_field() -> None:
    assert Timeouts().wait == 60.0
    assert Timeouts.model_validate({"wait": "2h"}).wait == 7200.0
    with pytest.raises(ValidationError) as caught:
        Timeouts.model_validate({"wait": True})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("wait",), f"Value error, {FORMS}")
    ]
