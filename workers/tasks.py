"""RQ tasks. Each is named by its dotted path (``workers.tasks.route_event``) in the jobs that
run it, takes JSON arguments only, and is safe to run more than once: deliveries that
succeeded are never redone (see :mod:`workers.delivery`)."""

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import get_current_job
from rq.job import Job

from config import eventlog, keys
from workers import context
from workers.delivery import (
    Deliverer,
    DeliveryFailed,
    Planned,
    Spec,
    add_to_group,
    close_incidents,
    group_id,
    labels_of,
    load_incidents,
    note_incident,
    plan,
    take_group,
)
from workers.silences import every

log = logging.getLogger("flowhooks.worker")
FLUSH_TASK = "workers.tasks.flush_group"


def _job() -> Job:
    job = get_current_job()
    assert job is not None, "tasks run inside RQ jobs"
    return job


def _deliverer(job: Job, *, own: bool = False) -> Deliverer:
    ctx = context.current()
    return Deliverer(
        job.connection,
        ctx.config,
        ctx.metrics,
        dedup_ttl=ctx.settings.dedup_ttl,
        retention=ctx.settings.event_retention,
        job_timeout=ctx.settings.job_timeout,
        own_job=job.id if own else None,
    )


def route_event(event_ref: str) -> None:
    """Route one stored event: match the routes, record what is suppressed and why, send the
    first attempt of every delivery concurrently, schedule retries of the failed ones.

    An event that expired before a worker reached it is logged and skipped.
    """
    job = _job()
    conn = job.connection
    source, event_id = keys.split_ref(event_ref)
    extra: dict[str, Any] = {"source": source, "event_id": event_id}
    stored = eventlog.load(conn, event_ref)
    if stored is None:
        log.warning("event expired before routing", extra=extra)
        return
    event = stored.event
    eventlog.append(conn, event_ref, "picked_up", job_id=job.id, worker=job.worker_name)
    log.info(
        "event picked up: %s %s",
        event.get("event"),
        event.get("flow_name") or "",
        extra={**extra, "kind": event.get("kind"), "flow_id": event.get("flow_id")},
    )
    ctx = context.current()
    now = datetime.now(UTC)
    incidents = load_incidents(conn, source, event.get("flow_id"))
    planned = plan(ctx.config, event, at=now, silences=every(conn), incidents=incidents)
    eventlog.append(
        conn,
        event_ref,
        "routed",
        routes=sorted({p.route for p in planned if p.kind != "resolve"}),
        deliveries=[{"route": p.route, "action": p.action, "kind": p.kind} for p in planned],
    )
    sends: list[Spec] = []
    for p in planned:
        if p.suppressed:
            eventlog.append(
                conn,
                event_ref,
                "suppressed",
                route=p.route,
                action=p.action,
                reason=p.suppressed,
                detail=p.detail,
            )
            ctx.metrics.suppressions.labels(p.suppressed).inc()
        elif p.kind == "group":
            _group(job, event, p)
        else:
            sends.append(
                Spec(event_ref, p.route, p.action, p.kind, p.delivery_id, first_at=time.time())
            )
    if event.get("kind") == "flow.succeeded" and event.get("flow_id"):
        close_incidents(conn, source, str(event["flow_id"]))
    deliverer = _deliverer(job)
    outcomes = asyncio.run(deliverer.attempt_all(sends)) if sends else []
    failures = {(p.route, p.action) for p in planned if p.kind == "notify" and not p.suppressed}
    for outcome in outcomes:
        spec = outcome.spec
        if outcome.result == "delivered" and (spec.route, spec.action) in failures:
            _note(conn, event, planned, spec)


def _note(conn: Any, event: dict[str, Any], planned: list[Planned], spec: Spec) -> None:
    if event.get("kind") in ("flow.failed", "flow.timeout") and event.get("flow_id"):
        route = next(p.match for p in planned if p.route == spec.route and p.match is not None)
        note_incident(conn, event, route, spec.action, time.time())


def _group(job: Job, event: dict[str, Any], planned: Planned) -> None:
    """Add the event to its group; the group's first event schedules the digest."""
    assert planned.match is not None
    conn = job.connection
    route = planned.match
    labels, tags = labels_of(event)
    gid = group_id(route, planned.action, labels, tags)
    ref = keys.ref(labels["source"], labels["id"])
    eventlog.append(conn, ref, "grouped", route=planned.route, action=planned.action, group=gid)
    if add_to_group(conn, planned, event):
        group = {name: labels.get(name, "") for name in route.group_by}
        deliverer = _deliverer(job)
        deliverer.queue.enqueue_in(
            timedelta(seconds=route.group_wait),
            FLUSH_TASK,
            gid,
            planned.route,
            planned.action,
            group,
            job_id=f"group-{gid}-{int(time.time())}",
            result_ttl=0,
        )


def flush_group(gid: str, route: str, action: str, group: dict[str, str]) -> None:
    """Send one digest for every event the group gathered since its last flush."""
    job = _job()
    refs = take_group(job.connection, gid)
    if not refs:
        return
    spec = Spec(
        refs[-1],
        route,
        action,
        "digest",
        f"g{gid}-{len(refs)}-{keys.route_job_id(refs[-1])[-12:]}",
        first_at=time.time(),
        refs=tuple(refs),
        group=group,
    )
    deliverer = _deliverer(job)
    asyncio.run(deliverer.attempt_all([spec]))


def deliver(spec: dict[str, Any]) -> None:
    """A retry (or a replay) of one delivery. A permanent failure raises
    :class:`DeliveryFailed`, which leaves this job in the dead-letter registry."""
    job = _job()
    parsed = Spec.from_json(spec)
    deliverer = _deliverer(job, own=True)
    [outcome] = asyncio.run(deliverer.attempt_all([parsed]))
    if outcome.result == "dead":
        raise DeliveryFailed(outcome.detail)
    if outcome.result == "delivered":
        event = eventlog.load(job.connection, parsed.ref)
        ctx = context.current()
        if event is not None and parsed.kind == "notify":
            planned = plan(ctx.config, event.event, at=datetime.now(UTC), silences=[], incidents=[])
            _note(job.connection, event.event, planned, parsed)
