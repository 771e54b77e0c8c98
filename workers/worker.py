"""The worker's composition root: ``run(settings, config)`` serves the ``flowhooks`` queue."""

import logging

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from config import keys
from config.schema import Config
from config.settings import Settings
from workers import context

log = logging.getLogger("flowhooks.worker")


def run(
    settings: Settings, config: Config, *, burst: bool = False, name: str | None = None
) -> bool:
    """Work the queue until stopped (SIGTERM finishes the current job first: RQ's warm
    shutdown). One worker in each group also runs RQ's scheduler; RQ's lock keeps it to one."""
    context.install(context.WorkerContext(settings, config))
    connection = Redis.from_url(settings.redis_url.get_secret_value())
    queue = Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)
    worker = Worker([queue], connection=connection, serializer=JSONSerializer, name=name)
    log.info("worker ready", extra={"redis": settings.redis_location, "queue": keys.QUEUE})
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
