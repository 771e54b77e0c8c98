"""An event's route job queued again: a replay (the admin API's
``POST /api/events/{source}/{id}/replay``).

The job keeps the event's deterministic id (:func:`config.keys.route_job_id`): an old job under
that id that finished, failed or was stopped is deleted first, so nothing of its run (its failed
result, its place in the dead-letter registry) is mixed into the new one. A job still queued or
running is left alone (:class:`Busy`).

The route job re-plans the event with the rules in force, and every delivery it plans checks its
``delivered`` key: what succeeded before is not sent again. ``force`` deletes those keys first,
for every delivery the event's timeline names (a delivery id is derived from the event, the route
and the action, so it cannot be known from the event alone; the timeline records each one that
was attempted). Suppressions still apply: a silence, a mute interval or an open incident's repeat
interval holds a forced replay back as it would the first routing.

Every function takes a synchronous Redis connection and may raise ``RedisError``.
"""

from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, Retry
from rq.queue import Queue
from rq.serializers import JSONSerializer

from config import eventlog, executions, keys

TIMEOUT = 60.0
"""A route job's time limit, wherever it is queued (the receiver, replays, synthetic events):
its own event's first attempts, run concurrently and each bounded by its action's timeout, then
two seconds of the events it takes (:mod:`workers.adoption`). A slow event it took goes back
to the queue as a job of its own when the limit is reached. ``FLOWHOOKS_JOB_TIMEOUT`` is for
the other jobs (retries, digests, polls), which may wait on one slow service."""

PENDING = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
"""States of a job that will still run (or is running): a replay waits for it."""


class Busy(Exception):
    """The event's route job is queued or running: it will route the event anyway."""


@dataclass(frozen=True)
class Replayed:
    job_id: str
    forgotten: tuple[str, ...]
    """Delivery ids whose ``delivered`` mark a forced replay removed."""


def delivery_ids(timeline: list[dict[str, Any]]) -> list[str]:
    """Every delivery the timeline names, in the order it first appears."""
    found = (entry.get("delivery_id") for entry in timeline)
    return list(dict.fromkeys(d for d in found if isinstance(d, str) and d))


def replay(
    conn: "Redis",
    stored: eventlog.StoredEvent,
    *,
    force: bool,
    failure_ttl: float,
    retry: Retry,
) -> Replayed:
    """Queue the event's route job again (see the module); raise :class:`Busy`."""
    job_id = keys.route_job_id(stored.ref)
    try:
        old: Job | None = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
    except NoSuchJobError:
        old = None
    if old is not None and old.get_status(refresh=False) in PENDING:
        raise Busy(f"the route job of {stored.ref} is queued or running")
    forgotten = tuple(delivery_ids(stored.timeline)) if force else ()
    if old is not None:
        executions.forget_dead(conn, job_id)  # else deleting the old job may raise
    with conn.pipeline() as pipe:
        if forgotten:
            pipe.delete(*(keys.delivered(d) for d in forgotten))
        if old is not None:
            old.delete(pipeline=pipe)
        eventlog.append(pipe, stored.ref, "replayed", force=force, forgotten=list(forgotten))
        pipe.execute()
    queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)
    queue.enqueue(
        keys.ROUTE_TASK,
        stored.ref,
        job_id=job_id,
        job_timeout=int(TIMEOUT),
        result_ttl=0,
        failure_ttl=int(failure_ttl),
        retry=retry,
    )
    return Replayed(job_id, forgotten)
