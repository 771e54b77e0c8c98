"""Silences kept in a real Redis, and which of them silence an event (``matching``, pure)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from redis import Redis

from config import keys, silences
from config.base import MATCHABLE
from config.silences import KEEP_EXPIRED, Silence, matching

NOW = datetime(2026, 5, 9, 3, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def make(conn: Redis, *matchers: str, hours: float = 2, now: datetime = NOW) -> Silence:
    return silences.create(
        conn, list(matchers), duration=hours * 3600, author="ana", comment="deploy", now=now
    )


def test_a_silence_is_stored_listed_and_expired(redis: Redis) -> None:
    made = make(redis, 'flow_name=~"staging-.*"', 'kind="flow.failed"')
    assert (made.starts_at, made.ends_at) == (NOW, NOW + 2 * HOUR)
    assert (made.author, made.comment) == ("ana", "deploy")
    assert made.matchers == ('flow_name=~"staging-.*"', 'kind="flow.failed"')
    assert silences.every(redis) == [made]
    assert made.active(NOW)

    ended = silences.expire(redis, made.id, NOW + HOUR)
    assert ended is not None
    assert ended == Silence(made.id, made.matchers, NOW, NOW + HOUR, "ana", "deploy")
    assert silences.every(redis) == [ended]
    assert not ended.active(NOW + HOUR)


def test_expiring_an_expired_silence_keeps_its_end(redis: Redis) -> None:
    made = make(redis, 'flow_id="7"')
    assert silences.expire(redis, made.id, NOW + 5 * HOUR) == made


def test_expiring_a_pending_silence_ends_it_before_it_ever_starts(redis: Redis) -> None:
    made = make(redis, 'flow_id="7"', now=NOW + HOUR)
    ended = silences.expire(redis, made.id, NOW)
    assert ended is not None
    assert ended.starts_at == ended.ends_at == NOW
    assert not any(ended.active(NOW + k * HOUR / 2) for k in range(8))


def test_expiring_an_unknown_silence_says_so(redis: Redis) -> None:
    assert silences.expire(redis, "nosuchsilence", NOW) is None
    assert not redis.exists(keys.SILENCES)


def test_silences_are_listed_by_start(redis: Redis) -> None:
    late = make(redis, 'flow_id="1"', now=NOW + HOUR)
    early = make(redis, 'flow_id="2"', now=NOW - HOUR)
    middle = make(redis, 'flow_id="3"')
    assert silences.every(redis) == [early, middle, late]
    assert len({late.id, early.id, middle.id}) == 3


def test_each_silence_survives_the_round_trip_through_json() -> None:
    made = Silence("abc", ('tags="a\\"b"',), NOW, NOW + HOUR, "ana", 'quote " and ü')
    assert Silence.from_json(made.to_json()) == made
    assert Silence.from_json(made.to_json().encode()) == made


KNOWN = ", ".join(sorted(MATCHABLE))


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        ('flow_nme="x"', f"unknown label 'flow_nme' (known: {KNOWN})"),
        ("flow_name", "'flow_name' is not a matcher: write label=\"value\", !=, =~ or !~"),
        ("flow_name=", "'flow_name=' has no value: write flow_name=\"\" for the empty string"),
        ('flow_name=~"("', "bad regex '(': missing ), unterminated subpattern at position 0"),
        ('flow_name="a', "bad quoting in '\"a': the closing \" is missing"),
        (
            'status="failed"',
            "unknown status 'failed' (known: canceled, error, queued, running, success, warning)",
        ),
        ('flow_id=="7"', "unknown operator '=='; use =, !=, =~ or !~"),
    ],
)
def test_a_bad_matcher_is_refused_and_nothing_stored(
    redis: Redis, matcher: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        make(redis, 'kind="flow.failed"', matcher)
    assert str(caught.value) == message
    assert silences.every(redis) == []


@pytest.mark.parametrize(
    ("matchers", "hours", "message"),
    [
        ((), 2, "a silence needs at least one matcher"),
        (('flow_id="7"',), 0, "a silence must last longer than zero"),
        (('flow_id="7"',), 1e12, "a silence cannot last that long"),
    ],
)
def test_a_silence_without_matchers_or_time_is_refused(
    redis: Redis, matchers: tuple[str, ...], hours: float, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        make(redis, *matchers, hours=hours)
    assert silences.every(redis) == []


def test_a_silence_may_be_given_its_end_instead_of_a_duration(redis: Redis) -> None:
    made = silences.create(
        redis, ['flow_id="7"'], ends_at=NOW + 3 * HOUR, author="ana", comment="c", now=NOW
    )
    assert (made.starts_at, made.ends_at) == (NOW, NOW + 3 * HOUR)
    assert silences.get(redis, made.id) == made
    assert silences.get(redis, "nosuchsilence") is None


@pytest.mark.parametrize(
    ("duration", "ends_at", "message"),
    [
        (None, None, "give a silence either a duration or an end"),
        (3600.0, NOW + HOUR, "give a silence either a duration or an end"),
        (None, NOW, "a silence must end in the future"),
        (None, NOW.replace(tzinfo=None) + HOUR, "a silence's end needs a time zone"),
    ],
)
def test_a_silence_needs_one_end_in_the_future(
    redis: Redis, duration: float | None, ends_at: datetime | None, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        silences.create(
            redis, ['flow_id="7"'], duration=duration, ends_at=ends_at, author="a", comment="",
            now=NOW,
        )  # fmt: skip
    assert silences.every(redis) == []


def test_a_silence_may_start_later(redis: Redis) -> None:
    later = silences.create(
        redis, ['flow_id="7"'], duration=3600.0, author="a", comment="", now=NOW,
        starts_at=NOW + 2 * HOUR,
    )  # fmt: skip
    assert (later.starts_at, later.ends_at) == (NOW + 2 * HOUR, NOW + 3 * HOUR)
    assert later.state(NOW) == "pending"
    # a start in the past is now, as in Alertmanager: a silence cannot hold back what was sent
    past = silences.create(
        redis, ['flow_id="7"'], ends_at=NOW + HOUR, author="a", comment="", now=NOW,
        starts_at=NOW - HOUR,
    )  # fmt: skip
    assert (past.starts_at, past.ends_at) == (NOW, NOW + HOUR)


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "message"),
    [
        (NOW + 2 * HOUR, NOW + HOUR, "a silence must end after it starts"),
        (NOW.replace(tzinfo=None) + HOUR, NOW + 2 * HOUR, "a silence's start needs a time zone"),
    ],
)
def test_a_later_start_is_checked(
    redis: Redis, starts_at: datetime, ends_at: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        silences.create(
            redis, ['flow_id="7"'], ends_at=ends_at, author="a", comment="", now=NOW,
            starts_at=starts_at,
        )  # fmt: skip
    assert silences.every(redis) == []


def test_a_silence_is_pending_active_then_expired() -> None:
    made = Silence("s", ('flow_id="7"',), NOW, NOW + HOUR, "ana", "")
    assert [made.state(NOW + k * HOUR) for k in (-1, 0, 1)] == ["pending", "active", "expired"]


def test_silences_long_over_are_dropped_when_the_next_is_made(redis: Redis) -> None:
    old = make(redis, 'flow_id="1"', hours=1, now=NOW - KEEP_EXPIRED - 2 * HOUR)
    recent = make(redis, 'flow_id="2"', hours=1, now=NOW - KEEP_EXPIRED)
    assert silences.every(redis) == [old, recent]
    new = make(redis, 'flow_id="3"')
    assert silences.every(redis) == [recent, new]


# matching: pure ------------------------------------------------------------------------------


def silence(sid: str, *matchers: str, start: int = -1, end: int = 1) -> Silence:
    """A silence from ``start`` to ``end`` hours around NOW."""
    return Silence(sid, matchers, NOW + start * HOUR, NOW + end * HOUR, "ana", "")


LABELS = {"source": "etl", "kind": "flow.failed", "flow_id": "7", "flow_name": "staging-orders"}


@pytest.mark.parametrize(
    ("found", "tags", "expect"),
    [
        ([], [], None),
        ([silence("s1", 'flow_name=~"staging-.*"')], [], "s1"),
        ([silence("s1", 'flow_name=~"staging"')], [], None),  # anchored
        ([silence("s1", 'flow_name=~"staging-.*"', 'source="prod"')], [], None),
        ([silence("s1", 'flow_id!="8"', 'kind=~"flow\\.(failed|timeout)"')], [], "s1"),
        ([silence("s1", 'error=""')], [], "s1"),  # absent labels are empty
        ([silence("s1", 'tags="nightly"')], ["warehouse", "nightly"], "s1"),
        ([silence("s1", 'tags="nightly"')], ["warehouse"], None),
        ([silence("s1", 'tags!="nightly"')], ["warehouse", "nightly"], None),
        ([silence("s1", 'tags!=""')], [], None),  # "has a tag"
        ([silence("s1", 'tags!=""')], ["x"], "s1"),
        # expired, pending, ending now: skipped for the next active one
        (
            [
                silence("s1", 'flow_id="7"', start=-3, end=-1),
                silence("s2", 'flow_id="7"', start=1, end=3),
                silence("s3", 'flow_id="7"', start=-1, end=0),
                silence("s4", 'flow_id="8"'),
                silence("s5", 'flow_id="7"', start=0, end=1),
                silence("s6", 'flow_id="7"'),
            ],
            [],
            "s5",
        ),
    ],
)
def test_matching_gives_the_first_active_silence_that_matches(
    found: list[Silence], tags: list[str], expect: str | None
) -> None:
    hit = matching(found, LABELS, tags, NOW)
    assert (hit.id if hit else None) == expect


def test_an_instant_in_another_zone_is_the_same_instant() -> None:
    """A silence made in UTC holds for an instant written on Berlin's clock."""
    berlin = NOW.astimezone(timezone(timedelta(hours=2)))
    assert matching([silence("s1", 'flow_id="7"', start=0)], LABELS, [], berlin) is not None
    earlier = berlin - timedelta(seconds=1)
    assert matching([silence("s1", 'flow_id="7"', start=0)], LABELS, [], earlier) is None
