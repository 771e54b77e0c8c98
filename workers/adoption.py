"""Route jobs that a running route job takes from the queue to run itself.

RQ's bookkeeping costs a route job more than the routing does (about thirty Redis round trips
a job, one at a time), so under load a route job, once its own event is routed, takes the
route jobs waiting at the head of the queue and routes their events in turn, for a couple of
seconds at most. One event is taken at a time, in queue order, so the events of one flow are
routed in the order they arrived, as a lone worker would.

What is taken is never only in a worker's memory: a taken job id moves from the queue to the
taker's own list (:func:`config.keys.adopted`) in the same script, which registers the list
(:data:`config.keys.TAKEN`) with its holder: the worker, the job and a deadline. An id leaves
the list when its event has been routed, when its job hash is deleted as RQ deletes a finished
job whose result is not kept. A route job that fails or is stopped gives what it still holds
back to the head of the queue; when its worker died, or it outlived its deadline,
:func:`reclaim` does, whatever RQ decides about the job itself.

Only a queued job is taken (its hash says ``queued``): taking stops at a head whose hash is
missing or says otherwise (RQ runs it, or runs another copy of its id), and a routed job's
hash is deleted only while it still says ``queued``, so the hash of a job RQ runs is never
deleted. An event whose routing raised goes back as a job of its own, marked
(:func:`config.keys.solo`) so that no route job takes it again: its own retries and dead
letter then apply to it alone.
"""

import json
import zlib
from typing import TYPE_CHECKING

from config import keys

if TYPE_CHECKING:
    from redis import Redis

MAX_EVENTS = 64
"""Events one route job routes besides its own."""
MAX_SECONDS = 2.0
"""How long a route job goes on taking others' events; other kinds of job wait behind it."""
SOLO_TTL = 86400
DEADLINE_GRACE = 5.0
"""Seconds past its job's time limit after which a taker's list goes back in any case."""
RECLAIM_LOCK = 2.0
"""Seconds during which one worker's look for taken lists to give back keeps the others from
looking."""

RQ_JOB = "rq:job:"
RQ_QUEUE = f"rq:queue:{keys.QUEUE}"

# Marks the id routed last as done: out of the list, and its hash deleted while still queued
# (another copy of the id may be running under RQ, whose hash it is then).
_ROUTED = """
if ARGV[1] ~= '' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  if redis.call('HGET', ARGV[2] .. ARGV[1], 'status') == 'queued' then
    redis.call('DEL', ARGV[2] .. ARGV[1])
  end
end
"""

# KEYS: the queue, the taker's list, the registry of lists. ARGV: the id routed last ('' for
# none), RQ's job key prefix, the route job id prefix, the list's ttl, the solo key prefix,
# the taken lists' prefix, the list's holder.
_TAKE = (
    _ROUTED
    + """
local id = redis.call('LINDEX', KEYS[1], 0)
if not id or string.sub(id, 1, #ARGV[3]) ~= ARGV[3]
   or redis.call('EXISTS', ARGV[5] .. id) == 1
   or redis.call('HGET', ARGV[2] .. id, 'status') ~= 'queued' then
  return false
end
redis.call('LPOP', KEYS[1])
-- a route job queued again after its worker died may still hold jobs it took: back they go
while redis.call('RPOPLPUSH', ARGV[6] .. id, KEYS[1]) do end
redis.call('HDEL', KEYS[3], ARGV[6] .. id)
redis.call('RPUSH', KEYS[2], id)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[3], KEYS[2], ARGV[7])
return {id, redis.call('HGET', ARGV[2] .. id, 'data') or ''}
"""
)

# KEYS: the queue, the taker's list, the registry of lists. ARGV: the id routed last ('' for
# none), RQ's job key prefix. What is still held goes back to the head of the queue, in order.
_FINISH = (
    _ROUTED
    + """
local n = 0
while redis.call('RPOPLPUSH', KEYS[2], KEYS[1]) do n = n + 1 end
redis.call('HDEL', KEYS[3], KEYS[2])
return n
"""
)

# KEYS: the queue, the taker's list, the solo key. ARGV: the job id, the solo key's ttl.
_RELEASE = """
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 1 then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
return 1
"""

