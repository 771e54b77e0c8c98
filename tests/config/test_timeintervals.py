"""config.timeintervals: which instants a time interval contains, read on the wall clock of its
location as Alertmanager does (DST changes included), and every config error by its exact
message through the loader."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from config.loader import ConfigError
from config.timeintervals import TimeIntervalSpec, active
from tests.support import make_config


def spec(**fields: Any) -> TimeIntervalSpec:
    return TimeIntervalSpec.model_validate(fields)


def at(text: str) -> datetime:
    """An instant written in ISO 8601 with its offset (``Z`` for UTC)."""
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None
    return instant


def hours(start: str, end: str) -> dict[str, str]:
    return {"start_time": start, "end_time": end}


# 2026-05-04 is a Monday
@pytest.mark.parametrize(
    ("weekdays", "days"),
    [
        (["monday"], [0]),
        (["Monday"], [0]),
        (["monday:friday"], [0, 1, 2, 3, 4]),
        (["saturday:sunday"], [5, 6]),
        (["SATURDAY : Sunday"], [5, 6]),
        (["monday", "wednesday:thursday"], [0, 2, 3]),
        (["sunday"], [6]),
        (["monday:sunday"], [0, 1, 2, 3, 4, 5, 6]),
        ([], []),
    ],
)
def test_weekdays(weekdays: list[str], days: list[int]) -> None:
    found = [
        i for i in range(7) if spec(weekdays=weekdays).contains(at(f"2026-05-{4 + i:02d}T12:00Z"))
    ]
    assert found == days


@pytest.mark.parametrize(
    ("times", "instant", "expected"),
    [
        ([hours("09:00", "17:30")], "2026-05-04T09:00:00Z", True),
        ([hours("09:00", "17:30")], "2026-05-04T08:59:59Z", False),
        ([hours("09:00", "17:30")], "2026-05-04T17:29:59Z", True),
        ([hours("09:00", "17:30")], "2026-05-04T17:30:00Z", False),
        ([hours("22:00", "24:00")], "2026-05-04T23:59:59Z", True),
        ([hours("22:00", "24:00")], "2026-05-05T00:00:00Z", False),
        ([hours("22:00", "24:00")], "2026-05-04T21:59:00Z", False),
        ([hours("00:00", "00:01")], "2026-05-04T00:00:59.999Z", True),
        ([hours("00:00", "00:01")], "2026-05-04T00:01:00Z", False),
        ([hours("00:00", "24:00")], "2026-05-04T00:00:00Z", True),
        ([hours("00:00", "24:00")], "2026-05-04T23:59:59Z", True),
        # a range across midnight is two ranges
        ([hours("22:00", "24:00"), hours("00:00", "06:00")], "2026-05-04T23:00Z", True),
        ([hours("22:00", "24:00"), hours("00:00", "06:00")], "2026-05-04T05:59Z", True),
        ([hours("22:00", "24:00"), hours("00:00", "06:00")], "2026-05-04T06:00Z", False),
        ([], "2026-05-04T12:00Z", False),
        # the instant's own offset is only a way of writing it
        ([hours("09:00", "17:30")], "2026-05-04T11:30:00+02:00", True),
        ([hours("09:00", "17:30")], "2026-05-04T09:30:00-08:00", False),
    ],
)
def test_times_include_their_start_and_exclude_their_end(
    times: list[dict[str, str]], instant: str, expected: bool
) -> None:
    assert spec(times=times).contains(at(instant)) is expected


@pytest.mark.parametrize(
    ("days_of_month", "month", "days"),
    [
        (["1"], "2026-01", [1]),
        (["1:5"], "2026-01", [1, 2, 3, 4, 5]),
        (["1", "15", "30"], "2026-04", [1, 15, 30]),
        (["-1"], "2026-01", [31]),
        (["-1"], "2026-04", [30]),
        (["-1"], "2026-02", [28]),
        (["-1"], "2028-02", [29]),
        (["-3:-1"], "2026-01", [29, 30, 31]),
        (["-3:-1"], "2026-02", [26, 27, 28]),
        (["-3:-1"], "2028-02", [27, 28, 29]),
        (["-3:-1"], "2100-02", [26, 27, 28]),  # a century year, not a leap year
        (["-3:-1"], "2000-02", [27, 28, 29]),  # but every 400th is
        (["-3"], "2026-02", [26]),
        (["25:-1"], "2026-02", [25, 26, 27, 28]),
        (["25:-3"], "2028-02", [25, 26, 27]),
        (["29:31"], "2026-02", []),
        (["29:31"], "2028-02", [29]),
        (["31"], "2026-04", []),
        (["30:-1"], "2026-02", []),
        (["1:31"], "2026-02", list(range(1, 29))),
        (["-31:-1"], "2026-02", list(range(1, 29))),
        (["-31"], "2026-02", []),
        (["-31"], "2026-01", [1]),
        (["-29:-28"], "2026-02", [1]),
        ([], "2026-01", []),
    ],
)
def test_days_of_month(days_of_month: list[str], month: str, days: list[int]) -> None:
    first = at(f"{month}-01T12:00Z")
    following = (first + timedelta(days=31)).replace(day=1)
    found = [
        day.day
        for day in (first + timedelta(days=i) for i in range((following - first).days))
        if spec(days_of_month=days_of_month).contains(day)
    ]
    assert found == days


@pytest.mark.parametrize(
    ("months", "expected"),
    [
        (["january"], [1]),
        (["January:march"], [1, 2, 3]),
        (["12"], [12]),
        (["may", "november:12"], [5, 11, 12]),
        (["1:december"], list(range(1, 13))),
        ([], []),
    ],
)
def test_months_by_name_and_number(months: list[str], expected: list[int]) -> None:
    found = [m for m in range(1, 13) if spec(months=months).contains(at(f"2026-{m:02d}-15T12:00Z"))]
    assert found == expected


@pytest.mark.parametrize(
    ("years", "expected"),
    [
        (["2026"], [2026]),
        (["2025:2027"], [2025, 2026, 2027]),
        (["2024", "2028:2030"], [2024, 2028]),
    ],
)
def test_years(years: list[str], expected: list[int]) -> None:
    found = [y for y in range(2024, 2029) if spec(years=years).contains(at(f"{y}-06-01T12:00Z"))]
    assert found == expected


@pytest.mark.parametrize(
    ("fields", "instant", "expected"),
    [
        # Monday 02:00 UTC is still Sunday evening in New York, already Monday in Berlin
        ({"weekdays": ["monday"]}, "2026-05-11T02:00Z", True),
        ({"weekdays": ["monday"], "location": "UTC"}, "2026-05-11T02:00Z", True),
        ({"weekdays": ["monday"], "location": "America/New_York"}, "2026-05-11T02:00Z", False),
        ({"weekdays": ["sunday"], "location": "America/New_York"}, "2026-05-11T02:00Z", True),
        ({"weekdays": ["sunday"], "location": "Europe/Berlin"}, "2026-05-10T22:30Z", False),
        # the last day of the month, and the new year, come sooner east of UTC
        ({"days_of_month": ["-1"], "location": "Asia/Tokyo"}, "2026-04-30T16:00Z", False),
        ({"days_of_month": ["1"], "location": "Asia/Tokyo"}, "2026-04-30T16:00Z", True),
        ({"months": ["may"], "location": "Asia/Tokyo"}, "2026-04-30T16:00Z", True),
        ({"years": ["2027"], "location": "Europe/Berlin"}, "2026-12-31T23:30Z", True),
        ({"years": ["2027"]}, "2026-12-31T23:30Z", False),
        (
            {"times": [hours("09:00", "17:00")], "location": "Asia/Kolkata"},
            "2026-05-04T03:30Z",
            True,
        ),
        (
            {"times": [hours("09:00", "17:00")], "location": "Asia/Kolkata"},
            "2026-05-04T03:29Z",
            False,
        ),
    ],
)
def test_fields_are_read_in_the_location(
    fields: dict[str, Any], instant: str, expected: bool
) -> None:
    assert spec(**fields).contains(at(instant)) is expected


OFFICE = {
    "weekdays": ["monday:friday"],
    "times": [hours("09:00", "17:30")],
    "location": "Europe/Berlin",
}


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-05-04T07:00Z", True),  # Monday 09:00 CEST
        ("2026-05-04T06:59Z", False),
        ("2026-05-08T15:29Z", True),  # Friday 17:29
        ("2026-05-08T15:30Z", False),
        ("2026-05-09T10:00Z", False),  # Saturday
        ("2026-01-05T08:00Z", True),  # Monday 09:00 CET: an hour later in UTC in winter
        ("2026-01-05T07:59Z", False),
    ],
)
def test_every_field_of_a_spec_must_hold(instant: str, expected: bool) -> None:
    assert spec(**OFFICE).contains(at(instant)) is expected


def test_any_spec_of_an_interval_may_hold() -> None:
    weekend = spec(weekdays=["saturday:sunday"])
    nights = spec(times=[hours("00:00", "06:00")])
    assert active([weekend, nights], at("2026-05-09T12:00Z"))
    assert active([weekend, nights], at("2026-05-05T05:00Z"))
    assert not active([weekend, nights], at("2026-05-05T12:00Z"))
    assert not active([], at("2026-05-05T12:00Z"))


def test_a_spec_without_fields_always_holds() -> None:
    assert spec().contains(at("2026-05-05T12:34Z"))
    assert spec().location == "UTC"


def test_a_naive_instant_is_refused() -> None:
    """A naive datetime names no instant: reading it as the machine's local time would make
    routing depend on where the worker runs."""
    with pytest.raises(ValueError, match=r"^the instant must be timezone-aware$"):
        spec().contains(datetime(2026, 5, 4, 12, 0))


def local_day(zone: str, day: str) -> tuple[datetime, datetime]:
    """The instants from local midnight of ``day`` to the next, in UTC."""
    start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone))
    end = (start + timedelta(days=1)).replace(tzinfo=ZoneInfo(zone))
    return start.astimezone(UTC), end.astimezone(UTC)


def minutes_in(interval: TimeIntervalSpec, start: datetime, end: datetime) -> list[datetime]:
    count = int((end - start).total_seconds()) // 60
    instants = (start + timedelta(minutes=i) for i in range(count))
    return [t for t in instants if interval.contains(t)]


class TestDaylightSavingTime:
    """Intervals are wall-clock times in their location, as Alertmanager evaluates them: on the
    day clocks spring forward the skipped hour never happens, so a range over it is shorter or
    empty; on the day they fall back the repeated hour happens twice, and both count."""

    @pytest.mark.parametrize(
        ("zone", "day", "times", "expected"),
        [
            # Berlin springs forward at 01:00 UTC on 29 March 2026: 02:00 CET becomes 03:00 CEST
            (
                "Europe/Berlin",
                "2026-03-29",
                ("01:00", "03:00"),
                (60, "2026-03-29T00:00Z", "2026-03-29T00:59Z"),
            ),
            ("Europe/Berlin", "2026-03-29", ("02:00", "03:00"), (0, None, None)),
            # and falls back at 01:00 UTC on 25 October: 03:00 CEST becomes 02:00 CET
            (
                "Europe/Berlin",
                "2026-10-25",
                ("01:00", "03:00"),
                (180, "2026-10-24T23:00Z", "2026-10-25T01:59Z"),
            ),
            (
                "Europe/Berlin",
                "2026-10-25",
                ("02:00", "03:00"),
                (120, "2026-10-25T00:00Z", "2026-10-25T01:59Z"),
            ),
            # New York springs forward at 07:00 UTC on 8 March: 02:00 EST becomes 03:00 EDT
            (
                "America/New_York",
                "2026-03-08",
                ("01:00", "03:00"),
                (60, "2026-03-08T06:00Z", "2026-03-08T06:59Z"),
            ),
            ("America/New_York", "2026-03-08", ("02:00", "03:00"), (0, None, None)),
            # and falls back at 06:00 UTC on 1 November: 02:00 EDT becomes 01:00 EST
            (
                "America/New_York",
                "2026-11-01",
                ("01:00", "03:00"),
                (180, "2026-11-01T05:00Z", "2026-11-01T07:59Z"),
            ),
            (
                "America/New_York",
                "2026-11-01",
                ("02:00", "03:00"),
                (60, "2026-11-01T07:00Z", "2026-11-01T07:59Z"),
            ),
        ],
    )
    def test_a_range_over_the_change(
        self,
        zone: str,
        day: str,
        times: tuple[str, str],
        expected: tuple[int, str | None, str | None],
    ) -> None:
        """``expected``: how many minutes of the local day the range holds, and the first and
        last of them."""
        interval = spec(times=[hours(*times)], location=zone)
        found = minutes_in(interval, *local_day(zone, day))
        minutes, first, last = expected
        assert len(found) == minutes
        assert (found[0] if found else None) == (at(first) if first else None)
        assert (found[-1] if found else None) == (at(last) if last else None)

    @pytest.mark.parametrize(
        ("zone", "instant", "expected"),
        [
            ("Europe/Berlin", "2026-03-29T00:59Z", True),  # 01:59 CET
            ("Europe/Berlin", "2026-03-29T01:00Z", False),  # 03:00 CEST: 02:xx never happened
            ("Europe/Berlin", "2026-10-25T00:30Z", True),  # 02:30 CEST
            ("Europe/Berlin", "2026-10-25T01:30Z", True),  # 02:30 CET, the second time
            ("Europe/Berlin", "2026-10-25T02:00Z", False),  # 03:00 CET
            ("America/New_York", "2026-03-08T06:59Z", True),  # 01:59 EST
            ("America/New_York", "2026-03-08T07:00Z", False),  # 03:00 EDT
            ("America/New_York", "2026-11-01T05:30Z", True),  # 01:30 EDT
            ("America/New_York", "2026-11-01T06:30Z", True),  # 01:30 EST, the second time
            ("America/New_York", "2026-11-01T08:00Z", False),  # 03:00 EST
        ],
    )
    def test_instants_around_the_change(self, zone: str, instant: str, expected: bool) -> None:
        interval = spec(times=[hours("01:00", "03:00")], location=zone)
        assert interval.contains(at(instant)) is expected

    def test_the_weekday_changes_with_the_local_date(self) -> None:
        sunday = spec(weekdays=["sunday"], location="Europe/Berlin")
        assert not sunday.contains(at("2026-10-24T21:59Z"))  # Saturday 23:59 CEST
        assert sunday.contains(at("2026-10-24T22:00Z"))  # Sunday 00:00 CEST
        assert sunday.contains(at("2026-10-25T22:59Z"))  # Sunday 23:59 CET
        assert not sunday.contains(at("2026-10-25T23:00Z"))  # Monday 00:00 CET


HEAD = "sources: {etl: {allow_unsigned: true}}\ntime_intervals:\n  office:\n"


def errors(spec_yaml: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config(HEAD + f"    - {spec_yaml}\n")
    return caught.value.errors


def one_error(spec_yaml: str) -> str:
    [found] = errors(spec_yaml)
    prefix = "test.yaml:4: time_intervals.office[0]."
    assert found.startswith(prefix), found
    return found.removeprefix(prefix)


WEEKDAY = "is not a weekday (monday to sunday)"
DAY = "is not a day of the month (1 to 31, or -31 to -1 from the end)"
MONTH = "is not a month (january to december, or 1 to 12)"
YEAR = "is not a year (1 to 9999)"
CLOCK = "is not a time of day HH:MM (00:00 to 24:00)"
ORDER = "start_time must be before end_time (split a range across midnight in two)"


@pytest.mark.parametrize(
    ("spec_yaml", "message"),
    [
        ("weekdays: [funday]", f"weekdays[0]: 'funday' {WEEKDAY}"),
        ("weekdays: [monday, mon]", f"weekdays[1]: 'mon' {WEEKDAY}"),
        ('weekdays: ["0"]', f"weekdays[0]: '0' {WEEKDAY}"),
        ("weekdays: [1]", f"weekdays[0]: '1' {WEEKDAY}"),
        ('weekdays: ["monday:funday"]', f"weekdays[0]: 'funday' {WEEKDAY}"),
        ('weekdays: ["friday:monday"]', "weekdays[0]: 'friday:monday' ends before it starts"),
        (
            'weekdays: ["monday:tuesday:friday"]',
            "weekdays[0]: 'monday:tuesday:friday' is not a value or a range a:b",
        ),
        ('weekdays: ["monday:"]', "weekdays[0]: 'monday:' is not a value or a range a:b"),
        ('weekdays: [""]', "weekdays[0]: '' is not a value or a range a:b"),
        ("weekdays: monday", "weekdays: must be a list"),
        ('days_of_month: ["0"]', f"days_of_month[0]: '0' {DAY}"),
        ('days_of_month: ["32"]', f"days_of_month[0]: '32' {DAY}"),
        ('days_of_month: ["-32"]', f"days_of_month[0]: '-32' {DAY}"),
        ('days_of_month: ["1:32"]', f"days_of_month[0]: '32' {DAY}"),
        ("days_of_month: [first]", f"days_of_month[0]: 'first' {DAY}"),
        ('days_of_month: ["5:1"]', "days_of_month[0]: '5:1' ends before it starts"),
        ('days_of_month: ["-1:-3"]', "days_of_month[0]: '-1:-3' ends before it starts"),
        # 28 to the 28th-last day is empty even in a month of 31 days
        ('days_of_month: ["28:-28"]', "days_of_month[0]: '28:-28' ends before it starts"),
        (
            'days_of_month: ["1", "-3:5"]',
            "days_of_month[1]: '-3:5' starts counting from the end of the month"
            " but ends from its start",
        ),
        (
            "days_of_month: [1:5]",
            'days_of_month[0]: must be quoted, as "1:5":'
            " YAML reads an unquoted 1:5 as the number 65",
        ),
        ("months: [jan]", f"months[0]: 'jan' {MONTH}"),
        ('months: ["13"]', f"months[0]: '13' {MONTH}"),
        ('months: ["0"]', f"months[0]: '0' {MONTH}"),
        ('months: ["-1"]', f"months[0]: '-1' {MONTH}"),
        ('months: ["december:january"]', "months[0]: 'december:january' ends before it starts"),
        ('months: ["10:3"]', "months[0]: '10:3' ends before it starts"),
        (
            "months: [1:3]",
            'months[0]: must be quoted, as "1:3": YAML reads an unquoted 1:3 as the number 63',
        ),
        ('years: ["-2026"]', f"years[0]: '-2026' {YEAR}"),
        ('years: ["0"]', f"years[0]: '0' {YEAR}"),
        ('years: ["10000"]', f"years[0]: '10000' {YEAR}"),
        ("years: [twenty]", f"years[0]: 'twenty' {YEAR}"),
        ('years: ["2027:2025"]', "years[0]: '2027:2025' ends before it starts"),
        (
            'times: [{start_time: "9:00", end_time: "10:00"}]',
            f"times[0].start_time: '9:00' {CLOCK}",
        ),
        (
            'times: [{start_time: "09:00:00", end_time: "10:00"}]',
            f"times[0].start_time: '09:00:00' {CLOCK}",
        ),
        (
            'times: [{start_time: "00:60", end_time: "01:00"}]',
            f"times[0].start_time: '00:60' {CLOCK}",
        ),
        (
            'times: [{start_time: "00:00", end_time: "24:01"}]',
            f"times[0].end_time: '24:01' {CLOCK}",
        ),
        (
            'times: [{start_time: "00:00", end_time: "25:00"}]',
            f"times[0].end_time: '25:00' {CLOCK}",
        ),
        (
            'times: [{start_time: "noon", end_time: "13:00"}]',
            f"times[0].start_time: 'noon' {CLOCK}",
        ),
        (
            'times: [{start_time: "09:00", end_time: 17:30}]',
            'times[0].end_time: must be quoted, as "17:30":'
            " YAML reads an unquoted 17:30 as the number 1050",
        ),
        (
            'times: [{start_time: 9:30, end_time: "17:00"}]',
            'times[0].start_time: must be quoted, as "09:30":'
            " YAML reads an unquoted 9:30 as the number 570",
        ),
        (
            'times: [{start_time: 9, end_time: "17:00"}]',
            'times[0].start_time: must be a time of day in quotes, such as "09:00"',
        ),
        ('times: [{start_time: "10:00", end_time: "10:00"}]', f"times[0]: {ORDER}"),
        ('times: [{start_time: "22:00", end_time: "02:00"}]', f"times[0]: {ORDER}"),
        ('times: [{start_time: "24:00", end_time: "24:00"}]', f"times[0]: {ORDER}"),
        ('times: [{start_time: "00:00"}]', "times[0].end_time: required"),
        (
            'times: [{start_time: "00:00", end_time: "01:00", tz: UTC}]',
            "times[0].tz: unknown key (known: end_time, start_time)",
        ),
        (
            "location: Mars/Olympus",
            "location: unknown time zone 'Mars/Olympus' (an IANA name such as Europe/Berlin)",
        ),
        (
            "location: europe/berlin",
            "location: unknown time zone 'europe/berlin' (an IANA name such as Europe/Berlin)",
        ),
        (
            "location: Local",
            "location: unknown time zone 'Local' (an IANA name such as Europe/Berlin)",
        ),
        ('location: ""', "location: unknown time zone '' (an IANA name such as Europe/Berlin)"),
        (
            'location: "../../etc/passwd"',
            "location: unknown time zone '../../etc/passwd' (an IANA name such as Europe/Berlin)",
        ),
        ("location: 5", "location: must be a string"),
        (
            "weekday: [monday]",
            "weekday: unknown key (known: days_of_month, location, months, times, weekdays, years)",
        ),
    ],
)
def test_errors(spec_yaml: str, message: str) -> None:
    assert one_error(spec_yaml) == message


def test_numbers_written_bare_are_the_text_written() -> None:
    loaded = make_config(
        HEAD + "    - {years: [2026], days_of_month: [1, -1], months: [1, 12, may]}\n"
    )
    [office] = loaded.time_intervals["office"]
    assert (office.years, office.days_of_month, office.months) == (
        ["2026"],
        ["1", "-1"],
        ["1", "12", "may"],
    )


def test_several_errors_name_their_lines() -> None:
    text = """\
