"""Lanes: the deliveries of one notifier action that must wait, in Redis, in order.

A delivery waits when its destination is paced (Slack about one message a second, PagerDuty
two), asked for a pause (``Retry-After`` on a 429 or 503, which pauses the whole lane), or is
failing (its circuit is open). It never waits inside a route job: :func:`admit` either lets it
go out at once (the lane is empty, nothing pauses it, its pace slot is free, and the slot is
taken) or appends it to the action's lane (:func:`config.keys.lane`) and the job goes on.
Workers drain the lanes at each destination's pace (:mod:`workers.drain`), one worker per lane
at a time, under a lease.

The circuit breaker of an action (``circuit`` in its config) counts its failures in a row:

- closed: deliveries go out; ``after`` retryable failures in a row open it;
- open: every delivery goes to the lane; after ``cool_down`` the drainer sends one probe,
  the lane's head, and the circuit is half open;
- half open: the probe succeeded, the circuit closes and the lane drains in order; it failed,
  the circuit opens again for twice the cool-down, up to ``max_cool_down``.

A success closes the circuit and forgets the failures. What waits is kept: an entry leaves its
lane delivered, carried by a digest, skipped (delivered before, or its flow recovered since),
or dead-lettered once its ``retry.give_up_after`` is spent. Etlworks actions have no lane: they
wait in their own way (:mod:`workers.etlworks.actions`).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from config import keys
from config.lanestate import CIRCUIT_STATES
from config.schema import Circuit
from workers.sinks.registry import DESTINATIONS

if TYPE_CHECKING:
    from redis import Redis

PACE = {name: d.pace for name, d in DESTINATIONS.items() if d.pace is not None}
"""Seconds between two messages of one action, as each destination declares: Slack takes about
one a second per webhook, PagerDuty 120 events a minute per routing key."""
STATE_TTL = 7 * 86400
"""A lane's state (its circuit, its failures) is forgotten after a quiet week."""

CircuitState = Literal["closed", "half_open", "open"]

# KEYS: the lane, its state, its pace, the registry of lanes, the flow's recovery ('' key when
# not a failure). ARGV: now, the pace interval, the entry, the action, the failure's
# received_at ('' when not a failure), the storm key.
_ADMIT = """
local now = tonumber(ARGV[1])
if ARGV[5] ~= '' then
  local recovered = tonumber(redis.call('GET', KEYS[5]) or '')
  if recovered and recovered >= tonumber(ARGV[5]) then
    return {'recovered', 0, 0, 0}
  end
end
local state = redis.call('HMGET', KEYS[2], 'failures', 'circuit', 'paused_until')
local failures = tonumber(state[1] or '0')
local circuit = state[2] or 'closed'
local paused = tonumber(state[3] or '0')
local waiting = redis.call('LLEN', KEYS[1])
local interval = tonumber(ARGV[2])
local slot = 0
if interval > 0 then
  slot = tonumber(redis.call('GET', KEYS[3]) or '0')
end
local storm = redis.call('EXISTS', ARGV[6])
if waiting == 0 and circuit == 'closed' and paused <= now and slot <= now then
  if interval > 0 then
    redis.call('SET', KEYS[3], tostring(now + interval), 'PX', math.ceil(interval * 1000) + 1000)
  end
  return {'send', failures, 0, storm}
end
redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[4], 'LT', tostring(math.max(now, paused, slot)), ARGV[4])
return {'queued', failures, waiting + 1, storm}
"""

# KEYS: the state. ARGV: now, Retry-After ('' for none), the circuit's after, cool_down,
# max_cool_down, the state's ttl.
_FAILED = """
local now = tonumber(ARGV[1])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HMGET', KEYS[1], 'circuit', 'paused_until', 'cool_down')
local circuit = state[1] or 'closed'
local paused = tonumber(state[2] or '0')
if ARGV[2] ~= '' then
  paused = math.max(paused, now + tonumber(ARGV[2]))
end
if circuit == 'half_open' or (circuit == 'closed' and failures >= tonumber(ARGV[3])) then
  local cool = tonumber(ARGV[4])
  if circuit == 'half_open' then
    cool = math.min(math.max(tonumber(state[3] or '0') * 2, cool), tonumber(ARGV[5]))
  end
  circuit = 'open'
  paused = math.max(paused, now + cool)
  redis.call('HSET', KEYS[1], 'circuit', 'open', 'cool_down', tostring(cool),
             'opened_at', tostring(now))
end
redis.call('HSET', KEYS[1], 'paused_until', tostring(paused))
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {circuit, tostring(paused), failures}
"""

