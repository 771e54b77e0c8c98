"""The worker's composition root: ``run(settings, config)`` serves the ``flowhooks`` queue.

Jobs run in the worker process (RQ's ``SimpleWorker``): no fork per job, which on this kind of
work costs more than the job, and the metrics the jobs count are the ones the endpoint serves.
A job's time limit is RQ's (SIGALRM, ``FLOWHOOKS_JOB_TIMEOUT``); a job that brings the process
down is found by RQ's abandoned-job recovery and run again (route jobs carry retries), and the
deliveries it had finished are not redone.
"""

import logging
import signal
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server
from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from config import keys
from config.schema import Config
from config.settings import Settings
from workers import context
from workers.metrics import WorkerMetrics

log = logging.getLogger("flowhooks.worker")


def run(
    settings: Settings,
    config: Config,
    *,
    burst: bool = False,
    name: str | None = None,
    metrics_port: int | None = None,
    maintenance_interval: int = 30,
) -> bool:
    """Work the queue until stopped (SIGTERM finishes the current job first: RQ's warm
    shutdown). One worker in each group also runs RQ's scheduler; RQ's lock keeps it to one."""
    registry = CollectorRegistry()
    worker_context = context.WorkerContext(settings, config, WorkerMetrics(registry))
    context.install(worker_context)
    signal.signal(signal.SIGHUP, lambda signum, frame: _reload(worker_context, frame))
    if metrics_port is not None:
        start_http_server(metrics_port, registry=registry)
    connection = Redis.from_url(settings.redis_url.get_secret_value())
    queue = Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)
    worker = SimpleWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=maintenance_interval,
    )
    log.info("worker ready", extra={"redis": settings.redis_location, "queue": keys.QUEUE})
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)


def _reload(worker_context: context.WorkerContext, frame: FrameType | None) -> None:
    worker_context.request_reload()
