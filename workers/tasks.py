"""RQ tasks. Each is named by its dotted path (``workers.tasks.route_event``) in the jobs that
run it, takes JSON arguments only, and is safe to run more than once: deliveries that
succeeded are never redone (see :mod:`workers.delivery`)."""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
    Outcome,
    Planned,
    Spec,
    acts,
    add_to_group,
    ask_state,
    close_incidents,
    delivery_id,
    end_flush,
    group_id,
    group_values,
    incident_scope,
    labels_of,
    not_before,
    note_incident,
    note_notified,
    open_incidents,
    peek_group,
    plan,
    read_state,
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
        routed = 0
        while routed < adoption.MAX_EVENTS:
            if time.monotonic() > deadline or context.current().stopping:
                break
            taken = taker.take_many(min(adoption.BATCH, adoption.MAX_EVENTS - routed))
            if not taken:
                break
            routed += len(taken)
            _route_taken(job, taker, [(job_id, ref) for job_id, ref in taken if ref is not None])
        taker.done()
    except BaseException:
        taker.give_back()
        raise


@dataclass
class Routing:
    """One event between its plan and the outcomes of its first deliveries."""

    job_id: str
    ref: str
    event: dict[str, Any]
    planned: list[Planned]
    sends: list[Spec]
    deliverer: Deliverer


def _route(job: Job, event_ref: str, job_id: str) -> None:
    """Route one event: plan it (:func:`_prepare`), send the first attempt of every delivery
    concurrently, note the incidents it opened (:func:`_finish`)."""
    event = eventlog.load_event(job.connection, event_ref)
    routing = _prepare(job, event_ref, job_id, event)
    if routing is not None:
        ctx = context.current()
        sends = routing.sends
        outcomes = ctx.run(routing.deliverer.attempt_all(sends, ctx.client)) if sends else []
        _finish(job.connection, routing, outcomes)


def _route_taken(job: Job, taker: Taker, taken: list[tuple[str, str]]) -> None:
    """Route the events of taken jobs, a wave at a time (:func:`waves`): a wave's events are
    planned one by one in queue order, the first deliveries of each going out as soon as it
    is planned, then each is finished. One whose routing raises goes back to the queue to fail
    on its own."""
    conn = job.connection
    stored = conn.mget([keys.event(ref) for _, ref in taken]) if taken else []
    events = [json.loads(raw) if raw is not None else None for raw in stored]
    ctx = context.current()
    for wave in waves(ctx.config, list(zip(taken, events, strict=True))):
        routings: list[Routing] = []
        try:
            results = ctx.run(_send_wave(job, taker, wave, routings, ctx.client))
        except JobTimeoutException:
            # this job's time is up: the events it was routing go back as jobs of their own
            # (one may be the slow one), the rest of what it holds goes back to the queue
            for routing in routings:
                taker.release(routing.job_id)
            raise
        for routing, result in zip(routings, results, strict=True):
            with _alone(taker, routing.job_id, routing.ref):
                if isinstance(result, BaseException):
                    raise result
                _finish(conn, routing, result)


async def _send_wave(
    job: Job, taker: Taker, wave: list["Taken"], routings: list[Routing], client: Any
) -> list[list[Outcome] | BaseException]:
    """Plan the wave's events one by one, in order, each added to ``routings``, the first
    deliveries of each going out while the next is planned; the outcomes of each, what one
    raised standing for its outcomes."""
    sending: list[asyncio.Future[list[Outcome]]] = []
    for (job_id, ref), event in wave:
        with _alone(taker, job_id, ref):
            if (routing := _prepare(job, ref, job_id, event)) is not None:
                routings.append(routing)
                attempt = routing.deliverer.attempt_all(routing.sends, client)
                sending.append(asyncio.ensure_future(attempt))
        await asyncio.sleep(0)  # what was started goes on while the next event is planned
    return list(await asyncio.gather(*sending, return_exceptions=True))


Taken = tuple[tuple[str, str], dict[str, Any] | None]
"""A taken job's (id, event ref) and its stored event (``None`` once expired)."""


