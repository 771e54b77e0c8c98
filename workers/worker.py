"""The worker's composition root: ``run(settings, config)`` serves the ``flowhooks`` queue.

Jobs run in the worker process (RQ's ``SimpleWorker``): no fork per job, which on this kind of
work costs more than the job, and the metrics the jobs count are the ones the endpoint serves.
RQ's scheduler runs in a thread of the same process (:mod:`workers.scheduler`), so nothing of a
worker outlives it.

A job's time limit is RQ's (SIGALRM): ``FLOWHOOKS_JOB_TIMEOUT``, or a route job's own
(:data:`config.routejobs.TIMEOUT`). A thread refreshes what says the worker is alive
(:mod:`workers.liveness`): the started entry of a running job expires 15 s after its worker
died, whereupon RQ's abandoned-job recovery, which a worker runs every
``FLOWHOOKS_MAINTENANCE_INTERVAL``, runs the job again at once (jobs carry retries); the
deliveries it had finished are not redone. The route jobs a dead route job had taken go back
to the queue within seconds (:func:`workers.adoption.reclaim`).

A thread drains the lanes of the actions that must wait (:mod:`workers.drain`): a paced or
failing destination never holds a job.

Redis going away does not end a worker: :func:`run` waits for it (:mod:`workers.outage`) and
works again under the same name. With ``--metrics-port`` the worker serves its metrics and
``/healthz`` (:func:`serve_metrics`), which fails once the liveness thread stops beating.
"""

import json
import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from uuid import uuid4
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app
from redis import Redis, RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, SimpleWorker, worker_registration
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker.base import WorkerStatus

from config import executions, keys
from config.connections import connect
from config.schema import Config
from config.settings import Settings
from workers import context, expectations, liveness, tasks
from workers.drain import Drainer
from workers.etlworks import reconcile
from workers.liveness import Liveness
from workers.metrics import DeadLetters, Lanes, WorkerMetrics
from workers.outage import Outage
from workers.scheduler import ThreadScheduler

log = logging.getLogger("flowhooks.worker")

HEARTBEAT_EVERY = 1.0
"""The least time between two of RQ's own heartbeats outside a job's bookkeeping."""
SIDE_CLIENT: dict[str, Any] = {
    "socket_timeout": 2.0,
    "socket_connect_timeout": 2.0,
    "retry": Retry(NoBackoff(), 0),
}
"""Options of the clients that beat, probe and schedule: they try again on their own, and a
command that hangs must not hold them (nor SIGTERM) for long."""

# Deletes the maintenance lock only while it is this worker's.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLost(StopRequested):
    """Redis failed under RQ's work loop: the loop stops (as on a stop request, quietly) and
    :func:`run` waits for Redis before working again."""


