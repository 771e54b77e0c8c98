"""workers.joins against a real Redis: a join fires once per window when all its members
succeeded, whatever the repeats, races and late webhooks, and a window that closed incomplete
is reported once. The clock is a parameter: no test waits."""

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from redis import Redis

from config.events import Event, Kind
from config.joins import Join
from workers.joins import (
    OPEN_KEY,
    Completion,
    Expiry,
    due_expiries,
    event_time,
    expire_key,
    hits_key,
    observe,
    pending_key,
    run_key,
    used_key,
)

T = TypeVar("T")
A = 'flow_id="101"'
B = '{flow_id="102", source="prod"}'
DAILY = Join.model_validate(
    {
        "all": ['flow_id="101"', ['flow_id="102"', 'source="prod"']],
        "window": {"cron": "0 0 * * *", "timezone": "Europe/Berlin"},
        "then": ["load-marts"],
        "on_expire": ["ops-slack"],
    }
)
ROLLING = Join.model_validate(
    {
        "all": ['flow_id="101"', ['flow_id="102"', 'source="prod"']],
        "window": {"rolling": "6h"},
        "then": ["load-marts"],
        "on_expire": ["ops-slack"],
        "grace": "5m",
    }
)
FLOWS = {"A": "101", "B": "102"}


def at(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None
    return instant


def event(
    member: str,
    event_id: str,
    finished: str | None,
    received: str | None = None,
    kind: Kind = "flow.succeeded",
) -> dict[str, Any]:
    """A success of member ``A`` or ``B`` as the receiver stores it (``model_dump_json``)."""
    finished_at = at(finished) if finished else None
    received_at = at(received) if received else (finished_at or datetime.now(UTC))
    stored = Event(
        id=event_id,
        source="prod",
        event="Flow.Executed",
        kind=kind,
        flow_id=FLOWS[member],
        finished_at=finished_at,
        received_at=received_at,
    )
    parsed: dict[str, Any] = json.loads(stored.model_dump_json())
    return parsed


# 2026-05-04 in Berlin is 2026-05-03T22:00Z to 2026-05-04T22:00Z; it closes 5 minutes later
MAY_4 = "20260503T220000Z"
MAY_4_START, MAY_4_END = at("2026-05-03T22:00:00Z"), at("2026-05-04T22:00:00Z")
NOON = at("2026-05-04T12:00:00+02:00")


def test_two_members_in_a_window_complete_it_once(redis: Redis) -> None:
    assert observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    done = observe(redis, "marts", DAILY, event("B", "b1", "2026-05-04T09:00+02:00"), NOON)
    assert done == Completion("marts", MAY_4, MAY_4_START, MAY_4_END, {A: "prod:a1", B: "prod:b1"})
    assert observe(redis, "marts", DAILY, event("A", "a2", "2026-05-04T10:00Z"), NOON) is None
    # the completing event observed again (its job died before the join acted): the same
    # completion, whose actions' delivery ids keep them to once
    again = observe(redis, "marts", DAILY, event("B", "b1", "2026-05-04T09:00+02:00"), NOON)
    assert again == done
    assert redis.exists(run_key("marts", MAY_4))
    assert redis.zcard(OPEN_KEY) == 0
    assert due_expiries(redis, {"marts": DAILY}, MAY_4_END + timedelta(days=1)) == []


def test_a_members_repeated_successes_count_once(redis: Redis) -> None:
    for i in range(3):
        success = event("A", f"a{i}", f"2026-05-04T0{i + 1}:00+02:00")
        assert observe(redis, "marts", DAILY, success, NOON) is None
    assert observe(redis, "marts", DAILY, event("A", "a0", "2026-05-04T01:00+02:00"), NOON) is None
    assert redis.hgetall(hits_key("marts", MAY_4)) == {A.encode(): b"prod:a0"}
    done = observe(redis, "marts", DAILY, event("B", "b1", "2026-05-04T11:00+02:00"), NOON)
    assert done is not None
    assert done.members == {A: "prod:a0", B: "prod:b1"}


def observing(
    join: Join, success: dict[str, Any], now: datetime
) -> Callable[[Redis], Completion | None]:
    return lambda conn: observe(conn, "marts", join, success, now)


def race(calls: Sequence[Callable[[Redis], T]], redis_url: str) -> list[T]:
    """Run every call at once, each on a connection of its own."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[Redis], T]) -> T:
        conn = Redis.from_url(redis_url)
        try:
            start.wait()
            return call(conn)
        finally:
            conn.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.parametrize("join", [DAILY, ROLLING], ids=["cron", "rolling"])
def test_racing_workers_complete_a_window_exactly_once(
    redis: Redis, redis_url: str, join: Join
) -> None:
    for day in range(1, 6):  # a few windows, for a few chances to interleave
        first = event("A", f"a-{day}", f"2026-05-0{day}T08:00+02:00")
        now = at(f"2026-05-0{day}T12:00+02:00")
        assert observe(redis, "marts", join, first, now) is None
        lasts = [event("B", f"b-{day}-{i}", f"2026-05-0{day}T09:00+02:00") for i in range(8)]
        calls = [observing(join, last, now) for last in lasts]
        completions = [c for c in race(calls, redis_url) if c is not None]
        assert len(completions) == 1, day
        assert completions[0].members[A] == f"prod:a-{day}"


def test_yesterdays_success_does_not_complete_today(redis: Redis) -> None:
    """A's webhook from late yesterday arrives after midnight, within the grace: it counts for
    yesterday, and B's success of today completes nothing."""
    yesterday = event("A", "a1", "2026-05-03T23:59+02:00", received="2026-05-04T00:02+02:00")
    today = event("B", "b1", "2026-05-04T00:01+02:00")
    assert observe(redis, "marts", DAILY, yesterday, at("2026-05-04T00:03+02:00")) is None
    assert observe(redis, "marts", DAILY, today, at("2026-05-04T00:04+02:00")) is None
    assert redis.hkeys(hits_key("marts", "20260502T220000Z")) == [A.encode()]
    expiries = due_expiries(redis, {"marts": DAILY}, at("2026-05-05T00:05+02:00"))
    assert [(e.window_key, e.missing) for e in expiries] == [
        ("20260502T220000Z", (B,)),
        (MAY_4, (A,)),
    ]


def test_an_event_belongs_to_the_window_of_its_finish_not_of_its_processing(redis: Redis) -> None:
    """B finished just before midnight, its webhook came just after: within the grace, it
    completes the day it ran in."""
    assert observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    b = event("B", "b1", "2026-05-04T23:59:30+02:00", received="2026-05-05T00:02+02:00")
    done = observe(redis, "marts", DAILY, b, at("2026-05-05T00:03+02:00"))
    assert done is not None and done.window_key == MAY_4


def test_an_event_after_its_window_closed_is_ignored(redis: Redis) -> None:
    assert observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    late = event("B", "b1", "2026-05-04T23:00+02:00", received="2026-05-05T00:06+02:00")
    assert observe(redis, "marts", DAILY, late, at("2026-05-05T00:06+02:00")) is None
    assert redis.hkeys(hits_key("marts", MAY_4)) == [A.encode()]


def test_a_window_reported_expired_is_never_completed(redis: Redis) -> None:
    """A worker whose clock runs late still finds the window closed by the expiry."""
    assert observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    assert len(due_expiries(redis, {"marts": DAILY}, MAY_4_END + timedelta(minutes=5))) == 1
    b = event("B", "b1", "2026-05-04T23:00+02:00")
    assert observe(redis, "marts", DAILY, b, at("2026-05-04T23:30+02:00")) is None
    assert not redis.exists(run_key("marts", MAY_4))


def test_a_window_with_one_member_seen_expires_once_naming_the_other(redis: Redis) -> None:
    assert observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    closes = MAY_4_END + timedelta(minutes=5)
    assert due_expiries(redis, {"marts": DAILY}, closes - timedelta(seconds=1)) == []
    expiries = due_expiries(redis, {"marts": DAILY}, closes)
    assert expiries == [Expiry("marts", MAY_4, MAY_4_START, MAY_4_END, {A: "prod:a1"}, (B,))]
    assert B in expiries[0].summary
    assert due_expiries(redis, {"marts": DAILY}, closes) == []
    assert due_expiries(redis, {"marts": DAILY}, closes + timedelta(days=2)) == []
    assert redis.exists(expire_key("marts", MAY_4))


def test_racing_expiries_report_a_window_once(redis: Redis, redis_url: str) -> None:
    for day in range(1, 6):
        first = event("A", f"a-{day}", f"2026-05-0{day}T08:00+02:00")
        assert observe(redis, "marts", DAILY, first, at(f"2026-05-0{day}T12:00+02:00")) is None
    later = at("2026-05-07T00:00Z")
    calls = [lambda conn: due_expiries(conn, {"marts": DAILY}, later) for _ in range(8)]
    reported = [e.window_key for found in race(calls, redis_url) for e in found]
    assert sorted(reported) == [
        "20260430T220000Z",
        "20260501T220000Z",
        "20260502T220000Z",
        "20260503T220000Z",
        "20260504T220000Z",
    ]


def test_a_window_in_which_nothing_ran_is_not_reported(redis: Redis) -> None:
    assert due_expiries(redis, {"marts": DAILY}, at("2026-05-10T00:00Z")) == []
    assert redis.keys("*") == []


def test_failures_do_not_count(redis: Redis) -> None:
    failed = event("A", "a1", "2026-05-04T08:00+02:00", kind="flow.failed")
    assert observe(redis, "marts", DAILY, failed, NOON) is None
    assert redis.keys("*") == []
    assert observe(redis, "marts", DAILY, event("B", "b1", "2026-05-04T09:00+02:00"), NOON) is None


def test_state_is_in_redis_only(redis: Redis, redis_url: str) -> None:
    first = Redis.from_url(redis_url)
    assert observe(first, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    first.close()
    second = Redis.from_url(redis_url)
    try:
        done = observe(second, "marts", DAILY, event("B", "b1", "2026-05-04T09:00+02:00"), NOON)
    finally:
        second.close()
    assert done is not None


def test_the_day_clocks_spring_forward(redis: Redis) -> None:
    """2026-03-29 in Berlin runs from 23:00Z to 22:00Z, 23 hours."""
    now = at("2026-03-30T00:04+02:00")
    early = event("A", "a1", "2026-03-29T00:30+01:00")
    late = event("B", "b1", "2026-03-29T23:30+02:00")
    next_day = event("A", "a2", "2026-03-30T00:01+02:00")
    assert observe(redis, "marts", DAILY, early, now) is None
    assert observe(redis, "marts", DAILY, next_day, now) is None
    done = observe(redis, "marts", DAILY, late, now)
    assert done is not None
    assert (done.window_key, done.start, done.end) == (
        "20260328T230000Z",
        at("2026-03-28T23:00Z"),
        at("2026-03-29T22:00Z"),
    )
    assert done.members == {A: "prod:a1", B: "prod:b1"}


def test_a_join_dropped_from_the_config_reports_nothing(redis: Redis) -> None:
    assert observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00+02:00"), NOON) is None
    assert due_expiries(redis, {}, at("2026-05-06T00:00Z")) == []
    assert redis.zcard(OPEN_KEY) == 0


def test_completions_and_expiries_as_json() -> None:
    done = Completion("marts", MAY_4, MAY_4_START, MAY_4_END, {A: "prod:a1", B: "prod:b1"})
    expired = Expiry("marts", MAY_4, MAY_4_START, MAY_4_END, {A: "prod:a1"}, (B,))
    assert Completion.from_json(json.loads(json.dumps(done.to_json()))) == done
    assert Expiry.from_json(json.loads(json.dumps(expired.to_json()))) == expired


def test_now_must_be_aware(redis: Redis) -> None:
    naive = datetime(2026, 5, 4, 12)
    with pytest.raises(ValueError, match="timezone-aware"):
        observe(redis, "marts", DAILY, event("A", "a1", "2026-05-04T08:00Z"), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_expiries(redis, {"marts": DAILY}, naive)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"finished_at": "2026-05-04T08:00:00Z", "received_at": "2026-05-04T09:00:00Z"}, "08:00"),
        ({"finished_at": None, "received_at": "2026-05-04T09:00:00Z"}, "09:00"),
        ({"received_at": "2026-05-04T11:00:00+02:00"}, "09:00"),
        ({"received_at": "2026-05-04T09:00:00"}, "09:00"),
        ({"finished_at": 1777885200, "received_at": "2026-05-04T10:00:00Z"}, "09:00"),
        ({"finished_at": 1777885200000, "received_at": "2026-05-04T10:00:00Z"}, "09:00"),
        ({"finished_at": "1777885200000", "received_at": "2026-05-04T10:00:00Z"}, "09:00"),
        ({"finished_at": "yesterday", "received_at": "2026-05-04T10:00:00Z"}, "10:00"),
        ({"finished_at": True, "received_at": "2026-05-04T10:00:00Z"}, "10:00"),
        ({"finished_at": datetime(2026, 5, 4, 9, tzinfo=UTC)}, "09:00"),
    ],
)
def test_event_time(fields: dict[str, Any], expected: str) -> None:
    assert event_time(fields) == at(f"2026-05-04T{expected}:00Z")


