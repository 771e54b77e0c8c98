"""Joins over Redis: which members of a join succeeded in which window, the join fired once
when every member did (:func:`observe`), and the windows that closed incomplete
(:func:`due_expiries`). All state is in Redis and every step is atomic there, so a restarted
worker, or several racing, carry on from the same state.

An event belongs to the window of its own time (:func:`event_time`: ``finished_at``, else
``received_at``), not to the window it is processed in: yesterday's success counts for
yesterday, however late its webhook, and never completes today. A window *closes* ``grace``
after its end; an event of a closed window is ignored, and one of a window already reported
expired never fires it.

Cron windows
    Each (join, window) keeps a hash of member name to the ref of the first event that met it,
    so a member's repeated events count once. The event that completes the window claims its
    run key (``SET NX``) in the same Lua script that records it: of any number of racing
    workers, exactly one gets the :class:`Completion`. A window with a member seen is listed in
    :data:`OPEN_KEY`, scored by when it closes; :func:`due_expiries` takes the closed ones and
    reports each that did not complete once, under its expire key, naming the missing members.
    A window in which no member was seen is never reported: it leaves no state, and a report
    each day that "nothing ran" would be noise. A window in which some but not all ran is
    reported, which is what ``on_expire`` is for ("B did not run today").

Rolling windows
    The join completes when every member succeeded within ``rolling`` of each other: when a
    success arrives and the latest pending success of every other member is within
    ``rolling`` of it and of each other. A success is used by at most one completion: firing
    consumes the pending successes of every member, so the next firing needs a new success of
    each (a flow that runs hourly beside one that runs daily fires the join daily, not hourly).
    The window's key is the time of its oldest member, which later completions only increase;
    a member's consumed successes are remembered (by time), so a replayed one is ignored.

    A rolling window expires when its oldest pending success is ``rolling`` plus ``grace`` old
    and no completion used it. The expiry covers the ``rolling`` after that success: it names
    the members with no success in it and consumes the successes in it; later ones stay
    pending and open the next window. So while partners stay missing, a member that keeps
    succeeding on its own is reported about once per ``rolling``, never silently forever.

Keys (the join's name contains no colon; window keys are UTC times such as 20260328T230000Z)

    flowhooks:join:{join}:{window}          hash member → event ref (cron)
    flowhooks:join-run:{join}:{window}      the completion's claim
    flowhooks:join-expired:{join}:{window}  the expiry's claim (cron and rolling)
    flowhooks:join-pending:{join}           hash member → pending successes as JSON (rolling)
    flowhooks:join-used:{join}              hash member → time of its last consumed success
    flowhooks:join-open                     sorted set of open windows, scored by closing time

Every key but the open set expires a day (:data:`KEEP`) after its window can no longer change;
the open set's entries leave it when their window completes or is taken by
:func:`due_expiries`.
"""

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from config import keys
from config.joins import Join, members_matched, window_key, window_of
from workers.delivery import labels_of

KEEP = 86400
"""Seconds that state outlives the close of its window: claims stay to turn away replays and
the events of workers whose clocks run late."""
OPEN_KEY = f"{keys.PREFIX}:join-open"
_T = TypeVar("_T")


def hits_key(join: str, window: str) -> str:
    return f"{keys.PREFIX}:join:{join}:{window}"


def run_key(join: str, window: str) -> str:
    return f"{keys.PREFIX}:join-run:{join}:{window}"


def expire_key(join: str, window: str) -> str:
    return f"{keys.PREFIX}:join-expired:{join}:{window}"


def pending_key(join: str) -> str:
    return f"{keys.PREFIX}:join-pending:{join}"


def used_key(join: str) -> str:
    return f"{keys.PREFIX}:join-used:{join}"


