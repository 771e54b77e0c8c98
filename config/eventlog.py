"""Reading stored events and appending to their timelines (synchronous Redis, for the workers,
the command line and the receiver's admin API; the receiver writes new events in
:mod:`receiver.ingest`)."""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from config import keys


@dataclass(frozen=True)
class StoredEvent:
    ref: str
    event: dict[str, Any]
    timeline: list[dict[str, Any]]


def entry(stage: str, **fields: Any) -> dict[str, Any]:
    """A timeline entry made now, for :func:`append_all`."""
    return {"at": datetime.now(UTC).isoformat(), "stage": stage, **fields}


def append(conn: "Redis", event_ref: str, stage: str, **fields: Any) -> bool:
    """Add an entry to the event's timeline; ``False`` if the event is no longer kept.

    ``RPUSHX`` appends only to a timeline that exists, so an entry for an expired event does
    not leave a key behind without a TTL. ``conn`` may be a pipeline.
    """
    return append_all(conn, event_ref, [entry(stage, **fields)])


def append_all(conn: "Redis", event_ref: str, entries: list[dict[str, Any]]) -> bool:
    """Add several entries in one command."""
    if not entries:
        return True
    values = [json.dumps(e, default=str) for e in entries]
    return bool(conn.rpushx(keys.timeline(event_ref), *values))


def load_event(conn: "Redis", event_ref: str) -> dict[str, Any] | None:
    """The stored event without its timeline."""
    record = conn.get(keys.event(event_ref))
    return json.loads(record) if record is not None else None


def load(conn: "Redis", event_ref: str) -> StoredEvent | None:
    with conn.pipeline(transaction=False) as pipe:
        pipe.get(keys.event(event_ref))
        pipe.lrange(keys.timeline(event_ref), 0, -1)
        record, timeline = pipe.execute()
    if record is None:
        return None
    return StoredEvent(event_ref, json.loads(record), [json.loads(e) for e in timeline])


