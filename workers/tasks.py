"""RQ tasks. Each is named by its dotted path (``workers.tasks.route_event``) in the jobs the
receiver writes, takes JSON arguments only, and is safe to run more than once."""

import logging

from rq import get_current_job

from config import eventlog, keys

log = logging.getLogger("flowhooks.worker")


def route_event(event_ref: str) -> None:
    """Route one stored event. Records on its timeline that a worker picked it up.

    An event that expired before a worker reached it is logged and skipped: there is nothing
    left to route.
    """
    job = get_current_job()
    assert job is not None, "route_event runs inside an RQ job"
    source, event_id = keys.split_ref(event_ref)
    context = {"source": source, "event_id": event_id}
    stored = eventlog.load(job.connection, event_ref)
    if stored is None:
        log.warning("event expired before routing", extra=context)
        return
    eventlog.append(job.connection, event_ref, "picked_up", job_id=job.id, worker=job.worker_name)
    event = stored.event
    extra = {**context, "kind": event.get("kind"), "flow_id": event.get("flow_id")}
    log.info(
        "event picked up: %s %s", event.get("event"), event.get("flow_name") or "", extra=extra
    )
