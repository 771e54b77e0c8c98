"""``flowhooks events tail``: new events and what happens to them, as it happens.

Redis tells no one when an event arrives, so the events index is polled: each poll reads the
events received since the last one and the timeline entries added since of the events it
follows. An event is written a moment after the time it is indexed by (the receiver commits
requests in batches), so each poll looks :data:`LAG_MS` further back and skips what it has
shown. The timelines of the newest :data:`FOLLOWED` events shown are followed; an older one's
later entries (a retry an hour on) are not shown.
"""

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis import Redis

from config import keys
from config.eventlog import Filters

LAG_MS = 5000
FOLLOWED = 1000
BATCH = 500
"""Events read per round trip."""


@dataclass(frozen=True)
class Seen:
    """An event (``entry`` is None) or one entry of its timeline, new since the last poll."""

    ref: str
    event: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None


class Follower:
    """Polls for events received from ``since_ms`` on that pass ``filters``, and for their
    timelines' new entries. Every call may raise ``RedisError``."""

    def __init__(self, conn: "Redis", filters: Filters, since_ms: int) -> None:
        self.conn = conn
        self.filters = filters
        self.since_ms = since_ms
        self.newest = since_ms
        self.shown: dict[str, float] = {}
        """Events shown whose score is within :data:`LAG_MS` of the newest: the next poll
        reads them again and must skip them."""
        self.followed: OrderedDict[str, int] = OrderedDict()
        """Refs of the events shown, and how many entries of their timeline were."""

    def poll(self) -> Iterator[Seen]:
        """What is new, each event followed at once by the entries of its timeline so far."""
        for ref, event in self._new_events():
            yield Seen(ref, event=event)
            self.followed[ref] = 0
            if len(self.followed) > FOLLOWED:
                self.followed.popitem(last=False)
        yield from self._new_entries()

    def _new_events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        low = max(self.since_ms, self.newest - LAG_MS)
        start = 0
        while True:
            page = self.conn.zrangebyscore(
                keys.EVENT_INDEX, low, "+inf", start=start, num=BATCH, withscores=True
            )
            start += len(page)
            fresh = [(keys.text(ref), float(score)) for ref, score in _scored(page)]
            fresh = [(r, s) for r, s in fresh if r not in self.shown]
            for ref, score in fresh:
                self.shown[ref] = score
                self.newest = max(self.newest, int(score))
            wanted = [r for r, _ in fresh if self.filters.source in (None, keys.split_ref(r)[0])]
            records = self.conn.mget([keys.event(r) for r in wanted]) if wanted else []
            for ref, record in zip(wanted, records, strict=True):
                event = _json(record)
                if event is not None and self.filters.accepts(event):
                    yield ref, event
            if len(page) < BATCH:
                break
        self.shown = {r: s for r, s in self.shown.items() if s >= self.newest - LAG_MS}

    def _new_entries(self) -> Iterator[Seen]:
        refs = list(self.followed)
        if not refs:
            return
        with self.conn.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.lrange(keys.timeline(ref), self.followed[ref], -1)
            replies = pipe.execute()
        for ref, added in zip(refs, replies, strict=True):
            self.followed[ref] += len(added)
            for raw in added:
                entry = _json(raw)
                if entry is not None:
                    yield Seen(ref, entry=entry)


def _json(raw: bytes | str | None) -> dict[str, Any] | None:
    """A stored object; ``None`` for one that expired or is not a JSON object."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _scored(page: object) -> list[tuple[bytes | str, float]]:
    """``ZRANGEBYSCORE … WITHSCORES`` as redis-py returns it (its type says less)."""
    assert isinstance(page, list)
    return [(ref, float(score)) for ref, score in page]
