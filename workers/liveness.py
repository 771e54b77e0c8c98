"""A worker's liveness, refreshed every couple of seconds by a thread of its own, whatever the
worker's main thread is doing (a job may hold it for minutes):

- ``flowhooks:worker:{name}`` (:func:`config.keys.worker`) holds the id of the job the worker
  runs ('' when idle) and lives :data:`TTL` seconds: when it is gone the worker is, and the
  route jobs it had taken go back to the queue (:func:`workers.adoption.reclaim`, which this
  thread runs too, one worker at a time);
- the started-registry entry of the running job (RQ 3 keeps ``{job_id}:{execution_id}`` in
  ``rq:wip:flowhooks``, scored by expiry) and its execution records live :data:`STARTED_TTL`
  seconds: RQ's abandoned-job recovery finds the job of a dead worker that long after it died,
  however long the job was allowed to run, and never the job of a living one;
- the worker's own RQ key lives as long as RQ would have it live between two of its beats.

A Redis error never ends the thread: it is logged at debug level (the main loop is the one that
notices an outage and says so) and the next beat tries again. :meth:`Liveness.beating` says
whether the thread still goes round (``/healthz`` on the worker's metrics port answers with it):
a beat tried and refused by a Redis that is gone counts, since restarting the worker would not
bring Redis back; a thread that died or hangs does not.
"""

import logging
import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from rq.executions import Execution, ExecutionRegistry
from rq.registry import StartedJobRegistry

from config import keys
from workers import adoption

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("flowhooks.worker")

EVERY = 2.0
"""Seconds between two beats."""
TTL = 10
"""Seconds a worker's liveness key outlives its last beat."""
STARTED_TTL = 15
"""Seconds a running job's started entry and execution records outlive the last beat."""

# KEYS: the liveness key, the worker's RQ key, its RQ executions set, the started registry,
# the execution's hash, the job's execution registry. ARGV: the running job id, the liveness
# ttl, the RQ key's ttl, the started entry ('' when idle), its new score, the execution's ttl,
# the execution id, its new score in the job's execution registry.
_BEAT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if ARGV[4] ~= '' and redis.call('ZSCORE', KEYS[4], ARGV[4]) then
  redis.call('ZADD', KEYS[4], 'XX', ARGV[5], ARGV[4])
  redis.call('EXPIRE', KEYS[5], ARGV[6])
  redis.call('ZADD', KEYS[6], 'XX', ARGV[8], ARGV[7])
end
return 1
"""


class Liveness:
    """The beating thread of worker ``name`` (its RQ key lives ``worker_ttl`` seconds), on a
    Redis client of its own. :meth:`begin` and :meth:`end` bracket each job, from the main
    thread; the lock keeps a beat from writing what it read before the job changed."""

    def __init__(self, conn: "Redis", name: str, *, worker_ttl: int, queue: str) -> None:
        self.conn = conn
        self.name = name
        self.worker_ttl = worker_ttl
        self.started_key = StartedJobRegistry(queue, connection=conn).key
        self._job_id = ""
        self._execution: Execution | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)
        self.last_beat: float | None = None
        """``time.monotonic()`` when the thread last beat (or tried to, Redis failing); from
        :meth:`start` on, never ``None``."""

    def start(self) -> None:
        self.last_beat = time.monotonic()
        self._thread.start()

    def beating(self, now: float) -> bool:
        """Whether the thread runs and beat less than :data:`TTL` seconds before ``now`` (a
        ``time.monotonic()``): the age at which the others take the worker for dead."""
        beat = self.last_beat
        return self._thread.is_alive() and beat is not None and now - beat < TTL

    def stop(self) -> None:
        """Stop beating and forget the liveness key (best effort: it expires anyway)."""
        self._stop.set()
        self._thread.join(EVERY + 5)
        with suppress(RedisError):
            self.conn.delete(keys.worker(self.name))

    def begin(self, job_id: str, execution: Execution) -> None:
        """The worker runs ``job_id`` from now on; said in Redis before this returns, so that a
        route job that takes others is known to run (raises ``RedisError``)."""
        with self._lock:
            self._job_id, self._execution = job_id, execution
            self._beat()

    def end(self) -> None:
        """The job ended; the next beat says so (a job's end is not urgent: until then its
        taken list, empty by now, is only kept a little longer)."""
        with self._lock:
            self._job_id, self._execution = "", None

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            try:
                with self._lock:
                    self._beat()
                given = adoption.reclaim(self.conn, time.time())
            except RedisError as exc:
                log.debug("liveness beat failed", extra={"reason": type(exc).__name__})
                continue
            finally:
                self.last_beat = time.monotonic()
            if given:
                log.warning(
                    "route jobs taken by a stopped job went back to the queue",
                    extra={"jobs": given},
                )

    def _beat(self) -> None:
        execution = self._execution
        now = time.time()
        worker_key = f"rq:worker:{self.name}"
        if execution is None:
            entry = ""
            execution_keys = [self.started_key, worker_key, worker_key]
            execution_args: list[float | str] = [0, 0, "", 0]
        else:
            entry = execution.composite_key
            registry = ExecutionRegistry(execution.job_id, connection=self.conn)
            execution_keys = [self.started_key, execution.key, registry.key]
            # RQ scores an execution's own registry a minute past its expiry
            execution_args = [now + STARTED_TTL, STARTED_TTL, execution.id, now + STARTED_TTL + 60]
        self.conn.eval(
            _BEAT,
            6,
            keys.worker(self.name),
            worker_key,
            f"{worker_key}:executions",
            *execution_keys,
            self._job_id,
            TTL,
            self.worker_ttl,
            entry,
            *execution_args,
        )
