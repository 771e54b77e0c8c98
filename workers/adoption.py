"""Route jobs that a running route job takes from the queue to run itself.

RQ's bookkeeping costs a route job more than the routing does (about thirty Redis round trips
a job, one at a time), so under load a route job, once its own event is routed, takes the
route jobs waiting at the head of the queue and routes their events in turn, for a couple of
seconds at most. One event is taken at a time, in queue order, so the events of one flow are
routed in the order they arrived, as a lone worker would.

What is taken is never only in a worker's memory: a taken job id moves from the queue to the
taker's own list (:func:`config.keys.adopted`) in the same script, and leaves it only when its
event has been routed, when its job hash is deleted as RQ deletes a finished job whose result
is not kept. A route job that fails or is stopped gives what it still holds back to the head
of the queue; one whose worker died does so when RQ's abandoned-job recovery runs it again.
An event whose routing raised goes back as a job of its own, marked (:func:`config.keys.solo`)
so that no route job takes it again: its own retries and dead letter then apply to it alone.
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

RQ_JOB = "rq:job:"
RQ_QUEUE = f"rq:queue:{keys.QUEUE}"

# KEYS: the queue, the taker's list. ARGV: the id routed last ('' for none), the route job id
# prefix, the list's ttl, RQ's job key prefix, the solo key prefix, the taken lists' prefix.
_TAKE = """
if ARGV[1] ~= '' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  redis.call('DEL', ARGV[4] .. ARGV[1])
end
local id = redis.call('LINDEX', KEYS[1], 0)
if not id or string.sub(id, 1, #ARGV[2]) ~= ARGV[2]
   or redis.call('EXISTS', ARGV[5] .. id) == 1 then
  return false
end
redis.call('LPOP', KEYS[1])
-- a route job re-run after its worker died may still hold jobs it took: they go back first
while redis.call('RPOPLPUSH', ARGV[6] .. id, KEYS[1]) do end
redis.call('RPUSH', KEYS[2], id)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {id, redis.call('HGET', ARGV[4] .. id, 'data') or ''}
"""

# KEYS: the queue, the taker's list. ARGV: the id routed last, RQ's job key prefix.
_TAKE_LAST_ONLY = """
redis.call('LREM', KEYS[2], 1, ARGV[1])
redis.call('DEL', ARGV[2] .. ARGV[1])
return 1
"""

# KEYS: the queue, the taker's list. Back to the head of the queue, in their order.
_GIVE_BACK = """
local n = 0
while redis.call('RPOPLPUSH', KEYS[2], KEYS[1]) do n = n + 1 end
return n
"""

# KEYS: the queue, the taker's list, the solo key. ARGV: the job id, the solo key's ttl.
_RELEASE = """
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 1 then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
return 1
"""


class Taker:
    """What one running route job takes from the queue; ``ttl`` keeps its list past the job's
    own life, so that a retry of the job finds it."""

    def __init__(self, conn: "Redis", job_id: str, ttl: float) -> None:
        self.conn = conn
        self.held = keys.adopted(job_id)
        self.ttl = int(ttl)
        self.last = ""

    def take(self) -> tuple[str, str | None] | None:
        """Mark the last event taken as routed and take the next: ``(job id, event ref)``,
        the ref ``None`` for a job that is not a plain route job (given back at once), or
        ``None`` when the head of the queue holds no route job to take."""
        last, self.last = self.last, ""
        args = (last, keys.ROUTE_JOB_PREFIX, self.ttl, RQ_JOB, keys.solo(""), keys.adopted(""))
        taken = self.conn.eval(_TAKE, 2, RQ_QUEUE, self.held, *args)
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
        """Mark the last event taken as routed, taking nothing more."""
        if self.last:
            self.conn.eval(_TAKE_LAST_ONLY, 2, RQ_QUEUE, self.held, self.last, RQ_JOB)
            self.last = ""

    def release(self, job_id: str) -> None:
        """Give one taken job back to the queue, to run as a job of its own."""
        if job_id == self.last:
            self.last = ""
        self.conn.eval(_RELEASE, 3, RQ_QUEUE, self.held, keys.solo(job_id), job_id, SOLO_TTL)

    def give_back(self) -> int:
        """Return every job still held to the head of the queue; how many there were."""
        self.last = ""
        return int(self.conn.eval(_GIVE_BACK, 2, RQ_QUEUE, self.held))


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