sources: {etl: {allow_unsigned: true}}
time_intervals:
  office:
    - weekdays: ["monday:friday"]
      times:
        - start_time: "09:00"
          end_time: "08:00"
    - weekdays:
        - saturday
        - sundae
      location: Europe/Berlin
  "bad name": []
  later:
    - months: ["march"]
      location: Europe/Berlyn
"""
    with pytest.raises(ConfigError) as caught:
        make_config(text)
    assert caught.value.errors == [
        f"test.yaml:6: time_intervals.office[0].times[0]: {ORDER}",
        f"test.yaml:10: time_intervals.office[1].weekdays[1]: 'sundae' {WEEKDAY}",
        "test.yaml:12: time_intervals.bad name: invalid name (letters, digits, _ . - only)",
        "test.yaml:15: time_intervals.later[0].location:"
        " unknown time zone 'Europe/Berlyn' (an IANA name such as Europe/Berlin)",
    ]


def test_an_interval_is_a_list_of_specs() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(HEAD.replace("  office:\n", "  office: {weekdays: [monday]}\n"))
    assert caught.value.errors == ["test.yaml:3: time_intervals.office: must be a list"]


def test_the_docstring_example_loads() -> None:
    loaded = make_config(
        HEAD
        + """\
    - weekdays: ["monday:friday"]
      times: [{start_time: "09:00", end_time: "17:30"}]
      location: Europe/Berlin
  month-end:
    - days_of_month: ["-3:-1"]
"""
    )
    assert active(loaded.time_intervals["office"], at("2026-05-04T07:00Z"))
    assert active(loaded.time_intervals["month-end"], at("2026-02-26T00:00Z"))
    assert not active(loaded.time_intervals["month-end"], at("2026-02-25T23:59Z"))
