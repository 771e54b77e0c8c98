"""RQ tasks. Each is named by its dotted path (``workers.tasks.route_event``) in the jobs that
run it, takes JSON arguments only, and is safe to run more than once: deliveries that
succeeded are never redone (see :mod:`workers.delivery`)."""

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq import get_current_job
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from config import eventlog, keys, routejobs
from config.inhibit import Inhibitor
from config.schema import Config
from config.silences import Silence
from workers import adoption, context, expectations, inhibition, joins, synthetic
from workers.adoption import Taker
from workers.delivery import (
    CRASH_RETRY,
    FAILURE_KINDS,
    INCIDENT_TTL,
    SUCCESS_KINDS,
    WEBHOOKS_RESUMED,
    WEBHOOKS_SCOPE,
    Deliverer,
    DeliveryFailed,
    Incident,
    Planned,
    Spec,
    acts,
    add_to_group,
    close_incidents,
    delivery_id,
    end_flush,
    group_id,
    group_values,
    incident_scope,
    labels_of,
    load_state,
    not_before,
    note_incident,
    note_notified,
    open_incidents,
    peek_group,
    plan,
    received_at,
    schedule,
)
from workers.etlworks import audit
from workers.etlworks.actions import Actor, Poll
from workers.routing import Match

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
    """Route one stored event, then, for a couple of seconds at most, the events of the route
    jobs waiting behind it (:mod:`workers.adoption`), each as its own job would have.

    What this job took and did not finish goes back to the queue when it fails or is stopped,
    and when its worker dies (:func:`workers.adoption.reclaim`); a run of it after its worker
    died gives back first what the dead run may still hold.
    """
    job = _job()
    taker = Taker(
        job.connection,
        job.id,
        context.current().settings.event_retention,
        worker=job.worker_name or "",
        # past its time limit the job is dead or dying: what it holds is given back regardless
        deadline=time.time() + (job.timeout or routejobs.TIMEOUT) + adoption.DEADLINE_GRACE,
    )
    try:
        taker.give_back()
        _route(job, event_ref, job.id)
        deadline = time.monotonic() + adoption.MAX_SECONDS
        for _ in range(adoption.MAX_EVENTS):
            if time.monotonic() > deadline or context.current().stopping:
                break
            if (taken := taker.take()) is None:
                break
            job_id, ref = taken
            if ref is not None:
                _route_taken(job, taker, job_id, ref)
        taker.done()
    except BaseException:
        taker.give_back()
        raise


def _route_taken(job: Job, taker: Taker, job_id: str, ref: str) -> None:
    """Route a taken job's event; one that raises goes back to the queue to fail on its own."""
    try:
        _route(job, ref, job_id)
    except JobTimeoutException:
        # this job's time is up: the event it was routing goes back as a job of its own (it
        # may be the slow one), the rest of what it holds goes back to the queue
        taker.release(job_id)
        raise
    except Exception:
        source, event_id = keys.split_ref(ref)
        log.exception(
            "routing a taken event failed; it runs again as a job of its own",
            extra={"source": source, "event_id": event_id, "job_id": job_id},
        )
        taker.release(job_id)


