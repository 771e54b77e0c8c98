"""What the console's overview and deliveries pages read without scanning events: counts per
minute, and each action's latest delivery attempts. Written by the workers as they deliver
(:meth:`workers.delivery.Deliveries._timeline`), read by the admin side.

- ``flowhooks:activity:{hour}`` is a hash of ``{what}:{minute}`` to a count (minutes and
  hours since the epoch), kept :data:`KEEP_SECONDS`: one ``HINCRBY`` per delivery outcome.
  Events received per minute need no counter: the event index is scored by received time.
- ``flowhooks:attempts:{action}`` is a list of the action's latest :data:`ATTEMPTS` attempts
  (newest first) as JSON, and ``flowhooks:attempts`` the set of actions that have one.

Every function takes a synchronous Redis connection (or a pipeline, for the writers) and may
raise ``RedisError``.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from config import keys

KEEP_SECONDS = 26 * 3600
"""How long a minute's counts are kept: a day, and the hour being filled."""
ATTEMPTS = 1000
"""Attempts kept per action."""
ACTIONS = f"{keys.PREFIX}:attempts"
DELIVERED = ("delivered", "done", "unconfirmed")
"""Outcomes counted as delivered (a notification sent, an Etlworks action made)."""
FAILED = ("failed",)
"""Outcomes counted as failed: a failed attempt (its dead letter, when it is the last, is not
counted again)."""


def _hour(minute: int) -> str:
    return f"{keys.PREFIX}:activity:{minute // 60}"


def attempts_key(action: str) -> str:
    return f"{keys.PREFIX}:attempts:{action}"


def outcome(conn: Any, action: str, ref: str, entry: Mapping[str, Any], now: float) -> None:
    """Record a delivery's outcome: count it in its minute, and keep the attempt in the
    action's list. ``conn`` may be a pipeline."""
    what = entry.get("outcome")
    minute = int(now // 60)
    if what in DELIVERED or what in FAILED:
        counted = "delivered" if what in DELIVERED else "failed"
        conn.hincrby(_hour(minute), f"{counted}:{minute}", 1)
        conn.expire(_hour(minute), KEEP_SECONDS)
    key = attempts_key(action)
    at = datetime.fromtimestamp(now, UTC).isoformat()
    conn.lpush(key, json.dumps({"at": at, **entry, "ref": ref}, default=str))
    conn.ltrim(key, 0, ATTEMPTS - 1)
    conn.sadd(ACTIONS, action)


def per_minute(conn: "Redis", what: str, now: float, minutes: int) -> list[int]:
    """Counts of ``what`` (``delivered``, ``failed``) in each of the last ``minutes`` minutes,
    the oldest first (the last is the minute going on)."""
    last = int(now // 60)
    wanted = list(range(last - minutes + 1, last + 1))
    hours = sorted({m // 60 for m in wanted})
    with conn.pipeline(transaction=False) as pipe:
        for hour in hours:
            pipe.hgetall(f"{keys.PREFIX}:activity:{hour}")
        found: dict[str, int] = {}
        for replies in pipe.execute():
            found.update({keys.text(k): int(v) for k, v in replies.items()})
    return [found.get(f"{what}:{m}", 0) for m in wanted]


def received_per_minute(conn: "Redis", now: float, minutes: int) -> list[int]:
    """Events received in each of the last ``minutes`` minutes, from the event index."""
    last = int(now // 60)
    with conn.pipeline(transaction=False) as pipe:
        for m in range(last - minutes + 1, last + 1):
            pipe.zcount(keys.EVENT_INDEX, m * 60_000, f"({(m + 1) * 60_000}")
        return [int(n) for n in pipe.execute()]


def actions(conn: "Redis") -> list[str]:
    """The actions that have attempts recorded."""
    return sorted(keys.text(a) for a in conn.smembers(ACTIONS))


def attempts(conn: "Redis", action: str) -> list[dict[str, Any]]:
    """The action's kept attempts, newest first (one that is not JSON is left out)."""
    found = []
    for raw in conn.lrange(attempts_key(action), 0, -1):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found