class Worker(SimpleWorker):
    """RQ's SimpleWorker with liveness kept by a thread (:mod:`workers.liveness`), its
    scheduler in a thread, a maintenance lock that lapses within one interval, and a work loop
    that stops, rather than fails, when Redis does (:attr:`lost`)."""

    liveness: Liveness | None = None
    lost: RedisError | None = None
    """The Redis error that stopped the work loop, if one did."""
    _beat_at = 0.0

    @contextmanager
    def _watching_redis(self) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            self.lost = exc
            raise RedisLost() from exc

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ beats three times a job, three round trips each, around every dequeue; under
        load one beat a second keeps the worker's key (which lives a minute and more) alive
        just as well. Beats with a timeout or inside a pipeline (a job's start) always go."""
        beat = time.monotonic()
        if timeout is None and pipeline is None and beat - self._beat_at < HEARTBEAT_EVERY:
            return
        self._beat_at = beat
        with self._watching_redis():
            super().heartbeat(timeout, pipeline)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a job's started entry and execution records live unrefreshed: the
        liveness thread refreshes them while the job runs, however long it may run."""
        return liveness.STARTED_TTL

    def check_for_suspension(self, burst: bool) -> None:
        with self._watching_redis():
            super().check_for_suspension(burst)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        with self._watching_redis():
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """RQ's SimpleWorker's, with the job's run told to the liveness thread."""
        with self._watching_redis():
            execution = self.prepare_execution(job)
            if self.liveness is not None:
                self.liveness.begin(job.id, execution)
            try:
                self.perform_job(job, queue, execution)
            finally:
                if self.liveness is not None:
                    self.liveness.end()
            self.set_state(WorkerStatus.IDLE)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry, execution: Execution
    ) -> None:
        """RQ's, once the job is cleared of the records of a run whose worker died (see
        :mod:`config.executions`): a success is a success."""
        executions.forget_dead(self.connection, job.id)
        super().handle_job_success(job, queue, started_job_registry, execution)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm shutdown: the current job finishes, but takes no more route jobs."""
        context.current().stopping = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance, then the join windows that closed incomplete (``on_expire``) and
        the expectations' deadlines (:mod:`workers.expectations`)."""
        with self._watching_redis():
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
        try:
            expectations.evaluate(
                self.connection,
                ctx.config,
                datetime.now(UTC),
                retention=ctx.settings.event_retention,
                metrics=ctx.metrics,
            )
        except RedisError:
            log.exception("judging expectations failed; the next maintenance tries again")
        try:
            reconcile.maintain(self.connection, ctx, self.name)
        except RedisError:
            log.exception("reconciling failed; the next maintenance tries again")

    def clean_registries(self) -> None:
        """RQ's registry cleaning (abandoned-job recovery among it), under a lock that lapses
        after one maintenance interval rather than RQ's 899 s, and is released even when the
        cleaning fails: a worker that dies inside it holds back the others' for one interval
        at most."""
        for queue in self.queues:
            lock = queue.registry_cleaning_key
            if not self.connection.set(lock, self.name, nx=True, ex=self.maintenance_interval):
                continue
            try:
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
            finally:
                with suppress(RedisError):
                    self.connection.eval(_UNLOCK, 1, lock, self.name)
        self.last_cleaned_at = now()  # type: ignore[assignment]

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = "",
        log_format: str = "",
    ) -> None:
        """RQ's scheduler, in a thread (:mod:`workers.scheduler`); in burst mode it queues what
        is due once, if it gets the lock."""
        scheduler = ThreadScheduler(
            self.queues,
            connect(context.current().settings, **SIDE_CLIENT),
            self.name,
            serializer=self.serializer,
            logging_level=logging_level or "INFO",
        )
        self.scheduler = scheduler
        if not burst:
            scheduler.start()
            return
        if scheduler.acquire_locks():  # type: ignore[no-untyped-call]
            try:
                scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                scheduler.release_locks()  # type: ignore[no-untyped-call]

    def stop_scheduler(self) -> None:
        scheduler = self.scheduler
        if isinstance(scheduler, ThreadScheduler):
            scheduler.request_stop()
            scheduler.join(5.0)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """RQ's command channel waits for Redis quietly: the main loop reports the outage."""
        if not isinstance(exc, RedisError):
            raise exc
        time.sleep(2.0)

    def unsubscribe(self) -> None:
        """RQ's, without a command to a Redis that may be gone (closing the channel ends it)."""
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop()
            self.pubsub_thread.join(timeout=1)

    def teardown(self) -> None:
        """RQ's, except that a worker that lost Redis does not register its death (it comes
        back under the same name: :func:`run` clears what it left)."""
        self.stop_scheduler()
        self.unsubscribe()
        if self.lost is None:
            self.register_death()  # type: ignore[no-untyped-call]