def _route(job: Job, event_ref: str, job_id: str) -> None:
    """Match the event's routes, record what is suppressed and why, send the first attempt of
    every delivery concurrently, schedule retries of the failed ones.

    An event that expired before a worker reached it is logged and skipped.
    """
    conn = job.connection
    source, event_id = keys.split_ref(event_ref)
    extra: dict[str, Any] = {"source": source, "event_id": event_id}
    event = eventlog.load_event(conn, event_ref)
    if event is None:
        log.warning("event expired before routing", extra=extra)
        return
    # The job's timeline entries go in one command once routing is decided.
    picked = {"job_id": job_id, "worker": job.worker_name}
    if job_id != job.id:
        picked["by_job"] = job.id
    entries = [eventlog.entry("picked_up", **picked)]
    ctx = context.current()
    first = synthetic.claim_outcome(conn, event, ctx.settings.event_retention)
    if first is not None:
        entries.append(
            eventlog.entry("duplicate", of=first, reason="this run's outcome was routed")
        )
        eventlog.append_all(conn, event_ref, entries)
        log.info("run outcome already routed", extra={**extra, "of": first})
        return
    event = _enriched(conn, ctx, _count_failures(conn, event), entries)
    log.info(
        "event picked up: %s %s",
        event.get("event"),
        event.get("flow_name") or "",
        extra={**extra, "kind": event.get("kind"), "flow_id": event.get("flow_id")},
    )
    now = datetime.now(UTC)
    silences, incidents, inhibitors = _state(conn, ctx.config, event)
    planned = plan(
        ctx.config, event, at=now, silences=silences, incidents=incidents, inhibitors=inhibitors
    )
    entries.append(
        eventlog.entry(
            "routed",
            routes=sorted({p.route for p in planned if p.kind != "resolve"}),
            deliveries=[{"route": p.route, "action": p.action, "kind": p.kind} for p in planned],
        )
    )
    sends: list[Spec] = []
    groups: list[Planned] = []
    for p in planned:
        if p.suppressed:
            entries.append(
                eventlog.entry(
                    "suppressed",
                    route=p.route,
                    action=p.action,
                    reason=p.suppressed,
                    detail=p.detail,
                )
            )
            _held_back(conn, p, extra)
        elif p.kind == "group":
            groups.append(p)
        else:
            ref = p.subject or event_ref
            sends.append(Spec(ref, p.route, p.action, p.kind, p.delivery_id, first_at=time.time()))
    sends.extend(_joined(conn, ctx.config, event, now))
    deliverer = _deliverer(job)
    deliverer.events[event_ref] = event
    with conn.pipeline(transaction=False) as pipe:  # one round trip for both
        eventlog.append_all(pipe, event_ref, entries)
        for spec in sends:
            pipe.exists(keys.delivered(spec.delivery_id))
        replies = pipe.execute()
    found = replies[len(replies) - len(sends) :]
    deliverer.known = {s.delivery_id: bool(done) for s, done in zip(sends, found, strict=True)}
    for p in groups:
        _group(job, event, p)
    _close_incidents(conn, ctx.config, event)
    outcomes = ctx.run(deliverer.attempt_all(sends, ctx.client)) if sends else []
    failures = {
        (p.route, p.action)
        for p in planned
        if p.kind == "notify" and not p.suppressed and not acts(ctx.config, p.action)
    }
    for outcome in outcomes:
        spec = outcome.spec
        # "skipped": delivered by an earlier run of this job, which may have died before
        # noting the incident
        done = outcome.result in ("delivered", "skipped")
        if done and (spec.route, spec.action) in failures:
            _note(conn, event, [p.match for p in planned if p.match], spec)


def _state(
    conn: Any, config: Config, event: dict[str, Any]
) -> tuple[list[Silence], list[Incident], list[Inhibitor]]:
    """The silences; the open incidents the event may repeat or resolve: its flow's (its
    expectation's, for a missed one), and those of the expectations a success meets; and the
    open incidents that may inhibit it, the event itself noted among them when it is one."""
    source = str(event["source"])
    silences, incidents = load_state(conn, source, incident_scope(event) or event.get("flow_id"))
    if event.get("kind") == WEBHOOKS_RESUMED:
        incidents = incidents + open_incidents(conn, source, WEBHOOKS_SCOPE)
    inhibitors = inhibition.note_and_load(conn, config, event)
    return silences, incidents + expectations.incidents_met(conn, config, event), inhibitors


def _close_incidents(conn: Any, config: Config, event: dict[str, Any]) -> None:
    """A success closes its flow's incidents, and those of the expectations it meets, webhooks
    resuming the source's webhooks-missing one; what they inhibited is routed again."""
    closed: list[tuple[str, str]] = []
    if event.get("kind") in SUCCESS_KINDS and event.get("flow_id"):
        at = received_at(event) or time.time()
        close_incidents(conn, str(event["source"]), str(event["flow_id"]), at)
        closed.append((str(event["source"]), str(event["flow_id"])))
    if event.get("kind") == WEBHOOKS_RESUMED:
        at = received_at(event) or time.time()
        close_incidents(conn, str(event["source"]), WEBHOOKS_SCOPE, at)
        closed.append((str(event["source"]), WEBHOOKS_SCOPE))
    for name in expectations.observe(conn, config, event):
        closed.append(
            (expectations.source_of(config, config.expect[name]), expectations.scope(name))
        )
    retention = context.current().settings.event_retention
    for source, scope in closed if config.inhibit_rules else ():
        inhibition.release(conn, source, scope, retention=retention)


