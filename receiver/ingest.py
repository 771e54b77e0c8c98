"""The durable write: dedupe, store and enqueue each event in one Redis round trip, shared by
the requests in flight (group commit).

Each event costs one ``SET NX`` on its dedup key and, when new, its record, the first entry of
its timeline, its place in the time index and its RQ route job, all inside one Lua script, so
either Redis has all of it or the request fails. Requests that arrive while a round trip is in
flight wait for the next one and share it: under load a round trip carries many events, and a
lone request pays for one round trip, never for a timer.

:meth:`EventWriter.write` returns only after Redis has applied the script; the caller answers
2xx only then. A Redis error or a round trip slower than the deadline raises
:class:`Unavailable` in every request of that round trip; a request waits at most for the
round trip in flight and its own, so about twice the deadline.
"""

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from config import keys
from config.events import Event
from receiver import jobs

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
  if redis.call('SET', dedup, ref, 'NX', 'PX', dedup_ttl) then
    redis.call('SET', prefix .. ':event:' .. ref, ARGV[o + 2], 'EX', retention)
    local timeline = prefix .. ':timeline:' .. ref
    redis.call('RPUSH', timeline, ARGV[o + 3])
    redis.call('EXPIRE', timeline, retention)
    redis.call('ZADD', index, now_ms, ref)
    -- The route job, as RQ's Job.to_dict writes it; RQ reads an uncompressed `data` as is.
    local job, arg = job_prefix .. redis.sha1hex(ref), cjson.encode(ref)
    redis.call('HSET', 'rq:job:' .. job, 'data', '["' .. task .. '", null, [' .. arg .. '], {}]',
               'description', task .. '(' .. arg .. ')', 'created_at', now_rq,
               'enqueued_at', now_rq, unpack(template))
    redis.call('RPUSH', queue, job)
    out[e + 1] = ''
  else
    out[e + 1] = redis.call('GET', dedup) or ref
  end
end
redis.call('SADD', 'rq:queues', queue)
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (now_ms - retention * 1000))
return out
"""

RQ_QUEUE_KEY = f"rq:queue:{keys.QUEUE}"


class Unavailable(Exception):
    """Redis could not be written in time; nothing was acknowledged (answer 503)."""


@dataclass(frozen=True)
class Written:
    id: str
    """The event id; for a duplicate, the id of the event first accepted."""
    duplicate: bool


@dataclass
class _Pending:
    ref: str
    args: tuple[str | bytes, ...]
    done: "asyncio.Future[str]"


class EventWriter:
    """Group commit of events. ``on_commit`` hears of every round trip that succeeded, with a
    ``(ref, first ref)`` pair per event, the first ref empty for a new event."""

    def __init__(
        self,
        redis: "Redis",
        *,
        dedup_ttl: float,
        retention: float,
        job_template: dict[str, str | bytes | int],
        deadline: float,
        max_batch: int = 256,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[list[tuple[str, str]]], None] = lambda results: None,
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
        self._clock = clock
        self._on_commit = on_commit
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, event: Event, received: Mapping[str, object]) -> Written:
        """Write ``event`` with ``received`` as its first timeline entry; see the module doc."""
        ref = keys.ref(event.source, event.id)
        pending = _Pending(
            ref,
            (ref, event.model_dump_json(), json.dumps(received, default=str)),
            asyncio.get_running_loop().create_future(),
        )
        self._pending.append(pending)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        first = await pending.done
        if first:
            return Written(keys.split_ref(first)[1], duplicate=True)
        return Written(event.id, duplicate=False)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)
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
                replies = await self._script(args=args)
        except (RedisError, TimeoutError) as exc:
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(Unavailable(type(exc).__name__))
            return
        except BaseException:
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(Unavailable("the writer stopped"))
            raise
        results = [
            (p.ref, r.decode() if isinstance(r, bytes) else r)
            for p, r in zip(batch, replies, strict=True)
        ]
        for pending, (_, first) in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(first)
        self._on_commit(results)