# KEYS: the state.
_SUCCEEDED = """
redis.call('HSET', KEYS[1], 'failures', '0', 'circuit', 'closed', 'cool_down', '0')
return 1
"""

# KEYS: the lane, the registry of lanes, the state. ARGV: the entry, the action, now.
_REQUEUE = """
redis.call('LPUSH', KEYS[1], ARGV[1])
local paused = tonumber(redis.call('HGET', KEYS[3], 'paused_until') or '0')
redis.call('ZADD', KEYS[2], 'LT', tostring(math.max(tonumber(ARGV[3]), paused)), ARGV[2])
return 1
"""

# KEYS: the lane, the registry of lanes, the batch. ARGV: how many entries, the action, the
# head's entry as read. Drops the first entries, when the head is still the one read.
_POP = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[3] then
  return -1
end
redis.call('LTRIM', KEYS[1], ARGV[1], -1)
redis.call('DEL', KEYS[3])
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return left
"""

# KEYS: the lane, the registry of lanes. ARGV: the action, when it is next due. Forgets an
# empty lane, else says when it is due.
_PARK = """
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

_REPLACE = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then
  return 0
end
redis.call('LSET', KEYS[1], 0, ARGV[2])
return 1
"""

_PACE = """
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local keep = math.ceil((slot - now + interval) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', keep)
return tostring(slot - now)
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Admitted:
    """What :func:`admit` decided: ``send`` now (the pace slot is taken), ``queued`` in the
    lane, or ``recovered`` (a failure whose flow succeeded since: nothing to send)."""

    verdict: Literal["send", "queued", "recovered"]
    failures: int
    """The action's failures in a row before this delivery."""
    waiting: int
    """Entries in the lane once this one joined it (0 when not queued)."""
    storm: bool
    """A storm digest was sent and no message has followed it yet."""


@dataclass(frozen=True)
class Entry:
    """One waiting delivery, as its lane keeps it: the delivery job's JSON, when it joined the
    lane, and the flow it is about (``source:flow_id``, '' when none)."""

    spec: dict[str, Any]
    queued_at: float
    flow: str = ""

    def dump(self) -> str:
        return json.dumps({"spec": self.spec, "at": self.queued_at, "flow": self.flow})

    @classmethod
    def load(cls, raw: bytes | str) -> "Entry":
        data = json.loads(raw)
        return cls(data["spec"], float(data["at"]), str(data.get("flow") or ""))


@dataclass(frozen=True)
class LaneState:
    circuit: CircuitState
    failures: int
    paused_until: float
    cool_down: float

    @classmethod
    def parse(cls, data: Mapping[Any, Any]) -> "LaneState":
        fields = {keys.text(k): keys.text(v) for k, v in data.items()}
        circuit = fields.get("circuit", "closed")
        return cls(
            circuit if circuit in CIRCUIT_STATES else "closed",  # type: ignore[arg-type]
            int(fields.get("failures") or 0),
            float(fields.get("paused_until") or 0),
            float(fields.get("cool_down") or 0),
        )


def admit(
    conn: "Redis",
    action: str,
    sink: str,
    entry: Entry,
    now: float,
    *,
    failed_at: float | None = None,
) -> Admitted:
    """Send now or queue ``entry`` in the action's lane (see the module's docstring).
    ``failed_at``, for the notification of a failure of a flow, is when the failure was
    received: when the flow succeeded since, the verdict is ``recovered``. One round trip;
    raises ``RedisError``."""
    recovered = keys.recovered(*entry.flow.split(":", 1)) if failed_at and entry.flow else ""
    reply = conn.eval(
        _ADMIT,
        5,
        keys.lane(action),
        keys.lane_state(action),
        keys.pace(action),
        keys.LANES,
        recovered or keys.lane_state(action),
        repr(now),
        repr(PACE.get(sink, 0.0)),
        entry.dump(),
        action,
        repr(failed_at) if recovered else "",
        keys.lane_storm(action),
    )
    verdict = keys.text(reply[0])
    assert verdict in ("send", "queued", "recovered")
    return Admitted(verdict, int(reply[1]), int(reply[2]), bool(reply[3]))  # type: ignore[arg-type]


def pace(conn: "Redis", action_name: str, sink: str, now: float) -> float:
    """Reserve the action's next send slot; the seconds to wait for it (0 for unpaced sinks)."""
    interval = PACE.get(sink)
    if not interval:
        return 0.0
    return float(conn.eval(_PACE, 1, keys.pace(action_name), repr(now), repr(interval)))


def recovered_since(conn: "Redis", flow: str, failed_at: float) -> bool:
    """Whether the flow (``source:flow_id``) succeeded after a failure received ``failed_at``."""
    if not flow:
        return False
    value = conn.get(keys.recovered(*flow.split(":", 1)))
    return value is not None and float(keys.text(value)) >= failed_at


def failed(
    conn: "Redis", action: str, circuit: Circuit, retry_after: float | None, now: float
) -> LaneState:
    """Count a retryable failure of the action: its lane pauses until ``retry_after`` seconds
    from ``now`` when the destination asked, and its circuit opens (or opens again, from half
    open) when the failures in a row reach ``circuit.after``. The state after."""
    reply = conn.eval(
        _FAILED,
        1,
        keys.lane_state(action),
        repr(now),
        "" if retry_after is None else repr(retry_after),
        circuit.after,
        repr(circuit.cool_down),
        repr(circuit.max_cool_down),
        STATE_TTL,
    )
    circuit_state = keys.text(reply[0])
    return LaneState(circuit_state, int(reply[2]), float(keys.text(reply[1])), 0.0)  # type: ignore[arg-type]


def succeeded(conn: "Redis", action: str) -> None:
    """The action delivered: its circuit closes, its failures are forgotten."""
    conn.eval(_SUCCEEDED, 1, keys.lane_state(action))


def half_open(conn: "Redis", action: str) -> None:
    """The cool-down is over: the next send is the probe."""
    conn.hset(keys.lane_state(action), "circuit", "half_open")


def state(conn: "Redis", action: str) -> LaneState:
    return LaneState.parse(conn.hgetall(keys.lane_state(action)))


def requeue(conn: "Redis", action: str, entry: Entry, now: float) -> None:
    """Put a delivery that failed back at the head of its lane (it was admitted before what
    waits there), due when the lane's pause ends."""
    args = (entry.dump(), action, repr(now))
    conn.eval(_REQUEUE, 3, keys.lane(action), keys.LANES, keys.lane_state(action), *args)


def head(conn: "Redis", action: str, count: int) -> list[tuple[str, Entry]]:
    """The first ``count`` entries of the lane, each with its text as stored."""
    raw = conn.lrange(keys.lane(action), 0, count - 1)
    return [(keys.text(r), Entry.load(r)) for r in raw]


def replace_head(conn: "Redis", action: str, read: str, entry: Entry) -> bool:
    """Replace the head of the lane, when it is still ``read``, with ``entry``."""
    return bool(conn.eval(_REPLACE, 1, keys.lane(action), read, entry.dump()))


def pop(conn: "Redis", action: str, count: int, read: str) -> int:
    """Drop the first ``count`` entries of the lane, when its head is still ``read``; the
    entries left (-1 when the head changed: nothing was dropped)."""
    lane_keys = (keys.lane(action), keys.LANES, keys.lane_batch(action))
    return int(conn.eval(_POP, 3, *lane_keys, count, action, read))


def park(conn: "Redis", action: str, due: float) -> bool:
    """Say the lane is next due at ``due``; ``False`` (and the lane forgotten) when empty."""
    return bool(conn.eval(_PARK, 2, keys.lane(action), keys.LANES, action, repr(due)))


def due(conn: "Redis", now: float, limit: int = 100) -> list[str]:
    """The actions whose lanes have a delivery due by ``now``."""
    found = conn.zrangebyscore(keys.LANES, "-inf", now, 0, limit)
    return [keys.text(a) for a in cast("list[bytes | str]", found)]


def lease(conn: "Redis", action: str, holder: str, ttl: float) -> bool:
    """Take the lease of the action's lane for ``ttl`` seconds, if nobody holds it."""
    return bool(conn.set(keys.lane_lease(action), holder, nx=True, px=int(ttl * 1000)))


def renew(conn: "Redis", action: str, holder: str, ttl: float) -> bool:
    """Extend a lease ``holder`` holds; ``False`` when it lost it (it stops draining)."""
    return bool(conn.eval(_RENEW, 1, keys.lane_lease(action), holder, int(ttl * 1000)))


def release(conn: "Redis", action: str, holder: str) -> None:
    conn.eval(_RELEASE, 1, keys.lane_lease(action), holder)