def _held_back(conn: Any, planned: Planned, extra: dict[str, Any]) -> None:
    """Count a suppressed delivery, and say at INFO why it is not sent: a notification that
    never comes is otherwise invisible. One inhibited is remembered by its inhibitor."""
    if planned.suppressed == "inhibited" and planned.detail:
        inhibition.hold(conn, planned.detail, keys.ref(extra["source"], extra["event_id"]))
    context.current().metrics.suppressions.labels(planned.suppressed).inc()
    log.info(
        "not sent: %s, %s",
        planned.suppressed,
        planned.detail,
        extra={
            **extra,
            "route": planned.route,
            "action": planned.action,
            "reason": planned.suppressed,
        },
    )


def _joined(conn: Any, config: Config, event: dict[str, Any], now: datetime) -> list[Spec]:
    """The ``then`` deliveries of the joins this success completes (each window once)."""
    if event.get("kind") not in SUCCESS_KINDS:
        return []
    ref = keys.ref(str(event["source"]), str(event["id"]))
    specs: list[Spec] = []
    for name, join in config.joins.items():
        done = joins.observe(conn, name, join, event, now)
        if done is None:
            continue
        eventlog.append(conn, ref, "join", join=name, window=done.window_key, members=done.members)
        specs.extend(
            Spec(
                ref,
                f"joins.{name}",
                action,
                "notify",
                delivery_id("join", name, done.window_key, action),
                first_at=time.time(),
            )
            for action in join.then
        )
    return specs


def expire_joins(
    conn: Any, config: Config, now: datetime, job_timeout: float, retention: float
) -> int:
    """Run the ``on_expire`` actions of every join window that closed incomplete by ``now``,
    each for a ``join.expired`` event naming what is missing; how many windows expired."""
    expired = joins.due_expiries(conn, config.joins, now)
    queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)
    for expiry in expired:
        join = config.joins.get(expiry.join)
        event = synthetic.expiry_event(expiry, source=next(iter(config.sources)))
        ref = keys.ref(event["source"], event["id"])
        synthetic.store(conn, event, retention=retention, route=False)
        log.info(
            "join window expired", extra={"join": expiry.join, "missing": list(expiry.missing)}
        )
        for action in join.on_expire if join else ():
            spec = Spec(
                ref,
                f"joins.{expiry.join}",
                action,
                "notify",
                delivery_id("join-expired", expiry.join, expiry.window_key, action),
                first_at=time.time(),
            )
            schedule(queue, spec, 0, job_timeout=job_timeout, retention=retention)
    return len(expired)


