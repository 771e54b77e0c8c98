"""How the commands print: cells, tables, times and durations."""

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from flowhooks.output import block, cell, duration, table, when


@pytest.fixture
def kolkata() -> Iterator[None]:
    """The local zone is Asia/Kolkata (+05:30 all year) for the test."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_a_cell_is_one_line_that_moves_no_cursor() -> None:
    assert cell(None) == ""
    assert cell(["a", 7, None]) == "a, 7, "
    assert cell("red\x1b[31m\nrow\ttab\r\x7f\x9b") == "red\\x1b[31m\\nrow\\ttab\\r\\x7f\\x9b"
    assert cell("naïve ✓") == "naïve ✓"
    assert block("one\x1b[2J\ntwo") == "one\\x1b[2J\ntwo"


def test_a_table_fits_its_columns_to_their_content() -> None:
    shown = table(("ID", "NAME", "NOTE"), [("1", "a long name", None), ("22", "b", "x\ny")])
    assert shown.splitlines() == [
        "ID  NAME         NOTE",
        "1   a long name",
        "22  b            x\\ny",
    ]
    assert table(("A", "B"), []) == "A  B"


def test_times_are_local_with_their_offset(kolkata: None) -> None:
    assert when("2026-05-09T12:00:00.123456+00:00") == "2026-05-09T17:30:00+05:30"
    assert when(datetime(2026, 5, 9, 12, tzinfo=UTC)) == "2026-05-09T17:30:00+05:30"
    assert when("2026-05-09T12:00:00") == "2026-05-09T12:00:00"  # no zone: as written
    assert when("soon") == "soon"
    assert when(None) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(14400, "4h"), (5400, "1h30m"), (45, "45s"), (0, "0s"), (0.5, "0.5s"), (90061, "1d1h1m1s")],
)
def test_durations_read_as_the_config_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text