def test_an_event_without_a_time_has_none() -> None:
    assert event_time({"finished_at": "soon", "received_at": None}) is None


# Rolling windows ----------------------------------------------------------------------------

T0 = at("2026-05-04T00:00Z")


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def success(member: str, event_id: str, when: float) -> dict[str, Any]:
    return event(member, event_id, hours(when).isoformat())


def roll(redis: Redis, member: str, event_id: str, when: float, now: float) -> Completion | None:
    return observe(redis, "marts", ROLLING, success(member, event_id, when), hours(now))


def test_rolling_completes_when_every_member_succeeded_within_the_duration(redis: Redis) -> None:
    assert roll(redis, "A", "a1", 0, now=0) is None
    done = roll(redis, "B", "b1", 5.5, now=5.5)
    assert done == Completion(
        "marts", "20260504T000000Z", hours(0), hours(6), {A: "prod:a1", B: "prod:b1"}
    )
    assert roll(redis, "B", "b1", 5.5, now=5.6) is None
    assert redis.zcard(OPEN_KEY) == 0
    assert due_expiries(redis, {"marts": ROLLING}, hours(48)) == []


def test_rolling_pairs_each_member_s_latest_success(redis: Redis) -> None:
    assert roll(redis, "A", "a1", 0, now=0) is None
    assert roll(redis, "B", "b1", 7, now=7) is None  # 7h after A: too far apart
    done = roll(redis, "A", "a2", 8, now=8)
    assert done is not None
    assert (done.window_key, done.members) == ("20260504T070000Z", {A: "prod:a2", B: "prod:b1"})