def _enriched(
    conn: Any, ctx: context.WorkerContext, event: dict[str, Any], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """The event with its flow's latest change, when its instance audits (see
    :mod:`workers.etlworks.audit`), the timeline entry saying it added to ``entries``."""
    if not any(instance.audit for instance in ctx.config.etlworks.values()):
        return event
    retention = ctx.settings.event_retention
    return ctx.run(
        audit.enrich(conn, ctx.config, ctx.client, event, retention=retention, entries=entries)
    )


def _count_failures(conn: Any, event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``consecutive_failures``: its flow's failures in a row, itself included
    (0 for a success; unset for other kinds)."""
    flow_id, kind = event.get("flow_id"), event.get("kind")
    if not flow_id or kind not in (*FAILURE_KINDS, *SUCCESS_KINDS):
        return event
    key = keys.failures(str(event["source"]), str(flow_id))
    if kind in SUCCESS_KINDS:
        conn.delete(key)
        return {**event, "consecutive_failures": "0"}
    # a set of the failures' refs: an event routed again (a retried job, a replay) counts once
    with conn.pipeline(transaction=False) as pipe:
        pipe.sadd(key, keys.ref(str(event["source"]), str(event["id"])))
        pipe.scard(key)
        pipe.expire(key, INCIDENT_TTL)
        _, count, _ = pipe.execute()
    return {**event, "consecutive_failures": str(count)}


def _note(conn: Any, event: dict[str, Any], routes: Iterable[Match], spec: Spec) -> None:
    """Open or refresh the incident a delivered failure notification belongs to (nothing when
    the route is no longer in the config)."""
    if incident_scope(event) is not None:
        route = next((r for r in routes if r.path == spec.route), None)
        if route is not None:
            note_incident(conn, event, route, spec.action, time.time())


def _group(job: Job, event: dict[str, Any], planned: Planned) -> None:
    """Add the event to its group; the event that starts a batch schedules its digest."""
    assert planned.match is not None
    conn = job.connection
    route = planned.match
    labels, tags = labels_of(event)
    gid = group_id(route, planned.action, labels, tags)
    ref = keys.ref(labels["source"], labels["id"])
    eventlog.append(conn, ref, "grouped", route=planned.route, action=planned.action, group=gid)
    now = time.time()
    wait = add_to_group(conn, planned, event, now)
    log.info(
        "held for a digest: %s",
        f"it goes in {wait:.0f}s" if wait is not None else "the digest pending takes it",
        extra={"source": labels["source"], "event_id": labels["id"], "route": planned.route},
    )
    if wait is not None:
        group = {name: value for name, value in group_values(route, labels, tags).items() if value}
        flush = Flush(gid, planned.route, planned.action, group, route.group_interval)
        flush.schedule(conn, wait, now)


@dataclass(frozen=True)
class Flush:
    """The digest of one group, and the job that sends it (:func:`flush_group`)."""

    gid: str
    route: str
    action: str
    group: dict[str, str]
    group_interval: float

    def schedule(self, conn: Any, wait: float, now: float) -> None:
        queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)
        queue.enqueue_at(
            not_before(wait, now),
            FLUSH_TASK,
            self.gid,
            self.route,
            self.action,
            self.group,
            self.group_interval,
            job_id=f"group-{self.gid}-{int(now * 1000)}",
            job_timeout=int(context.current().settings.job_timeout),
            result_ttl=0,
            retry=CRASH_RETRY,
        )


def flush_group(
    gid: str, route: str, action: str, group: dict[str, str], group_interval: float = 0.0
) -> None:
    """Send one digest for every event the group gathered since its last flush; when more
    arrive while it is sent, the next digest follows ``group_interval`` later."""
    job = _job()
    conn = job.connection
    refs = peek_group(conn, gid)
    if refs:
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
        ctx = context.current()
        ctx.run(_deliverer(job).attempt_all([spec], ctx.client))
    now = time.time()
    if end_flush(conn, gid, len(refs), now, group_interval):
        Flush(gid, route, action, group, group_interval).schedule(conn, group_interval, now)


def deliver(spec: dict[str, Any]) -> None:
    """A retry (or a replay) of one delivery. A permanent failure, or the last one, raises
    :class:`DeliveryFailed`, which leaves this job in the dead-letter registry: RQ's own
    retries (:data:`~workers.delivery.CRASH_RETRY`) are for a job that did not finish, not
    for a sink that said no."""
    job = _job()
    parsed = Spec.from_json(spec)
    deliverer = _deliverer(job, own=True)
    ctx = context.current()
    [outcome] = ctx.run(deliverer.attempt_all([parsed], ctx.client))
    if outcome.result == "dead":
        job.retries_left = 0  # read by the worker when it handles the failure
        raise DeliveryFailed(outcome.detail)
    if outcome.result == "delivered":
        note_notified(job.connection, ctx.config, parsed)


def poll_run(poll: dict[str, Any]) -> None:
    """Ask how a run flowhooks started and follows is doing (see
    :meth:`workers.etlworks.actions.Actor.poll`)."""
    job = _job()
    ctx = context.current()
    actor = Actor(
        job.connection,
        ctx.config,
        ctx.client,
        retention=ctx.settings.event_retention,
        job_timeout=ctx.settings.job_timeout,
    )
    ctx.run(actor.poll(Poll(**poll)))
