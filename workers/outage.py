"""A Redis outage as the worker lives through it: said once when it begins and once when it
ends (with how long it lasted), counted, and waited out with capped exponential backoff plus
jitter, while SIGTERM and SIGINT still stop the worker.

Only the Redis location that is safe to log (``host:port/db``) and the error's class name are
logged: a redis-py message may quote more than the operator needs.
"""

import logging
import random
import signal
import threading
import time
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError

from workers.metrics import WorkerMetrics

log = logging.getLogger("flowhooks.worker")

FIRST_WAIT = 0.5
MAX_WAIT = 10.0
SETTLED = 30.0
"""Seconds of work after which an outage starts its backoff afresh: one that follows sooner (a
Redis that answers PING but fails the work, say a demoted primary) goes on where the last
one's backoff stopped rather than probing twice a second."""


def backoff(attempt: int) -> float:
    """The wait before probe ``attempt`` (0, 1, …): doubling from :data:`FIRST_WAIT` up to
    :data:`MAX_WAIT`, the upper half of it drawn at random so that workers spread out."""
    ceiling = min(MAX_WAIT, FIRST_WAIT * 2 ** min(attempt, 16))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (spreading, not secrecy)


class Outage:
    """Waits for ``probe`` (a client with short timeouts) to answer again."""

    def __init__(self, probe: Redis, location: str, metrics: WorkerMetrics) -> None:
        self.probe = probe
        self.location = location
        self.metrics = metrics
        self._stop = threading.Event()
        self._attempt = 0
        self._back_at = -SETTLED

    def wait(self, cause: RedisError) -> bool:
        """Report the outage ``cause`` began, then wait until Redis answers: ``True`` when it
        does, ``False`` when the worker was asked to stop meanwhile."""
        began = time.monotonic()
        self.metrics.redis_reconnects.inc()
        log.error(
            "Redis unreachable, reconnecting",
            extra={"redis": self.location, "reason": type(cause).__name__},
        )
        previous = {
            sig: signal.signal(sig, self._stopping) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            attempt = self._attempt if began - self._back_at < SETTLED else 0
            while not self._stop.wait(backoff(attempt)):
                attempt += 1
                if self._answers():
                    self._attempt, self._back_at = attempt, time.monotonic()
                    log.info(
                        "Redis reachable again",
                        extra={
                            "redis": self.location,
                            "down_s": round(time.monotonic() - began, 1),
                        },
                    )
                    return True
            return False
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _answers(self) -> bool:
        try:
            self.probe.ping()
        except RedisError:
            return False
        return True

    def _stopping(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()
