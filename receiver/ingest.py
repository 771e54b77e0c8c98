"""The durable write: dedupe, store and enqueue each event in one Redis round trip, shared by the
requests in flight (group commit).

Each event costs a look at its dedup key and, when new, its record, the first entry of its
timeline, its place in the time index, its RQ route job and last the dedup key, all inside one
Lua script. Redis runs the script without interleaving other clients; should it stop half-way,
the dedup key is not written, the request fails, and the sender's retry writes it all again.

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
local n, dedup_ttl, retention = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local now_ms, now_rq, prefix = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local queue, index, task, job_prefix = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local m = tonumber(ARGV[11])
local template = {}
for i = 1, 2 * m do template[i] = ARGV[11 + i] end
local base, out = 11 + 2 * m, {}
for e = 0, n - 1 do
  local o = base + e * 3
  local ref = ARGV[o + 1]
  local dedup = prefix .. ':dedup:' .. ref
  if redis.call('EXISTS', dedup) == 0 then
    redis.call('SET', prefix .. ':event:' .. ref, ARGV[o + 2], 'EX', retention)
    local timeline = prefix .. ':timeline:' .. ref
    redis.call('DEL', timeline)
    redis.call('RPUSH', timeline, ARGV[o + 3])
    redis.call('EXPIRE', timeline, retention)
    redis.call('ZADD', index, now_ms, ref)
    -- The route job, as RQ's Job.to_dict writes it; RQ reads an uncompressed `data` as is.
    -- A job left from an earlier acceptance of this event is replaced, not merged into.
    local job, arg = job_prefix .. redis.sha1hex(ref), cjson.encode(ref)
    redis.call('DEL', 'rq:job:' .. job)
    redis.call('HSET', 'rq:job:' .. job, 'data', '["' .. task .. '", null, [' .. arg .. '], {}]',
               'description', task .. '(' .. arg .. ')', 'created_at', now_rq,
               'enqueued_at', now_rq, unpack(template))
    redis.call('RPUSH', queue, job)
    -- Last: a script that failed half-way leaves no dedup key to turn the retry into a
    -- "duplicate" of an event that was never stored.
    redis.call('SET', dedup, ref, 'PX', dedup_ttl)
    out[e + 1] = 1
  else
    out[e + 1] = 0
  end
end
redis.call('SADD', 'rq:queues', queue)
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (now_ms - retention * 1000))
return out
"""

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
        self._script = redis.register_script(WRITE_EVENTS)
        self._dedup_ms = str(int(dedup_ttl * 1000))
        self._retention = str(int(retention))
        self._template = [
            str(v) if isinstance(v, int) else v for kv in job_template.items() for v in kv
        ]
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
            str(len(batch)),
            self._dedup_ms,
            self._retention,
            str(int(now * 1000)),
            jobs.rq_time(datetime.fromtimestamp(now, UTC)),
            keys.PREFIX,
            RQ_QUEUE_KEY,
            keys.EVENT_INDEX,
            keys.ROUTE_TASK,
            keys.ROUTE_JOB_PREFIX,
            str(len(self._template) // 2),
            *self._template,
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
            await self._redis.script_load(WRITE_EVENTS)
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
