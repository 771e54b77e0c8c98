"""The worker's composition root: ``run(settings, config)`` serves the ``flowhooks`` queue.

Jobs run in the worker process (RQ's ``SimpleWorker``): no fork per job, which on this kind of
work costs more than the job, and the metrics the jobs count are the ones the endpoint serves.
A job's time limit is RQ's (SIGALRM, ``FLOWHOOKS_JOB_TIMEOUT``); a job whose worker died is
found by RQ's abandoned-job recovery within the job timeout plus a few seconds plus
``FLOWHOOKS_MAINTENANCE_INTERVAL`` and run again at once (jobs carry retries), and the
deliveries it had finished are not redone.
"""

import logging
import signal
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from redis import RedisError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from config import keys
from config.connections import connect
from config.schema import Config
from config.settings import Settings
from workers import context, tasks
from workers.metrics import DeadLetters, WorkerMetrics

log = logging.getLogger("flowhooks.worker")


HEARTBEAT_GRACE = 5
"""Seconds past a job's time limit after which RQ may take its worker for dead."""
HEARTBEAT_EVERY = 1.0
"""The least time between two of the worker's own heartbeats outside a job's bookkeeping."""


class Worker(SimpleWorker):
    """RQ's SimpleWorker, with a heartbeat that fits a job run in-process: RQ stops the job at
    its timeout (SIGALRM), so a started job whose heartbeat is older than its timeout plus a
    few seconds lost its worker, and RQ's maintenance re-runs it. (RQ allows 60 s more, made
    for forked work horses that report on their own.)"""

    _beat_at = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ beats three times a job, three round trips each, around every dequeue; under
        load one beat a second keeps the worker's key (which lives a minute and more) alive
        just as well. Beats with a timeout or inside a pipeline (a job's start) always go."""
        beat = time.monotonic()
        if timeout is None and pipeline is None and beat - self._beat_at < HEARTBEAT_EVERY:
            return
        self._beat_at = beat
        super().heartbeat(timeout, pipeline)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm shutdown: the current job finishes, but takes no more route jobs."""
        context.current().stopping = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance, then the join windows that closed incomplete (``on_expire``)."""
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        ctx = context.current()
        try:
            tasks.expire_joins(
                self.connection,
                ctx.config,
                datetime.now(UTC),
                ctx.settings.job_timeout,
                ctx.settings.event_retention,
            )
        except RedisError:
            log.exception("join expiry failed; the next maintenance tries again")

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            return int(job.timeout - working_time) + HEARTBEAT_GRACE
        return super().get_heartbeat_ttl(job, working_time)


def run(
    settings: Settings,
    config: Config,
    *,
    burst: bool = False,
    name: str | None = None,
    metrics_port: int | None = None,
) -> bool:
    """Work the queue until stopped (SIGTERM finishes the current job first: RQ's warm
    shutdown). One worker in each group also runs RQ's scheduler; RQ's lock keeps it to one."""
    registry = CollectorRegistry()
    worker_context = context.WorkerContext(settings, config, WorkerMetrics(registry))
    context.install(worker_context)
    signal.signal(signal.SIGHUP, lambda signum, frame: _reload(worker_context, frame))
    connection = connect(settings)
    if metrics_port is not None:
        registry.register(DeadLetters(connection))
        start_http_server(metrics_port, registry=registry)
    queue = Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)
    interval = int(settings.maintenance_interval)
    worker = Worker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=interval,
        # An idle worker waits for a job at most this long, so its maintenance runs on time.
        worker_ttl=interval + 15,
    )
    log.info("worker ready", extra={"redis": settings.redis_location, "queue": keys.QUEUE})
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)


def _reload(worker_context: context.WorkerContext, frame: FrameType | None) -> None:
    worker_context.request_reload()