def recent(conn: "Redis", limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
    """The newest events first, as stored (events past their retention are skipped)."""
    if limit <= 0:
        return []  # ZREVRANGE would read ``0 .. -1``: the whole index
    refs = conn.zrevrange(keys.EVENT_INDEX, offset, offset + limit - 1)
    if not refs:
        return []
    records = conn.mget([keys.event(r.decode() if isinstance(r, bytes) else str(r)) for r in refs])
    return [json.loads(r) for r in records if r is not None]


def find(conn: "Redis", event_id: str, source: str | None = None) -> list[str]:
    """Refs of stored events with this id: in ``source``, or in any source."""
    if source is not None:
        ref = keys.ref(source, event_id)
        return [ref] if conn.exists(keys.event(ref)) else []
    if ":" in event_id and conn.exists(keys.event(event_id)):
        return [event_id]  # already a ref
    pattern = keys.event("*:" + _glob_escape(event_id))
    prefix = len(keys.event(""))
    refs = (k.decode()[prefix:] for k in conn.scan_iter(match=pattern, count=1000))
    # The pattern's ``*`` also spans colons: ``*:b`` matches the ref of id ``a:b`` too.
    return sorted(ref for ref in refs if keys.split_ref(ref)[1] == event_id)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Filters:
    """Which events to list: labels that must be equal, and a window of received times in
    Unix milliseconds, both ends included. ``None`` leaves a part open."""

    source: str | None = None
    kind: str | None = None
    flow_id: str | None = None
    status: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def labels(self) -> dict[str, str]:
        wanted = {"kind": self.kind, "flow_id": self.flow_id, "status": self.status}
        return {name: value for name, value in wanted.items() if value is not None}

    def accepts(self, event: Mapping[str, Any]) -> bool:
        return all(str(event.get(k) or "") == v for k, v in self.labels().items())


CHUNK = 500
"""Events read per round trip when a listing has to look inside them."""


def search(
    conn: "Redis", filters: Filters, *, limit: int, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    """How many stored events pass ``filters``, and ``limit`` of them after skipping
    ``offset``, newest first.

    Without label filters the index answers (its count may include an event that expired a
    moment ago); with them every event of the window is read, :data:`CHUNK` at a time: the
    cost grows with the window, not with the page.
    """
    low, high = _window(filters)
    if filters.labels():
        total, page = 0, []
        for stored in scan(conn, filters):
            if filters.accepts(stored.event):
                if offset <= total < offset + limit:
                    page.append(stored.event)
                total += 1
        return total, page
    if filters.source is None:
        total = int(conn.zcount(keys.EVENT_INDEX, low, high))
        if limit <= 0:
            return total, []
        refs = _texts(conn.zrevrangebyscore(keys.EVENT_INDEX, high, low, offset, limit))
        return total, [s.event for s in _load_many(conn, refs, timelines=False)]
    found = [ref for chunk in _chunks(conn, filters) for ref in chunk]
    page_refs = found[offset : offset + limit] if limit > 0 else []
    return len(found), [s.event for s in _load_many(conn, page_refs, timelines=False)]


SEARCHED = ("id", "flow_name", "flow_id", "error")
"""The fields a free-text search looks in."""


def mentions(event: Mapping[str, Any], text: str) -> bool:
    """Whether the event's id, flow name, flow id or error contains ``text`` (case aside)."""
    wanted = text.casefold()
    return any(wanted in str(event.get(name) or "").casefold() for name in SEARCHED)


def matching(conn: "Redis", filters: Filters, text: str) -> Iterator[dict[str, Any]]:
    """The events ``filters`` pass whose id, flow name, flow id or error contains ``text``,
    newest first: every event of the window is read until the caller stops."""
    for stored in scan(conn, filters):
        if filters.accepts(stored.event) and mentions(stored.event, text):
            yield stored.event


def received_within(conn: "Redis", hours: float, now: float) -> Iterator[dict[str, Any]]:
    """The events received in the ``hours`` before ``now`` (epoch seconds), newest first."""
    until = int(now * 1000)
    window = Filters(since_ms=until - int(hours * 3_600_000), until_ms=until)
    return (stored.event for stored in scan(conn, window))


def scan(
    conn: "Redis", filters: Filters = Filters(), *, timelines: bool = False
) -> Iterator[StoredEvent]:
    """The stored events of the window (and source) of ``filters``, newest first, with their
    timelines if asked; the label filters are the caller's to apply."""
    for refs in _chunks(conn, filters):
        yield from _load_many(conn, refs, timelines=timelines)


def _chunks(conn: "Redis", filters: Filters) -> Iterator[list[str]]:
    """The refs of the window, newest first, :data:`CHUNK` at a time, of the source if set."""
    low, high = _window(filters)
    start = 0
    while True:
        refs = _texts(conn.zrevrangebyscore(keys.EVENT_INDEX, high, low, start, CHUNK))
        start += len(refs)
        wanted = [r for r in refs if filters.source in (None, keys.split_ref(r)[0])]
        if wanted:
            yield wanted
        if len(refs) < CHUNK:
            return


def _load_many(conn: "Redis", refs: list[str], *, timelines: bool) -> list[StoredEvent]:
    """The events of ``refs`` still stored, in one round trip (a record that is not JSON is no
    event, and is left out)."""
    if not refs:
        return []
    with conn.pipeline(transaction=False) as pipe:
        pipe.mget([keys.event(r) for r in refs])
        for ref in refs if timelines else ():
            pipe.lrange(keys.timeline(ref), 0, -1)
        records, *lists = pipe.execute()
    found = []
    for i, (ref, record) in enumerate(zip(refs, records, strict=True)):
        try:
            event = json.loads(record) if record is not None else None
            timeline = [json.loads(e) for e in lists[i]] if timelines else []
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(StoredEvent(ref, event, timeline))
    return found


def _window(filters: Filters) -> tuple[int | str, int | str]:
    low = "-inf" if filters.since_ms is None else filters.since_ms
    high = "+inf" if filters.until_ms is None else filters.until_ms
    return low, high


def _texts(values: list[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
