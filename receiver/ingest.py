"""The durable write: dedupe, store and enqueue each event in one Redis round trip, shared by the
requests in flight (group commit).

One Lua script looks at the dedup keys of a round trip's events (one ``MGET``) and writes,
for each new one, its record, the first entry of its timeline and its RQ route job; then the
new events' places in the time index and in RQ's queue (one ``ZADD`` and one ``RPUSH`` for
all), and last their dedup keys. Redis runs the script without interleaving other clients;
should it stop half-way, no dedup key is written, the requests fail, and the senders' retries
write it all again.

Requests that arrive while a round trip is in flight wait for the next one and share it: under
load a round trip carries many events, and a lone request pays for one round trip, never for a
timer.

:meth:`EventWriter.write` returns only after Redis has applied the script; the caller answers
2xx only then. A Redis error or a round trip slower than the deadline raises
:class:`Unavailable` in every request of that round trip and in every request waiting behind
it, so no request waits much longer than one deadline; past :data:`MAX_PENDING` waiting
events, new ones are refused at once.

With ``min_replicas``, it returns only once that many replicas have what the round trip wrote
(``WAIT``, right after the script on the same connection: Lua cannot ``WAIT``), duplicates
included: the first acceptance of a duplicate may not have reached them yet. Fewer replicas
within ``replica_wait`` raise :class:`Unreplicated`, the same way.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from config import keys
from config.events import Event
from receiver import jobs

log = logging.getLogger("flowhooks.receiver")

WRITE_EVENTS = """
local retention, dedup_ms = %(retention)s, %(dedup_ms)s
local prefix, queue, index = %(prefix)s, %(queue)s, %(index)s
local task, job_prefix = %(task)s, %(job_prefix)s
local now_ms, now_rq = ARGV[1], ARGV[2]  -- text: a Lua number would be formatted per use
local n = (#ARGV - 2) / 3
-- Which events are new: one MGET of their dedup keys; an id twice in a batch is new once.
local dedups = {}
for e = 1, n do dedups[e] = prefix .. ':dedup:' .. ARGV[e * 3] end
local seen, taken, new, scored, queued, out = redis.call('MGET', unpack(dedups)), {}, {}, {}, {}, {}
for e = 1, n do
  local o = e * 3
  local ref = ARGV[o]
  if seen[e] or taken[ref] then
    out[e] = 0
  else
    taken[ref] = true
    local timeline, job = prefix .. ':timeline:' .. ref, job_prefix .. redis.sha1hex(ref)
    -- A timeline or route job left from an earlier acceptance of this event is replaced, not
    -- merged into.
    redis.call('DEL', timeline, 'rq:job:' .. job)
    redis.call('SET', prefix .. ':event:' .. ref, ARGV[o + 1], 'EX', retention)
    redis.call('RPUSH', timeline, ARGV[o + 2])
    redis.call('EXPIRE', timeline, retention)
    -- The route job, as RQ's Job.to_dict writes it; RQ reads an uncompressed `data` as is.
    local arg = cjson.encode(ref)
    redis.call('HSET', 'rq:job:' .. job, 'data', '["' .. task .. '", null, [' .. arg .. '], {}]',
               'description', task .. '(' .. arg .. ')', 'created_at', now_rq,
               'enqueued_at', now_rq, %(template)s)
    new[#new + 1] = ref
    scored[#scored + 1] = now_ms
    scored[#scored + 1] = ref
    queued[#queued + 1] = job
    out[e] = 1
  end
end
if #new > 0 then
  redis.call('ZADD', index, unpack(scored))
  redis.call('RPUSH', queue, unpack(queued))
  -- Last: a script that failed half-way leaves no dedup key to turn the retry into a
  -- "duplicate" of an event that was never stored.
  for _, ref in ipairs(new) do
    redis.call('SET', prefix .. ':dedup:' .. ref, ref, 'PX', dedup_ms)
  end
end
redis.call('SADD', 'rq:queues', queue)
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(now_ms) - retention * 1000))
return out
"""
"""The write script, with ``%(name)s`` where :func:`write_script` puts a writer's constants as
Lua literals: a round trip's arguments are its time and its events alone (``ref``, record and
first timeline entry each), so it sends, and Redis parses, only what differs."""

RQ_QUEUE_KEY = f"rq:queue:{keys.QUEUE}"
REPLICATION_MARK = f"{keys.PREFIX}:replicated"
"""A channel nobody listens to: a message to it is replicated and stored nowhere."""
MAX_PENDING = 10_000
"""Events waiting for a round trip beyond which a request is answered 503 at once."""


def first_entry(at: str, verified: list[str], remote: str | None) -> str:
    """The ``received`` entry the receiver starts a timeline with, as :meth:`EventWriter.write`
    serializes ``{"at": at, "stage": "received", "verified": verified, "remote": remote}``,
    written out: ``json.dumps`` of a dict builds an encoder per call, which costs more than the
    rest of the entry (``_quote`` is the one it uses for a string)."""
    checks = ", ".join(map(_quote, verified))
    host = "null" if remote is None else _quote(remote)
    return f'{{"at": {_quote(at)}, "stage": "received", "verified": [{checks}], "remote": {host}}}'


def write_script(
    dedup_ttl: float, retention: float, job_template: Mapping[str, str | bytes | int]
) -> str:
    """:data:`WRITE_EVENTS` for a writer: its TTLs, the key layout and the route job's fields
    that are the same for every event (:func:`receiver.jobs.template`)."""
    fields = ", ".join(_lua(v) for kv in job_template.items() for v in kv)
    return WRITE_EVENTS % {
        "retention": _lua(int(retention)),
        "dedup_ms": _lua(int(dedup_ttl * 1000)),
        "prefix": _lua(keys.PREFIX),
        "queue": _lua(RQ_QUEUE_KEY),
        "index": _lua(keys.EVENT_INDEX),
        "task": _lua(keys.ROUTE_TASK),
        "job_prefix": _lua(keys.ROUTE_JOB_PREFIX),
        "template": fields,
    }


_LUA_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:-[]")


def _lua(value: str | bytes | int) -> str:
    """A Lua string literal of ``value``'s bytes (its decimal text for an int): every byte
    but letters, digits and a few marks as a ``\\ddd`` escape, so no value can end it."""
    raw = str(value).encode() if isinstance(value, int) else value
    raw = raw.encode() if isinstance(raw, str) else raw
    return '"' + "".join(chr(b) if b in _LUA_PLAIN else f"\\{b:03d}" for b in raw) + '"'


class Unavailable(Exception):
    """Redis could not be written in time; nothing was acknowledged (answer 503)."""


class Unreplicated(Unavailable):
    """Fewer replicas than required confirmed the write in time: not acknowledged (503).
    The sender's retry finds its event stored, a duplicate, and waits for the replicas
    again before its 200."""


@dataclass(slots=True)
class _Pending:
    ref: str
    args: tuple[str | bytes, ...]
    done: "asyncio.Future[bool]"


class EventWriter:
    """Group commit of events. ``on_commit`` hears of every round trip that succeeded, with a
    ``(ref, new)`` pair per event."""

    def __init__(
        self,
        redis: "Redis",
        *,
        dedup_ttl: float,
        retention: float,
        job_template: dict[str, str | bytes | int],
        deadline: float,
        max_batch: int = 256,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[list[tuple[str, bool]]], None] = lambda results: None,
        min_replicas: int = 0,
        replica_wait: float = 1.0,
    ) -> None:
        self._redis = redis
        self._source = write_script(dedup_ttl, retention, job_template)
        self._script = redis.register_script(self._source)
        self._deadline = deadline
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._clock = clock
        self._on_commit = on_commit
        self._min_replicas = min_replicas
        self._wait_ms = max(1, int(replica_wait * 1000))  # WAIT 0 would wait forever
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, event: Event, received: Mapping[str, object]) -> bool:
        """Write ``event`` with ``received`` as its first timeline entry; ``True`` if it is
        new, ``False`` if its id was accepted before. Raise :class:`Unavailable`."""
        ref = keys.ref(event.source, event.id)
        return await self.store(ref, event.model_dump_json(), json.dumps(received, default=str))

    async def store(self, ref: str, record: str | bytes, received: str | bytes) -> bool:
        """:meth:`write` for an event already serialized: ``record`` is the JSON of the event
        ``ref`` names, ``received`` that of its first timeline entry."""
        if len(self._pending) >= self._max_pending:
            raise Unavailable("backlog full")
        pending = _Pending(ref, (ref, record, received), asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await pending.done

    async def aclose(self) -> None:
        """Let the round trip in flight finish; fail whatever still waits."""
        if self._flusher is not None:
            await asyncio.wait([self._flusher], timeout=self._deadline)
        self._fail(self._pending, "the receiver is stopping")

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)
        except BaseException:  # cancelled: nothing may be left waiting for an answer
            self._fail(self._pending, "the receiver is stopping")
            raise
        finally:
            self._flusher = None

    async def _commit(self, batch: list[_Pending]) -> None:
        now = self._clock()
        args: list[str | bytes] = [
            str(int(now * 1000)),
            jobs.rq_time(datetime.fromtimestamp(now, UTC)),
        ]
        for pending in batch:
            args.extend(pending.args)
        try:
            async with asyncio.timeout(self._deadline):
                replies = await self._run(args, batch)
        except asyncio.CancelledError:
            self._fail(batch, "the receiver is stopping")
            raise
        except Exception as exc:
            # Redis is down, slow or refusing writes: the requests behind this batch would
            # only wait a deadline each to fail the same way, so they fail now too.
            if not isinstance(exc, RedisError | TimeoutError | Unreplicated):
                log.exception("event write failed")
            if isinstance(exc, Unreplicated):
                self._fail(batch + self._pending, str(exc), Unreplicated)
            else:
                self._fail(batch + self._pending, type(exc).__name__)
            self._pending.clear()
            return
        results = [(p.ref, bool(new)) for p, new in zip(batch, replies, strict=True)]
        for pending, (_, new) in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(new)
        try:
            self._on_commit(results)
        except Exception:
            log.exception("on_commit failed")

    async def _run(self, args: list[str | bytes], batch: list[_Pending]) -> list[int]:
        """The script's replies; raise ``RedisError``, or :class:`Unreplicated`."""
        if not self._min_replicas:
            replies: list[int] = await self._script(args=args)
            return replies
        for _ in range(2):
            pipe = self._redis.pipeline(transaction=False)  # one connection, one round trip
            pipe.evalsha(self._script.sha, 0, *args)
            # WAIT counts the replicas that reached this connection's mark in the replication
            # stream. Redis 6.2 and 7.0 move the mark with every command; where only a write
            # moves it, a batch of duplicates (which writes nothing) would wait for nothing.
            # A PUBLISH is replicated and stored nowhere: the mark passes the first
            # acceptance of every event in the batch either way.
            pipe.publish(REPLICATION_MARK, b"")
            pipe.wait(self._min_replicas, self._wait_ms)
            replies, _, acked = await pipe.execute(raise_on_error=False)
            if not isinstance(replies, NoScriptError):
                break
            # Scripts are not replicated: a replica promoted by a failover has never seen it.
            await self._redis.script_load(self._source)
        for reply in (replies, acked):
            if isinstance(reply, Exception):
                raise reply
        if acked < self._min_replicas:
            extra = {"replicas": acked, "required": self._min_replicas}
            log.warning(
                "events not replicated in time",
                extra={**extra, "events": [p.ref for p in batch]},
            )
            raise Unreplicated(f"replicated to {acked} of {self._min_replicas} replicas")
        return replies

    @staticmethod
    def _fail(waiting: list[_Pending], reason: str, kind: type[Unavailable] = Unavailable) -> None:
        for pending in waiting:
            if not pending.done.done():
                pending.done.set_exception(kind(reason))