# KEYS: the registry of lists, the queue, the lock. ARGV: now (epoch seconds), the lock's ttl
# (ms), the worker liveness key prefix. -1 when another worker holds the lock.
_RECLAIM = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then
  return -1
end
local entries = redis.call('HGETALL', KEYS[1])
local given = 0
for i = 1, #entries, 2 do
  local list, holder = entries[i], cjson.decode(entries[i + 1])
  local running = redis.call('GET', ARGV[3] .. holder.worker)
  if running ~= holder.job or tonumber(ARGV[1]) > tonumber(holder.deadline) then
    while redis.call('RPOPLPUSH', list, KEYS[2]) do given = given + 1 end
    redis.call('HDEL', KEYS[1], list)
  end
end
return given
"""


class Taker:
    """What one running route job takes from the queue. ``ttl`` keeps its list past the job's
    own life; ``worker`` and ``deadline`` (epoch seconds) register who holds the list and
    until when (:func:`reclaim`). Every method may raise ``RedisError``."""

    def __init__(
        self, conn: "Redis", job_id: str, ttl: float, *, worker: str, deadline: float
    ) -> None:
        self.conn = conn
        self.held = keys.adopted(job_id)
        self.ttl = int(ttl)
        self.holder = json.dumps({"worker": worker, "job": job_id, "deadline": deadline})
        self.last = ""

    def take(self) -> tuple[str, str | None] | None:
        """Mark the last event taken as routed and take the next: ``(job id, event ref)``,
        the ref ``None`` for a job that is not a plain route job (given back at once), or
        ``None`` when the head of the queue holds no queued route job to take."""
        last, self.last = self.last, ""
        prefixes = (keys.ROUTE_JOB_PREFIX, self.ttl, keys.solo(""), keys.adopted(""))
        args = (last, RQ_JOB, *prefixes, self.holder)
        taken = self.conn.eval(_TAKE, 3, RQ_QUEUE, self.held, keys.TAKEN, *args)
        if not taken:
            return None
        job_id = keys.text(taken[0])
        ref = _route_ref(taken[1] if isinstance(taken[1], bytes) else taken[1].encode())
        if ref is None:
            self.release(job_id)
            return job_id, None
        self.last = job_id
        return job_id, ref

    def done(self) -> None:
        """Mark the last event taken as routed and unregister the list, taking nothing more."""
        self._finish(self.last)

    def release(self, job_id: str) -> None:
        """Give one taken job back to the queue, to run as a job of its own."""
        if job_id == self.last:
            self.last = ""
        self.conn.eval(_RELEASE, 3, RQ_QUEUE, self.held, keys.solo(job_id), job_id, SOLO_TTL)

    def give_back(self) -> int:
        """Return every job still held to the head of the queue and unregister the list; how
        many jobs there were."""
        return self._finish("")

    def _finish(self, last: str) -> int:
        self.last = ""
        return int(self.conn.eval(_FINISH, 3, RQ_QUEUE, self.held, keys.TAKEN, last, RQ_JOB))


def reclaim(conn: "Redis", now: float) -> int | None:
    """Give back to the head of the queue every registered taken list whose holder is not
    running its job any more (its worker died, or runs another job: :func:`config.keys.worker`)
    or is past its deadline, whatever RQ decided about that job, and unregister it; how many
    jobs went back, or ``None`` when another worker looked less than :data:`RECLAIM_LOCK`
    seconds ago. Raises ``RedisError``."""
    lock_ms = int(RECLAIM_LOCK * 1000)
    args = (now, lock_ms, keys.worker(""))
    given = int(conn.eval(_RECLAIM, 3, keys.TAKEN, RQ_QUEUE, keys.TAKEN_LOCK, *args))
    return None if given < 0 else given


def _route_ref(data: bytes) -> str | None:
    """The event ref of a route job's stored data (RQ compresses what it writes itself; the
    receiver's jobs are plain JSON), or ``None`` for anything else."""
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data
    try:
        func, _instance, args, kwargs = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if func != keys.ROUTE_TASK or kwargs or len(args) != 1 or not isinstance(args[0], str):
        return None
    return args[0]