@dataclass(frozen=True)
class Completion:
    """A join's window in which every member succeeded: run ``then``. Returned once."""

    join: str
    window_key: str
    start: datetime
    end: datetime
    members: Mapping[str, str]
    """Member name to the ref of the event that met it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "join": self.join,
            "window_key": self.window_key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "members": dict(self.members),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Completion":
        return cls(
            data["join"],
            data["window_key"],
            datetime.fromisoformat(data["start"]),
            datetime.fromisoformat(data["end"]),
            dict(data["members"]),
        )


@dataclass(frozen=True)
class Expiry:
    """A join's window that closed with some members seen and others missing: run
    ``on_expire`` (a join without any has nothing to do with it). Returned once."""

    join: str
    window_key: str
    start: datetime
    end: datetime
    seen: Mapping[str, str]
    """Member name to the ref of an event that met it in the window."""
    missing: tuple[str, ...]
    """The names of the members no success met, in the order of ``all``."""

    @property
    def summary(self) -> str:
        window = f"{self.start.isoformat()} to {self.end.isoformat()}"
        return f"join {self.join}: no success of {', '.join(self.missing)} from {window}"

    def to_json(self) -> dict[str, Any]:
        return {
            "join": self.join,
            "window_key": self.window_key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seen": dict(self.seen),
            "missing": list(self.missing),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Expiry":
        return cls(
            data["join"],
            data["window_key"],
            datetime.fromisoformat(data["start"]),
            datetime.fromisoformat(data["end"]),
            dict(data["seen"]),
            tuple(data["missing"]),
        )


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When the event happened: ``finished_at``, else ``received_at``, each an ISO 8601 string
    (UTC when it names no offset), epoch seconds or milliseconds (above 10^12), or a datetime;
    ``None`` when neither is readable."""
    for field in ("finished_at", "received_at"):
        value = event.get(field)
        try:
            if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
                value = int(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(value / 1000 if value > 10**12 else value, UTC)
            if isinstance(value, str):
                value = datetime.fromisoformat(value.strip())
            if isinstance(value, datetime):
                return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return None


def observe(
    conn: "Redis", name: str, join: Join, event: Mapping[str, Any], now: datetime
) -> Completion | None:
    """Record the members of join ``name`` that ``event`` (a stored event) meets, in the
    window of the event's time; the :class:`Completion` when this completes the window, which
    of any number of calls racing, one event's returns (a cron window's completing event gets
    it again when observed again, so that a job that died before acting acts when re-run; the
    join's delivery ids keep its actions to once). ``None`` for an event
    that meets no member, belongs to a closed window, or completes nothing. ``now`` is aware;
    an event without a readable time is taken to have happened then. Raises Redis' errors."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    labels, tags = labels_of(event)
    matched = [join.all[i].name for i in members_matched(join, labels, tags)]
    if not matched:
        return None
    ref = keys.ref(labels["source"], labels["id"])
    at = event_time(event) or now
    if join.window.rolling is not None:
        return _observe_rolling(conn, name, join, matched, hit=(at.timestamp(), ref), now=now)
    return _observe_cron(conn, name, join, matched, ref=ref, at=at, now=now)


def due_expiries(conn: "Redis", joins: Mapping[str, Join], now: datetime) -> list[Expiry]:
    """The windows of ``joins`` that closed by ``now`` with some members seen and not all,
    each returned by exactly one call, however many race. Windows of joins no longer in
    ``joins``, or whose window changed kind, are dropped unreported. Raises Redis' errors."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    found: list[Expiry] = []
    due = cast(list[bytes | str], conn.zrangebyscore(OPEN_KEY, "-inf", now.timestamp()))
    for raw in due:
        entry = keys.text(raw)
        window = json.loads(entry)
        name = window["join"]
        join = joins.get(name)
        rolling = "window" not in window
        if join is None or rolling != (join.window.rolling is not None):
            conn.zrem(OPEN_KEY, entry)
            continue
        if rolling:
            expiry = _expire_rolling(conn, name, join, entry, now)
        else:
            expiry = _expire_cron(conn, name, join, window, entry)
        if expiry is not None:
            found.append(expiry)
    return found


# Cron windows -------------------------------------------------------------------------------

_OBSERVE = """
local hit = tonumber(ARGV[5])
local run = redis.call('GET', KEYS[2])
if run then
  -- the event that completed the window, routed again (its job died before the join's
  -- actions went out): the completion again; their delivery ids keep them to once
  if run == ARGV[1] then
    return redis.call('HMGET', KEYS[1], unpack(ARGV, 6 + hit))
  end
  return false
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return false
end
for i = 6, 5 + hit do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local refs = redis.call('HMGET', KEYS[1], unpack(ARGV, 6 + hit))
for i = 1, #refs do
  if not refs[i] then
    redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
    return false
  end
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return false
end
redis.call('ZREM', KEYS[4], ARGV[3])
return refs
"""
"""KEYS: hits, run, expired, open. ARGV: the event's ref, TTL, the open-set entry, its score,
the number of members hit, their names, then the names of all members. The member refs in
order when this event completes (or completed) the window, else false."""

_EXPIRE = """
if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  return false
end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  return false
end
return redis.call('HGETALL', KEYS[1])
"""
"""KEYS: hits, run, expired, open. ARGV: the open-set entry, TTL. The hits when this call
claimed the expiry of a window that did not complete, else false."""


def _observe_cron(
    conn: "Redis",
    name: str,
    join: Join,
    matched: Sequence[str],
    *,
    ref: str,
    at: datetime,
    now: datetime,
) -> Completion | None:
    span = window_of(join.window, at)
    closes = span.end.timestamp() + join.grace
    if closes <= now.timestamp():
        return None
    entry = _entry(
        join=name, window=span.key, start=span.start.isoformat(), end=span.end.isoformat()
    )
    members = [member.name for member in join.all]
    found = (hits_key(name, span.key), run_key(name, span.key), expire_key(name, span.key))
    ttl = math.ceil(closes - now.timestamp()) + KEEP
    args: tuple[str | int, ...] = (ref, ttl, entry, repr(closes), len(matched), *matched, *members)
    refs = conn.eval(_OBSERVE, 4, *found, OPEN_KEY, *args)
    if not refs:
        return None
    return Completion(
        name, span.key, span.start, span.end, dict(zip(members, map(keys.text, refs), strict=True))
    )


def _expire_cron(
    conn: "Redis", name: str, join: Join, window: Mapping[str, str], entry: str
) -> Expiry | None:
    key = window["window"]
    found = (hits_key(name, key), run_key(name, key), expire_key(name, key))
    flat = [keys.text(x) for x in conn.eval(_EXPIRE, 4, *found, OPEN_KEY, entry, KEEP) or ()]
    hits = dict(zip(flat[::2], flat[1::2], strict=True))
    members = [member.name for member in join.all]
    seen = {member: hits[member] for member in members if member in hits}
    missing = tuple(member for member in members if member not in hits)
    if not seen or not missing:  # the hits expired unseen, or the config changed its members
        return None
    start, end = (datetime.fromisoformat(window[f]) for f in ("start", "end"))
    return Expiry(name, key, start, end, seen, missing)


# Rolling windows ----------------------------------------------------------------------------

_Hit = tuple[float, str]
"""A success: its time (epoch seconds) and its event's ref."""


@dataclass(frozen=True)
class _Pending:
    """A member's successes not yet used: the first and the latest (by time)."""

    first: _Hit
    latest: _Hit

    def add(self, hit: _Hit) -> "_Pending":
        return _Pending(min(self.first, hit), max(self.latest, hit))


def _take(
    members: Sequence[str],
    pending: Mapping[str, _Pending],
    used: Mapping[str, float],
    *,
    matched: Sequence[str],
    hit: _Hit,
    rolling: float,
) -> tuple[dict[str, _Pending], dict[str, float], dict[str, _Hit] | None]:
    """The state after a success ``hit`` of the ``matched`` members, and the members' hits
    when it completes the join (every pending success is then consumed). Pure."""
    fresh = [member for member in matched if hit[0] > used.get(member, -math.inf)]
    after = dict(pending)
    for member in fresh:
        before = after.get(member)
        after[member] = before.add(hit) if before else _Pending(hit, hit)
    combination = {m: after[m].latest for m in members if m in after} | dict.fromkeys(fresh, hit)
    times = [t for t, _ in combination.values()]
    if not fresh or len(combination) < len(members) or max(times) - min(times) > rolling:
        return after, dict(used), None
    consumed = {m: max(used.get(m, -math.inf), p.latest[0]) for m, p in after.items()}
    return {}, {**used, **consumed}, combination


def _close(
    members: Sequence[str],
    pending: Mapping[str, _Pending],
    used: Mapping[str, float],
    rolling: float,
) -> tuple[dict[str, _Pending], dict[str, float], float, dict[str, _Hit]]:
    """Expire the window of the oldest pending success: the state after, the window's start,
    and the members seen in it with one of their successes there. Pure; ``pending`` is not
    empty."""
    start = min(p.first[0] for p in pending.values())
    end = start + rolling
    after, spent = dict(pending), dict(used)
    seen: dict[str, _Hit] = {}
    for member, p in pending.items():
        if p.first[0] > end:
            continue
        seen[member] = p.latest if p.latest[0] <= end else p.first
        spent[member] = max(used.get(member, -math.inf), min(p.latest[0], end))
        if p.latest[0] <= end:
            del after[member]
        else:
            after[member] = _Pending(p.latest, p.latest)
    return after, spent, start, {m: seen[m] for m in members if m in seen}


def _observe_rolling(
    conn: "Redis", name: str, join: Join, matched: Sequence[str], *, hit: _Hit, now: datetime
) -> Completion | None:
    assert join.window.rolling is not None
    rolling, members = join.window.rolling, [member.name for member in join.all]
    if hit[0] + rolling + join.grace <= now.timestamp():
        return None

    def step(pipe: Pipeline) -> Completion | None:
        pending, used = _load(pipe, name, members)
        after, spent, combination = _take(
            members, pending, used, matched=matched, hit=hit, rolling=rolling
        )
        if after == pending and spent == used:
            pipe.multi()  # nothing new: a repeated or a consumed success
            return None
        completion = None
        if combination is not None:
            start = datetime.fromtimestamp(min(t for t, _ in combination.values()), UTC)
            key = window_key(start)
            pipe.watch(run_key(name, key))  # type: ignore[no-untyped-call]
            if not pipe.exists(run_key(name, key)):
                end = start + timedelta(seconds=rolling)
                refs = {member: combination[member][1] for member in members}
                completion = Completion(name, key, start, end, refs)
        pipe.multi()
        if completion is not None:
            pipe.set(run_key(name, completion.window_key), hit[1], ex=_rolling_ttl(join))
        _store(pipe, name, join, after, spent)
        return completion

    return _atomically(conn, name, step)


def _expire_rolling(
    conn: "Redis", name: str, join: Join, entry: str, now: datetime
) -> Expiry | None:
    assert join.window.rolling is not None
    rolling, members = join.window.rolling, [member.name for member in join.all]

    def step(pipe: Pipeline) -> Expiry | None:
        pending, used = _load(pipe, name, members)
        if not pending:
            pipe.multi()
            pipe.zrem(OPEN_KEY, entry)
            return None
        closes = min(p.first[0] for p in pending.values()) + rolling + join.grace
        if closes > now.timestamp():
            pipe.multi()
            pipe.zadd(OPEN_KEY, {entry: closes})  # its score was stale
            return None
        after, spent, at, seen = _close(members, pending, used, rolling)
        start = datetime.fromtimestamp(at, UTC)
        key = window_key(start)
        pipe.watch(expire_key(name, key))  # type: ignore[no-untyped-call]
        claimed = not pipe.exists(expire_key(name, key))
        pipe.multi()
        if claimed:
            pipe.set(expire_key(name, key), "1", ex=_rolling_ttl(join))
        _store(pipe, name, join, after, spent)
        missing = tuple(member for member in members if member not in seen)
        if not claimed or not missing:
            return None
        end = start + timedelta(seconds=rolling)
        return Expiry(name, key, start, end, {m: ref for m, (_, ref) in seen.items()}, missing)

    return _atomically(conn, name, step)


def _atomically(conn: "Redis", name: str, step: Callable[[Pipeline], _T]) -> _T:
    """Run ``step`` in a transaction over the rolling state of join ``name``: ``step`` reads
    (watching any other key it depends on), calls ``pipe.multi()``, then queues its writes.
    A concurrent write to a watched key makes Redis refuse the writes, and ``step`` runs again
    on the new state."""
    with conn.pipeline() as pipe:
        while True:
            try:
                pipe.watch(pending_key(name), used_key(name))  # type: ignore[no-untyped-call]
                result = step(pipe)
                pipe.execute()
                return result
            except WatchError:
                continue


def _load(
    pipe: Pipeline, name: str, members: Sequence[str]
) -> tuple[dict[str, _Pending], dict[str, float]]:
    """The pending successes and used marks of the join's current members (read while
    watching, so before the transaction's MULTI)."""
    pending: dict[str, _Pending] = {}
    for field, value in pipe.hgetall(pending_key(name)).items():
        if keys.text(field) in members:
            data = json.loads(value)
            pending[keys.text(field)] = _Pending(tuple(data["first"]), tuple(data["latest"]))
    used = {
        keys.text(field): float(value)
        for field, value in pipe.hgetall(used_key(name)).items()
        if keys.text(field) in members
    }
    return pending, used


def _store(
    pipe: Pipeline,
    name: str,
    join: Join,
    pending: Mapping[str, _Pending],
    used: Mapping[str, float],
) -> None:
    assert join.window.rolling is not None
    ttl = _rolling_ttl(join)
    entry = _entry(join=name)
    pipe.delete(pending_key(name))
    if pending:
        stored: dict[FieldT, EncodableT] = {
            m: json.dumps({"first": p.first, "latest": p.latest}) for m, p in pending.items()
        }
        pipe.hset(pending_key(name), mapping=stored)
        pipe.expire(pending_key(name), ttl)
        closes = min(p.first[0] for p in pending.values()) + join.window.rolling + join.grace
        pipe.zadd(OPEN_KEY, {entry: closes})
    else:
        pipe.zrem(OPEN_KEY, entry)
    if used:
        marks: dict[FieldT, EncodableT] = {m: repr(t) for m, t in used.items()}
        pipe.hset(used_key(name), mapping=marks)
        pipe.expire(used_key(name), ttl)


def _rolling_ttl(join: Join) -> int:
    """A success older than ``rolling`` plus ``grace`` is refused anyway: state about it need
    not outlive that."""
    assert join.window.rolling is not None
    return math.ceil(join.window.rolling + join.grace) + KEEP


def _entry(**fields: str) -> str:
    """An entry of :data:`OPEN_KEY`, written the same way by every worker."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))
