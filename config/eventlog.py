"""Reading stored events and appending to their timelines (synchronous Redis, for the workers
and the command line; the receiver writes new events in :mod:`receiver.ingest`)."""

import json
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
