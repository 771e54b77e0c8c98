"""The dead letters: deliveries and route jobs that failed for good, kept in RQ's failed-job
registry of the flowhooks queue. ``flowhooks dlq`` and the admin API (``/api/dlq``) list,
replay and delete them through this module.

Every function takes a synchronous Redis connection and may raise ``RedisError``.
"""

from contextlib import suppress
from typing import Any

from redis import Redis
from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from config import keys

DELIVER_TASK = "workers.tasks.deliver"
"""The task of a delivery's retry job (``workers.delivery.DELIVER_TASK``, named here by string
as the receiver names the route task)."""


class Missing(LookupError):
    """The job is not (or no longer) in the dead-letter registry; the message says which."""


def registry(conn: "Redis") -> FailedJobRegistry:
    queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)
    return FailedJobRegistry(queue=queue)


def count(conn: "Redis") -> int:
    return int(registry(conn).get_job_count())


def ids(
    conn: "Redis", *, offset: int = 0, limit: int | None = None, newest: bool = False
) -> list[str]:
    """The dead jobs' ids, in the order they failed (``newest`` first if asked)."""
    if limit is not None and limit <= 0:
        return []
    end = -1 if limit is None else offset + limit - 1
    return list(registry(conn).get_job_ids(offset, end, desc=newest))


def dead(conn: "Redis", job_id: str) -> Job:
    """The job ``job_id`` of the registry; raise :class:`Missing` when it is not there."""
    if conn.zscore(registry(conn).key, job_id) is None:
        raise Missing(f"no job {job_id!r} in the dead-letter registry")
    try:
        return Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
    except NoSuchJobError:
        raise Missing(f"job {job_id!r} has expired") from None


def summaries(conn: "Redis", job_ids: list[str]) -> list[dict[str, Any]]:
    """:func:`summary` of each job still stored (one that expired meanwhile is left out)."""
    jobs = Job.fetch_many(job_ids, connection=conn, serializer=JSONSerializer)
    return [summary(job) for job in jobs if job is not None]


def error(job: Job) -> str:
    """The error the job failed with, as RQ recorded it (``exc_info`` is deprecated)."""
    result = job.latest_result()
    if result is None or result.type != Result.Type.FAILED:
        return ""
    return str(result.exc_string or "")


def summary(job: Job) -> dict[str, Any]:
    """The job, what it delivers (or routes), when it failed and the last line of why."""
    try:
        args = job.args[0] if job.args else None
        what: dict[str, Any] = {"task": job.func_name}
    except DeserializationError:  # not a job flowhooks wrote
        args, what = None, {"task": None}
    if isinstance(args, dict):
        what |= {k: args.get(k) for k in ("ref", "route", "action", "kind", "attempt")}
    elif isinstance(args, str):
        what["ref"] = args
    reason = error(job).strip().splitlines()
    # a delivery dead-lettered without running (a permanent failure in its route job, a
    # spent retry) is a job made on the spot: it never started, so never ended
    failed_at = job.ended_at or job.created_at
    return {
        "job": job.id,
        **what,
        "failed_at": failed_at.isoformat() if failed_at else None,
        "reason": reason[-1] if reason else "",
    }


def replay(conn: "Redis", job_id: str) -> None:
    """Queue the dead job again; deliveries that succeeded since are not redone (the delivery
    checks its ``delivered`` key). Raise :class:`Missing`."""
    failed = registry(conn)
    try:
        _fresh_schedule(failed, job_id)
        failed.requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError):  # replayed, deleted or expired meanwhile
        raise Missing(f"no job {job_id!r} in the dead-letter registry") from None


def _fresh_schedule(failed: FailedJobRegistry, job_id: str) -> None:
    """A replayed delivery gets a retry schedule of its own: its first attempt is now, not
    when the original was made (which would give it up at its first retryable failure)."""
    job = Job.fetch(job_id, connection=failed.connection, serializer=JSONSerializer)
    if job.func_name == DELIVER_TASK and job.args and isinstance(job.args[0], dict):
        job.args = [{**job.args[0], "first_at": 0.0}]
        job.save()


def delete(conn: "Redis", job_id: str) -> None:
    """Drop the dead job and its stored failure; raise :class:`Missing`."""
    failed = registry(conn)
    if not failed.remove(job_id):
        raise Missing(f"no job {job_id!r} in the dead-letter registry")
    with suppress(NoSuchJobError):  # its hash expired first: the entry alone was left
        Job.fetch(job_id, connection=conn, serializer=JSONSerializer).delete()


def purge(conn: "Redis") -> int:
    """Delete every dead job; how many there were."""
    found = ids(conn)
    for each in found:
        try:
            delete(conn, each)
        except Missing:  # deleted or replayed meanwhile
            continue
    return len(found)


def matching(
    conn: "Redis", *, action: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    """:func:`summary` of every dead job of ``action`` whose reason contains ``reason`` (case
    aside), the oldest first; with neither, every dead job."""
    wanted = reason.casefold() if reason else None
    found = []
    every = ids(conn)
    for start in range(0, len(every), 500):
        for dead_job in summaries(conn, every[start : start + 500]):
            if action is not None and dead_job.get("action") != action:
                continue
            if wanted is not None and wanted not in str(dead_job.get("reason", "")).casefold():
                continue
            found.append(dead_job)
    return found


def replay_matching(
    conn: "Redis", *, action: str | None = None, reason: str | None = None
) -> tuple[int, int]:
    """Replay every dead job :func:`matching` selects; how many were queued again, and how many
    had gone meanwhile (replayed or deleted by someone else, or expired)."""
    replayed = gone = 0
    for dead_job in matching(conn, action=action, reason=reason):
        try:
            replay(conn, str(dead_job["job"]))
        except Missing:
            gone += 1
        else:
            replayed += 1
    return replayed, gone