def waves(config: Config, taken: list[Taken]) -> Iterator[list[Taken]]:
    """``taken`` cut, in order, into waves whose events may be routed side by side: what the
    delivery of one notes (its flow's incident) is read by the plan of no other of its wave. A
    wave holds failures and successes of distinct flows that meet no expectation; any other
    event is a wave of its own."""
    wave: list[Taken] = []
    flows: set[tuple[str, str]] = set()
    for item in taken:
        flow = _plain_flow(config, item[1])
        if wave and (flow is None or flow in flows):
            yield wave
            wave, flows = [], set()
        wave.append(item)
        if flow is None:
            yield wave
            wave = []
        else:
            flows.add(flow)
    if wave:
        yield wave


def _plain_flow(config: Config, event: dict[str, Any] | None) -> tuple[str, str] | None:
    """The (source, flow) of a failure or success that meets no expectation; else ``None``."""
    if event is None or not event.get("flow_id"):
        return None
    if event.get("kind") not in (*FAILURE_KINDS, *SUCCESS_KINDS):
        return None
    if expectations.met_by(config, event):
        return None
    return str(event["source"]), str(event["flow_id"])


@contextmanager
def _alone(taker: Taker, job_id: str, ref: str) -> Iterator[None]:
    """Give a taken job whose routing raises back to the queue, to run as a job of its own;
    this job's time limit, once reached, is raised on (after the job went back)."""
    try:
        yield
    except JobTimeoutException:
        taker.release(job_id)
        raise
    except Exception:
        source, event_id = keys.split_ref(ref)
        log.exception(
            "routing a taken event failed; it runs again as a job of its own",
            extra={"source": source, "event_id": event_id, "job_id": job_id},
        )
        taker.release(job_id)


def _prepare(job: Job, event_ref: str, job_id: str, event: dict[str, Any] | None) -> Routing | None:
    """Match the event's routes, record what is suppressed and why, and what is to be sent;
    ``None`` when nothing is: an event that expired before a worker reached it (logged), a
    run's outcome routed already."""
    conn = job.connection
    source, event_id = keys.split_ref(event_ref)
    extra: dict[str, Any] = {"source": source, "event_id": event_id}
    if event is None:
        log.warning("event expired before routing", extra=extra)
        return None
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
        return None
    event, silences, incidents = _count_and_load(conn, event)
    event = _enriched(conn, ctx, event, entries)
    log.info(
        "event picked up: %s %s",
        event.get("event"),
        event.get("flow_name") or "",
        extra={**extra, "kind": event.get("kind"), "flow_id": event.get("flow_id")},
    )
    now = datetime.now(UTC)
    incidents, inhibitors = _state(conn, ctx.config, event, incidents)
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
    sends, groups = _sorted(conn, planned, entries, extra)
    sends.extend(_joined(conn, ctx.config, event, now))
    deliverer = _deliverer(job)
    deliverer.events[event_ref] = event
    with conn.pipeline(transaction=False) as pipe:  # one round trip for all three
        eventlog.append_all(pipe, event_ref, entries)
        for spec in sends:
            pipe.exists(keys.delivered(spec.delivery_id))
        closed = _close_flow_incidents(pipe, event)
        replies = pipe.execute()
    found = replies[len(replies) - len(sends) - len(closed) :][: len(sends)]
    deliverer.known = {s.delivery_id: bool(done) for s, done in zip(sends, found, strict=True)}
    for p in groups:
        _group(job, event, p)
    _close_incidents(conn, ctx.config, event, closed)
    return Routing(job_id, event_ref, event, planned, sends, deliverer)


def _finish(conn: Any, routing: Routing, outcomes: list[Outcome]) -> None:
    """Open or refresh the incidents of the failure notifications delivered."""
    config = context.current().config
    failures = {
        (p.route, p.action)
        for p in routing.planned
        if p.kind == "notify" and not p.suppressed and not acts(config, p.action)
    }
    for outcome in outcomes:
        spec = outcome.spec
        # "skipped": delivered by an earlier run of this job, which may have died before
        # noting the incident
        done = outcome.result in ("delivered", "skipped")
        if done and (spec.route, spec.action) in failures:
            _note(conn, routing.event, [p.match for p in routing.planned if p.match], spec)