def run(
    settings: Settings,
    config: Config,
    *,
    burst: bool = False,
    name: str | None = None,
    metrics_port: int | None = None,
) -> bool:
    """Work the queue until stopped (SIGTERM finishes the current job first: RQ's warm
    shutdown), through Redis outages. One worker in each group also runs RQ's scheduler; RQ's
    lock keeps it to one. A burst worker stops at a Redis error (raises ``RedisError``)."""
    logging.getLogger("rq.worker").addFilter(_no_reconnect_chatter)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    worker_context = context.WorkerContext(settings, config, metrics)
    context.install(worker_context)
    signal.signal(signal.SIGHUP, lambda signum, frame: _reload(worker_context, frame))
    connection = connect(settings)
    name = name or uuid4().hex
    side = connect(settings, **SIDE_CLIENT)
    # as long as RQ's own heartbeat keeps the worker's key: its worker_ttl plus a minute
    beating = Liveness(side, name, worker_ttl=_worker_ttl(settings) + 60, queue=keys.QUEUE)
    beating.start()
    drainer = Drainer(connect(settings, **SIDE_CLIENT), name, worker_context)
    drainer.start()
    if metrics_port is not None:
        registry.register(DeadLetters(connection))
        registry.register(Lanes(connection, lambda: _notifiers(worker_context)))
        serve_metrics(metrics_port, registry, beating)
    outage = Outage(side, settings.redis_location, metrics)
    try:
        returning = False
        while True:
            worked, lost = _work(settings, connection, name, beating, burst, returning=returning)
            if lost is None:
                return worked
            if burst:
                raise lost
            if worker_context.stopping or not outage.wait(lost):
                return False
            returning = True
    finally:
        drainer.stop()
        beating.stop()


def _notifiers(worker_context: context.WorkerContext) -> list[str]:
    """The actions that have lanes: every one but the Etlworks actions."""
    actions = worker_context.config.actions
    return [name for name, action in actions.items() if action.etlworks is None]


def serve_metrics(port: int, registry: CollectorRegistry, beating: Liveness) -> WSGIServer:
    """Serve, from a thread, the metrics of ``registry`` on ``port`` (any path, as
    prometheus_client does) and ``/healthz``: 200 while ``beating`` beats, else 503, which is
    what Kubernetes' liveness probe of a worker asks (it never reads Redis: an outage does not
    restart the workers). The server is returned, for a caller that wants to stop it."""
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            page: Iterable[bytes] = metrics(environ, start_response)
            return page
        now = time.monotonic()
        alive = beating.beating(now)
        last = beating.last_beat
        body = json.dumps(
            {
                "status": "ok" if alive else "not beating",
                "last_beat_seconds_ago": None if last is None else round(now - last, 1),
            }
        ).encode()
        status = "200 OK" if alive else "503 Service Unavailable"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]

    server = make_server("0.0.0.0", port, app, _MetricsServer, _QuietHandler)  # noqa: S104
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not logged: one every few seconds says nothing."""


def _work(
    settings: Settings,
    connection: Redis,
    name: str,
    beating: Liveness,
    burst: bool,
    *,
    returning: bool,
) -> tuple[bool, RedisError | None]:
    """Run RQ's work loop as worker ``name`` until it ends: whether it ran a job, and the Redis
    error that ended it, if one did. A worker ``returning`` after an outage first clears what
    it left registered under its name (RQ refuses to start a living twin)."""
    queue = Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)
    try:
        worker = Worker(
            [queue],
            connection=connection,
            serializer=JSONSerializer,
            name=name,
            maintenance_interval=int(settings.maintenance_interval),
            worker_ttl=_worker_ttl(settings),
        )
        worker.liveness = beating
        if returning:
            worker.register_death()  # type: ignore[no-untyped-call]
        log.info("worker ready", extra={"redis": settings.redis_location, "queue": keys.QUEUE})
        worked = worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
    except RedisError as exc:
        return False, exc
    return worked, worker.lost


def _worker_ttl(settings: Settings) -> int:
    """RQ's worker_ttl: an idle worker waits for a job 15 s less than this, so its maintenance
    runs on time."""
    return int(settings.maintenance_interval) + 15


def _no_reconnect_chatter(record: logging.LogRecord) -> bool:
    """Drops RQ's line for each failed attempt to reach Redis while idle: the outage is told
    once, by :mod:`workers.outage`."""
    return not str(record.msg).startswith("Worker %s: could not connect to Redis")


def _reload(worker_context: context.WorkerContext, frame: FrameType | None) -> None:
    worker_context.request_reload()