def test_rolling_uses_each_success_once(redis: Redis) -> None:
    assert roll(redis, "A", "a1", 0, now=0) is None
    assert roll(redis, "B", "b1", 1, now=1) is not None
    assert roll(redis, "B", "b2", 2, now=2) is None  # A's success is spent
    assert roll(redis, "A", "a1", 0, now=2.5) is None  # replayed: spent as well
    done = roll(redis, "A", "a3", 3, now=3)
    assert done is not None and done.members == {A: "prod:a3", B: "prod:b2"}


def test_rolling_ignores_a_success_too_old_to_pair(redis: Redis) -> None:
    assert roll(redis, "A", "a1", 0, now=6 + 5 / 60) is None
    assert redis.keys("*") == []


def test_rolling_expires_a_member_left_alone(redis: Redis) -> None:
    assert roll(redis, "A", "a1", 0, now=0) is None
    closes = hours(6 + 5 / 60)
    assert due_expiries(redis, {"marts": ROLLING}, closes - timedelta(seconds=1)) == []
    expiries = due_expiries(redis, {"marts": ROLLING}, closes)
    assert expiries == [
        Expiry("marts", "20260504T000000Z", hours(0), hours(6), {A: "prod:a1"}, (B,))
    ]
    assert due_expiries(redis, {"marts": ROLLING}, hours(48)) == []
    assert redis.exists(expire_key("marts", "20260504T000000Z"))
    assert not redis.exists(pending_key("marts"))
    assert roll(redis, "B", "b1", 5, now=6.5) is None  # within the grace of A, after the report