def _sorted(
    conn: Any, planned: list[Planned], entries: list[dict[str, Any]], extra: dict[str, Any]
) -> tuple[list[Spec], list[Planned]]:
    """The deliveries to send now and those to group; each suppressed one's entry added to
    ``entries``, and said (:func:`_held_back`)."""
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
            ref = p.subject or keys.ref(extra["source"], extra["event_id"])
            sends.append(Spec(ref, p.route, p.action, p.kind, p.delivery_id, first_at=time.time()))
    return sends, groups


def _count_and_load(
    conn: Any, event: dict[str, Any]
) -> tuple[dict[str, Any], list[Silence], list[Incident]]:
    """The event with ``consecutive_failures`` (:func:`_count_failures`), the silences and the
    open incidents of its flow (its expectation's, for a missed one): one round trip (two with
    incidents)."""
    scope = incident_scope(event) or event.get("flow_id")
    with conn.pipeline(transaction=False) as pipe:
        counted = _count_failures(pipe, event)
        ask_state(pipe, str(event["source"]), scope)
        replies = pipe.execute()
    silences, incidents = read_state(conn, replies[len(replies) - (2 if scope else 1) :], scope)
    return counted(replies), silences, incidents


def _state(
    conn: Any, config: Config, event: dict[str, Any], incidents: list[Incident]
) -> tuple[list[Incident], list[Inhibitor]]:
    """The open incidents the event may repeat or resolve: its flow's (``incidents``), the
    source's webhooks-missing one for webhooks resuming, and those of the expectations a
    success meets; and the open incidents that may inhibit it, the event itself noted among
    them when it is one."""
    if event.get("kind") == WEBHOOKS_RESUMED:
        incidents = incidents + open_incidents(conn, str(event["source"]), WEBHOOKS_SCOPE)
    inhibitors = inhibition.note_and_load(conn, config, event)
    return incidents + expectations.incidents_met(conn, config, event), inhibitors


def _close_flow_incidents(pipe: Any, event: dict[str, Any]) -> list[tuple[str, str]]:
    """Queue in ``pipe`` the closing of a success's flow's incidents; the (source, flow) closed."""
    if event.get("kind") not in SUCCESS_KINDS or not event.get("flow_id"):
        return []
    at = received_at(event) or time.time()
    close_incidents(pipe, str(event["source"]), str(event["flow_id"]), at)
    return [(str(event["source"]), str(event["flow_id"]))]


def _close_incidents(
    conn: Any, config: Config, event: dict[str, Any], closed: list[tuple[str, str]]
) -> None:
    """Webhooks resuming close the source's webhooks-missing incident, a success those of the
    expectations it meets (its flow's are ``closed`` already); what they inhibited is routed
    again."""
    closed = list(closed)
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


def _count_failures(pipe: Any, event: dict[str, Any]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Queue in ``pipe`` the count of the event's flow's failures in a row, itself included
    (0 for a success; none for other kinds); a function of the pipeline's replies that gives
    the event with its ``consecutive_failures``."""
    flow_id, kind = event.get("flow_id"), event.get("kind")
    if not flow_id or kind not in (*FAILURE_KINDS, *SUCCESS_KINDS):
        return lambda replies: event
    key = keys.failures(str(event["source"]), str(flow_id))
    if kind in SUCCESS_KINDS:
        pipe.delete(key)
        return lambda replies: {**event, "consecutive_failures": "0"}
    # a set of the failures' refs: an event routed again (a retried job, a replay) counts once
    pipe.sadd(key, keys.ref(str(event["source"]), str(event["id"])))
    pipe.scard(key)
    pipe.expire(key, INCIDENT_TTL)
    return lambda replies: {**event, "consecutive_failures": str(replies[1])}


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
