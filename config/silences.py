"""Silences: operator-made, time-bounded suppressions of notifications whose events match a
set of matchers, kept in Redis with their author and comment (``flowhooks silence``, the
admin API's ``/api/silences``). The workers read them (:func:`parse_all`, :func:`matching`).

Every route job reads all of them, so a silence that ended more than :data:`KEEP_EXPIRED` ago
is dropped when the next one is made: ``silence list --all`` shows the recent past, not all of it.
"""

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal

from redis import Redis

from config import keys
from config.base import CLOSED, MATCHABLE
from config.matchers import parse

KEEP_EXPIRED = timedelta(days=7)
"""How long an ended silence stays listed (``silence list --all``) before it is dropped."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def state(self, at: datetime) -> Literal["active", "pending", "expired"]:
        if self.active(at):
            return "active"
        return "pending" if at < self.starts_at else "expired"

    def matches(self, labels: Mapping[str, str], tags: Sequence[str]) -> bool:
        return all(parse(m, MATCHABLE).matches(labels, tags) for m in self.matchers)

    def to_json(self) -> str:
        data = asdict(self)
        data["starts_at"] = self.starts_at.isoformat()
        data["ends_at"] = self.ends_at.isoformat()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Silence":
        data = json.loads(text)
        return cls(
            id=data["id"],
            matchers=tuple(data["matchers"]),
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]),
            author=data["author"],
            comment=data["comment"],
        )


def create(
    conn: "Redis",
    matchers: Sequence[str],
    *,
    duration: float | None = None,
    ends_at: datetime | None = None,
    author: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
) -> Silence:
    """Store a silence starting at ``starts_at`` (``now`` when unset or past, as Alertmanager
    does) for ``duration`` seconds, or until ``ends_at`` (give one of them); raise
    ``ValueError`` for a bad matcher, start, duration or end."""
    start = _start(now, starts_at)
    silence = Silence(
        id=uuid.uuid4().hex[:12],
        matchers=tuple(_checked(matchers)),
        starts_at=start,
        ends_at=_end(start, duration, ends_at, later=start > now),
        author=author,
        comment=comment,
    )
    stale = [s.id for s in every(conn) if s.ends_at < now - KEEP_EXPIRED]
    with conn.pipeline() as pipe:
        pipe.hset(keys.SILENCES, silence.id, silence.to_json())
        if stale:
            pipe.hdel(keys.SILENCES, *stale)
        pipe.execute()
    return silence


def _checked(matchers: Sequence[str]) -> Sequence[str]:
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    for text in matchers:
        parse(text, MATCHABLE, CLOSED)
    return matchers


def _start(now: datetime, starts_at: datetime | None) -> datetime:
    if starts_at is None:
        return now
    if starts_at.tzinfo is None:
        raise ValueError("a silence's start needs a time zone")
    return max(starts_at, now)


def _end(
    start: datetime, duration: float | None, ends_at: datetime | None, *, later: bool
) -> datetime:
    """The end of a silence from ``start``, which is ``later`` than now or is now."""
    if (duration is None) == (ends_at is None):
        raise ValueError("give a silence either a duration or an end")
    if ends_at is not None:
        if ends_at.tzinfo is None:
            raise ValueError("a silence's end needs a time zone")
        if not ends_at > start:
            when = "after it starts" if later else "in the future"
            raise ValueError(f"a silence must end {when}")
        return ends_at
    assert duration is not None
    if not duration > 0:
        raise ValueError("a silence must last longer than zero")
    try:
        return start + timedelta(seconds=duration)
    except OverflowError:  # past the year 9999
        raise ValueError("a silence cannot last that long") from None


def every(conn: "Redis") -> list[Silence]:
    return parse_all(conn.hvals(keys.SILENCES))


def parse_all(stored: Iterable[str | bytes]) -> list[Silence]:
    """Stored silences (the values of the silences hash), earliest start first."""
    return sorted((Silence.from_json(s) for s in stored), key=lambda s: s.starts_at)


def get(conn: "Redis", silence_id: str) -> Silence | None:
    stored = conn.hget(keys.SILENCES, silence_id)
    return Silence.from_json(stored) if stored is not None else None


def expire(conn: "Redis", silence_id: str, now: datetime) -> Silence | None:
    """End a silence now; ``None`` if there is no such silence."""
    old = get(conn, silence_id)
    if old is None:
        return None
    ends_at = min(old.ends_at, now)
    # a pending silence ends now, before it would have started: it never holds
    starts_at = min(old.starts_at, ends_at)
    ended = Silence(old.id, old.matchers, starts_at, ends_at, old.author, old.comment)
    conn.hset(keys.SILENCES, silence_id, ended.to_json())
    return ended


def matching(
    silences: Sequence[Silence], labels: Mapping[str, str], tags: Sequence[str], at: datetime
) -> Silence | None:
    """The first active silence that matches the event, if any. Pure."""
    return next((s for s in silences if s.active(at) and s.matches(labels, tags)), None)


def would_match(matchers: Sequence[str], events: Iterable[Mapping[str, object]]) -> int:
    """How many of ``events`` a silence of ``matchers`` would match (the workers' labels: the
    event's own and ``consecutive_failures``, which a stored event does not carry). Raise
    ``ValueError`` for a matcher that cannot be used."""
    parsed = [parse(m, MATCHABLE, CLOSED) for m in _checked(matchers)]
    found = 0
    for event in events:
        labels = {name: str(event.get(name) or "") for name in MATCHABLE}
        given = event.get("tags")
        tags = [str(t) for t in given] if isinstance(given, list) else []
        found += all(m.matches(labels, tags) for m in parsed)
    return found