def test_rolling_reports_a_member_that_keeps_succeeding_alone(redis: Redis) -> None:
    """A runs every 5 hours, B never: A's new successes do not postpone the report forever.
    The scheduler looks every quarter of an hour."""
    runs = {0: "a0", 5: "a1", 10: "a2", 15: "a3", 20: "a4"}
    found = []
    for quarter in range(30 * 4):
        now = quarter / 4
        if now in runs:
            assert roll(redis, "A", runs[int(now)], now, now=now) is None
        for e in due_expiries(redis, {"marts": ROLLING}, hours(now)):
            found.append((now, e.window_key, dict(e.seen), e.missing))
    assert found == [
        (6.25, "20260504T000000Z", {A: "prod:a1"}, (B,)),
        (16.25, "20260504T100000Z", {A: "prod:a3"}, (B,)),
        (26.25, "20260504T200000Z", {A: "prod:a4"}, (B,)),
    ]
    assert redis.hkeys(used_key("marts")) == [A.encode()]


def test_rolling_state_is_in_redis_only(redis: Redis, redis_url: str) -> None:
    first = Redis.from_url(redis_url)
    assert roll(first, "A", "a1", 0, now=0) is None
    first.close()
    second = Redis.from_url(redis_url)
    try:
        assert roll(second, "B", "b1", 1, now=1) is not None
    finally:
        second.close()


def test_rolling_failures_do_not_count(redis: Redis) -> None:
    failed = event("A", "a1", hours(0).isoformat(), kind="flow.failed")
    assert observe(redis, "marts", ROLLING, failed, hours(0)) is None
    assert roll(redis, "B", "b1", 1, now=1) is None
