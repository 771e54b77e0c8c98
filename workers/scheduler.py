"""RQ's scheduler (it queues the jobs due: delivery retries, digests, polls) in a thread of the
worker process rather than a forked process of its own, so that nothing of a worker outlives
it: a SIGKILL of the worker's one process takes the scheduler with it.

RQ's lock still keeps one scheduler active per queue; the others look for the lock every
:data:`REACQUIRE_EVERY` seconds and take it over once the active one's lapses. The thread uses
a Redis client of its own, made the way every client is (:func:`config.connections.connect`),
and outlives Redis errors: it logs them at debug level (the worker's main loop reports an
outage) and tries again after :data:`RETRY_AFTER` seconds.
"""

import logging
import threading
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.scheduler import RQScheduler

log = logging.getLogger("flowhooks.worker")

REACQUIRE_EVERY = 10.0
"""Seconds between two looks for the scheduler lock by a scheduler that does not hold it."""
RETRY_AFTER = 2.0
"""Seconds a scheduler waits after a Redis error."""


class ThreadScheduler(RQScheduler):
    """An :class:`~rq.scheduler.RQScheduler` run by :meth:`start` in a daemon thread, stopped
    by :meth:`request_stop` (a thread installs no signal handler). Its name is its worker's,
    so a worker that reconnects after an outage refreshes the lock it held rather than
    waiting for it to lapse."""

    def __init__(self, queues: Sequence[Queue], connection: Redis, name: str, **options: Any):
        super().__init__(queues, connection=connection, name=name, **options)
        self._own = connection
        self._stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def connection(self) -> Redis:
        return self._own

    @property
    def should_reacquire_locks(self) -> bool:
        if self._queue_names == self.acquired_locks:
            return False
        acquired_at: datetime | None = self.lock_acquisition_time
        return (
            acquired_at is None or (datetime.now() - acquired_at).total_seconds() > REACQUIRE_EVERY
        )

    def start(self) -> threading.Thread:
        self._status = self.Status.STARTED
        self._stopping.clear()
        self._stop_requested = False
        self.thread = threading.Thread(target=self.work, name="rq-scheduler", daemon=True)
        self.thread.start()
        return self.thread

    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        self._stop_requested = True
        self._stopping.set()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _install_signal_handlers(self) -> None:
        """None: signals reach the worker's main thread, which stops this one."""

    def work(self) -> None:
        """Queue the jobs that are due every second until stopped, holding the lock or
        looking for it; a Redis error waits :data:`RETRY_AFTER` seconds."""
        born = False
        while not self._stop_requested:
            try:
                if not born:
                    self.register_birth()
                    born = True
                if self.should_reacquire_locks:
                    self.acquire_locks()  # type: ignore[no-untyped-call]
                self.heartbeat()  # type: ignore[no-untyped-call]
                if self.acquired_locks:
                    self.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
                wait = float(self.interval)
            except RedisError as exc:
                log.debug("scheduler: Redis failed", extra={"reason": type(exc).__name__})
                wait = RETRY_AFTER
            self._stopping.wait(wait)
        with suppress(RedisError):  # the lock lapses by itself
            self.stop()  # type: ignore[no-untyped-call]
