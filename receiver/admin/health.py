"""What the console's overview shows, read from Redis: traffic per minute, failures by flow,
the queue, the workers and the scheduler, dead letters, incidents, silences and sessions.

Synchronous, run in a worker thread like every :class:`receiver.admin.store.Store` call; every
function may raise ``RedisError``.
"""

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker import Worker

from config import activity, deadletters, eventlog, incidents, keys, lanestate, silences
from config.eventlog import Filters
from receiver.admin import sessions

FAILED_KINDS = frozenset({"flow.failed", "flow.timeout"})
TOP_FLOWS = 10


def overview(conn: "Redis", now: float, minutes: int) -> dict[str, Any]:
    queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)
    at = datetime.fromtimestamp(now, UTC)
    found_silences = silences.every(conn)
    open_incidents = incidents.every(conn)
    return {
        "minutes": minutes,
        "since": datetime.fromtimestamp((now // 60 - minutes + 1) * 60, UTC).isoformat(),
        "until": at.isoformat(),
        "received": activity.received_per_minute(conn, now, minutes),
        "delivered": activity.per_minute(conn, "delivered", now, minutes),
        "failed": activity.per_minute(conn, "failed", now, minutes),
        "failuresByFlow": failures_by_flow(conn, now, minutes),
        "queue": queue_state(queue, now),
        "workers": workers(conn, queue, now),
        "scheduler": scheduler(conn),
        "deadLetters": deadletters.count(conn),
        "incidents": {
            "open": len(open_incidents),
            "acknowledged": sum(1 for i in open_incidents if i.acked_at is not None),
        },
        "silences": {"active": sum(1 for s in found_silences if s.state(at) == "active")},
        "sessions": sessions.count(conn, now),
        "lanes": [
            {
                "action": lane.action,
                "backlog": lane.backlog,
                "oldestSeconds": round(lane.oldest_seconds, 1),
                "circuit": lane.circuit,
                "pausedForSeconds": (
                    None if lane.paused_until is None else round(lane.paused_until - now, 1)
                ),
            }
            for lane in lanestate.read(conn, lanestate.known(conn), now)
        ],
    }


def failures_by_flow(conn: "Redis", now: float, minutes: int) -> list[dict[str, Any]]:
    """The flows that failed most in the window (the events are read: the cost grows with the
    window's events)."""
    window = Filters(since_ms=int((now - minutes * 60) * 1000), until_ms=int(now * 1000))
    counts: Counter[tuple[str, str]] = Counter()
    names: dict[tuple[str, str], str] = {}
    for stored in eventlog.scan(conn, window):
        if stored.event.get("kind") in FAILED_KINDS:
            flow = (str(stored.event.get("source") or ""), str(stored.event.get("flow_id") or ""))
            counts[flow] += 1
            names.setdefault(flow, str(stored.event.get("flow_name") or ""))
    return [
        {"source": s, "flow_id": f, "flow_name": names[(s, f)], "failures": n}
        for (s, f), n in counts.most_common(TOP_FLOWS)
    ]


def queue_state(queue: Queue, now: float) -> dict[str, Any]:
    oldest: float | None = None
    for job_id in queue.get_job_ids(0, 1):
        try:
            job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        if job.enqueued_at is not None:
            oldest = max(now - job.enqueued_at.replace(tzinfo=UTC).timestamp(), 0.0)
    return {
        "depth": queue.count,
        "oldestAgeSeconds": None if oldest is None else round(oldest, 1),
        "scheduled": ScheduledJobRegistry(queue=queue).count,  # type: ignore[no-untyped-call]
        "running": StartedJobRegistry(queue=queue).count,
    }


def workers(conn: "Redis", queue: Queue, now: float) -> list[dict[str, Any]]:
    """RQ's workers of the queue, each with flowhooks' own liveness (``beating``: its key, which
    a thread of the worker refreshes every couple of seconds, is there)."""
    found = Worker.all(queue=queue, serializer=JSONSerializer)
    with conn.pipeline(transaction=False) as pipe:
        for worker in found:
            pipe.get(keys.worker(worker.name))
        beats = pipe.execute()
    out = []
    for worker, beat in zip(found, beats, strict=True):
        heartbeat = worker.last_heartbeat
        out.append(
            {
                "name": worker.name,
                "state": str(worker.get_state()),
                "beating": beat is not None,
                "currentJob": (keys.text(beat) if beat else None) or worker.get_current_job_id(),
                "lastHeartbeat": heartbeat.replace(tzinfo=UTC).isoformat() if heartbeat else None,
                "heartbeatAgeSeconds": round(now - heartbeat.replace(tzinfo=UTC).timestamp(), 1)
                if heartbeat
                else None,
            }
        )
    return sorted(out, key=lambda w: w["name"])


def scheduler(conn: "Redis") -> dict[str, Any]:
    """Which worker holds RQ's scheduler lock of the queue (none: delayed jobs wait)."""
    key = RQScheduler.get_locking_key(keys.QUEUE)
    with conn.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.ttl(key)
        holder, ttl = pipe.execute()
    return {"holder": keys.text(holder) if holder else None, "ttlSeconds": max(int(ttl), 0)}
