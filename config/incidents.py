"""The open incidents as the console and the command line see them: listed, acknowledged,
resolved by hand.

The workers open and close incidents (:func:`workers.delivery.note_incident`,
:func:`~workers.delivery.close_incidents`): one hash per (flow, route, action) under
:func:`config.keys.incident`. An acknowledgement is two fields of that hash, ``acked_at`` and
``acked_by``; the router holds back repeats of an acknowledged incident, and the flow's next
success (which deletes the hash) ends the acknowledgement with the incident. Resolving by hand
forgets the incident: the flow's next failure notifies again and opens a new one.

An incident is named by :func:`incident_id`, the key's own part in URL-safe base64, so a page
or a command can name it whatever its route is called. Every function takes a synchronous
Redis connection and may raise ``RedisError``.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from redis import Redis

from config import keys

PREFIX = f"{keys.PREFIX}:incident:"
INCIDENT_ID = r"^[A-Za-z0-9_-]{1,2000}$"


@dataclass(frozen=True)
class OpenIncident:
    id: str
    source: str
    flow_id: str
    flow_name: str
    route: str
    action: str
    opened_at: float
    last_notified_at: float
    event: str
    failures: int
    acked_at: float | None
    acked_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "flow_id": self.flow_id,
            "flow_name": self.flow_name,
            "route": self.route,
            "action": self.action,
            "opened_at": self.opened_at,
            "last_notified_at": self.last_notified_at,
            "event": self.event,
            "failures": self.failures,
            "acknowledged": self.acked_at is not None,
            "acked_at": self.acked_at,
            "acked_by": self.acked_by or None,
        }


def incident_id(key: str) -> str:
    return base64.urlsafe_b64encode(key.removeprefix(PREFIX).encode()).decode().rstrip("=")


def _key(found: str) -> str | None:
    """The key an id names, or ``None`` for an id that names none."""
    try:
        text = base64.urlsafe_b64decode(found + "=" * (-len(found) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    return PREFIX + text if text.count(":") >= 3 else None


def every(conn: "Redis") -> list[OpenIncident]:
    """Every open incident, the most recently notified first."""
    names = sorted({keys.text(k) for k in conn.scan_iter(match=f"{PREFIX}*", count=1000)})
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(name)
        hashes = pipe.execute()
    parsed = [
        (name, {keys.text(k): keys.text(v) for k, v in data.items()})
        for name, data in zip(names, hashes, strict=True)
        if data
    ]
    flows = [_flow(name, fields) for name, fields in parsed]
    with conn.pipeline(transaction=False) as pipe:
        for (_, fields), (source, flow_id) in zip(parsed, flows, strict=True):
            pipe.scard(keys.failures(source, flow_id))
            pipe.get(keys.event(fields.get("event", "")))
        replies = pipe.execute()
    found = []
    for i, ((name, fields), (source, flow_id)) in enumerate(zip(parsed, flows, strict=True)):
        failures, record = replies[2 * i], replies[2 * i + 1]
        acked = fields.get("acked_at")
        found.append(
            OpenIncident(
                id=incident_id(name),
                source=source,
                flow_id=flow_id,
                flow_name=_flow_name(record),
                route=fields.get("route", ""),
                action=fields.get("action", ""),
                opened_at=float(fields.get("opened_at") or 0),
                last_notified_at=float(fields.get("last_notified_at") or 0),
                event=fields.get("event", ""),
                failures=int(failures),
                acked_at=float(acked) if acked else None,
                acked_by=fields.get("acked_by", ""),
            )
        )
    return sorted(found, key=lambda i: -i.last_notified_at)


def _flow(name: str, fields: dict[str, str]) -> tuple[str, str]:
    """The source and flow id of an incident key: the source has no colon, and the key ends
    with the route and action its hash names."""
    source, _, rest = name.removeprefix(PREFIX).partition(":")
    suffix = f":{fields.get('route', '')}:{fields.get('action', '')}"
    return source, rest.removesuffix(suffix) if rest.endswith(suffix) else rest.split(":")[0]


def _flow_name(record: bytes | str | None) -> str:
    try:
        event = json.loads(record) if record else None
    except ValueError:
        return ""
    return str(event.get("flow_name") or "") if isinstance(event, dict) else ""


_ACKNOWLEDGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'acked_at', ARGV[1], 'acked_by', ARGV[2])
return 1
"""


def acknowledge(conn: "Redis", found: str, by: str, now: float) -> bool:
    """Hold back the incident's repeats until it resolves; ``False`` when it is not open."""
    key = _key(found)
    return key is not None and bool(conn.eval(_ACKNOWLEDGE, 1, key, repr(now), by))


def resolve(conn: "Redis", found: str) -> bool:
    """Forget the incident; ``False`` when it is not open."""
    key = _key(found)
    if key is None:
        return False
    data = {keys.text(k): keys.text(v) for k, v in conn.hgetall(key).items()}
    if not data:
        return False
    source, flow_id = _flow(key, data)
    with conn.pipeline() as pipe:
        pipe.delete(key)
        pipe.srem(keys.incidents(source, flow_id), key)
        pipe.execute()
    return True


def count(conn: "Redis") -> int:
    return sum(1 for _ in conn.scan_iter(match=f"{PREFIX}*", count=1000))
