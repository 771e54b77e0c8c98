"""Deliveries: what an event's routes send (:func:`plan`, pure) and sending each of them once
(:func:`attempt_all`, against Redis and the sinks).

A delivery is one (event, route, action) notification, or the resolution of an incident, or a
digest of a group. Its id is derived from what it is, so whichever job runs it (the route job's
first attempt, a retry job, a replay from the dead-letter registry) checks the same
``delivered`` key and a delivery that succeeded is never sent again.

First attempts run concurrently inside the route job; a failed one that may be retried gets an
RQ job of its own, scheduled after its backoff (or the sink's ``Retry-After``), so a Slack
outage retries Slack alone and never re-pages PagerDuty. A permanent failure, and the last
failed attempt, land in RQ's failed-job registry: the dead letter, replayable with
``flowhooks dlq replay``. Every attempt is appended to the event's timeline.

A job whose worker dies under it is run again by RQ's abandoned-job recovery: route jobs carry
retries of their own (``receiver.jobs``), retry and digest jobs :data:`CRASH_RETRY`. What it
had delivered is skipped, what was in flight is sent again (at least once).
"""

import asyncio
import hashlib
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry
from rq.job import Job, Retry
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.serializers import JSONSerializer

from config import activity, deadletters, eventlog, keys
from config.base import DERIVED
from config.events import LABELS
from config.expectations import MISSED_KIND
from config.inhibit import Inhibitor, inhibiting
from config.schema import Action, Config, RetryPolicy
from config.silences import Silence, matching, parse_all
from config.timeintervals import active
from workers import lanes, storms
from workers.acting import Deferred, Unconfirmed, actor_for
from workers.etlworks.audit import attach
from workers.metrics import WorkerMetrics
from workers.rendering import Rendered, RenderError, render, render_digest, with_note
from workers.routing import Match, match
from workers.sinks import DeliveryError, registry
from workers.sinks.registry import DESTINATIONS

log = logging.getLogger("flowhooks.worker")

FAILURE_KINDS = frozenset({"flow.failed", "flow.timeout"})
"""Kinds that open (or keep open) an incident per (flow, route, action)."""
INCIDENT_SINKS = frozenset(name for name, d in DESTINATIONS.items() if d.incidents)
"""Sinks whose failure notification opens an incident: one that comes after its flow's
recovery (retried past it, or held in its lane) is not sent, as it would open the incident
again. Other sinks get every failure, late or not (a webhook's consumer may keep them all)."""
SUCCESS_KINDS = frozenset({"flow.succeeded"})
"""Kinds that resolve a flow's open incidents."""
WEBHOOKS_MISSING, WEBHOOKS_RESUMED = "webhook.missing", "webhook.resumed"
WEBHOOKS_SCOPE = "webhooks"
"""Where a source's ``webhook.missing`` incident is kept: its ``webhook.resumed`` resolves it."""


def incident_scope(event: Mapping[str, Any]) -> str | None:
    """What the incident an event opens is kept under within its source: the flow of a flow's
    failure, ``expect/<name>`` for a missed expectation (which its next success resolves, see
    :mod:`workers.expectations`), ``webhooks`` for webhooks missing (which their resuming
    resolves); ``None`` for an event that opens none."""
    if event.get("kind") == MISSED_KIND and event.get("entity_id"):
        return f"expect/{event['entity_id']}"
    if event.get("kind") == WEBHOOKS_MISSING:
        return WEBHOOKS_SCOPE
    if event.get("kind") in FAILURE_KINDS and event.get("flow_id"):
        return str(event["flow_id"])
    return None


DELIVER_TASK = deadletters.DELIVER_TASK
CRASH_RETRY = Retry(max=3, interval=[0, 30, 300])
"""RQ's retries of a delivery job that did not finish: its worker died under it (RQ's
abandoned-job recovery) or it raised something other than :class:`DeliveryFailed` (a timeout,
Redis going away). The first is immediate, since a job is found abandoned only once its time
limit is long past, and an immediate retry needs no scheduler (a dead worker's scheduler lock
outlives it by a minute). A dead letter is never retried: :func:`workers.tasks.deliver` spends
the retries before it raises."""
RECORD_RETRY = RedisRetry(ExponentialBackoff(cap=2.0, base=0.25), 12)
"""How long a made delivery's record waits for Redis to come back (about 20 s in all): a
restart or a failover, not a send again."""

Kind = Literal["notify", "resolve", "group", "digest"]


@dataclass(frozen=True)
class Incident:
    route: str
    action: str
    opened_at: float
    last_notified_at: float
    resolve: bool
    acknowledged: bool = False
    subject: str = ""
    """The ref of the event its resolve is about, when not the success resolving it: a missed
    expectation's, whose message (and PagerDuty dedup key) the resolve must answer."""


@dataclass(frozen=True)
class Planned:
    """One delivery an event causes, or the reason it is suppressed."""

    route: str
    action: str
    kind: Kind
    delivery_id: str
    suppressed: str | None = None
    detail: str | None = None
    match: Match | None = field(default=None, compare=False)
    subject: str | None = None
    """The ref of the event a resolve renders, when not the one planned for."""


def delivery_id(*parts: str) -> str:
    """A deterministic id for a delivery (letters and digits, fit for an RQ job id)."""
    return "d" + hashlib.sha1("\x00".join(parts).encode(), usedforsecurity=False).hexdigest()


def acts(config: Config, action: str) -> bool:
    """Whether ``action`` acts on Etlworks: it is neither grouped, nor held back by a repeat
    interval, nor an incident to note or resolve."""
    return action in config.actions and config.actions[action].etlworks is not None


def labels_of(event: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    labels = {name: str(event.get(name) or "") for name in (*LABELS, *DERIVED)}
    return labels, [str(t) for t in event.get("tags") or ()]


def plan(
    config: Config,
    event: Mapping[str, Any],
    *,
    at: datetime,
    silences: Sequence[Silence],
    incidents: Sequence[Incident],
    inhibitors: Sequence[Inhibitor] = (),
) -> list[Planned]:
    """What ``event`` sends at ``at``, and what is suppressed and why. Pure."""
    labels, tags = labels_of(event)
    ref = keys.ref(labels["source"], labels["id"])
    silence = matching(silences, labels, tags, at)
    open_by_route = {(i.route, i.action): i for i in incidents}
    scope = incident_scope(event)
    failure = scope is not None
    own = None if scope is None else f"{labels['source']}:{scope}"
    inhibitor = inhibiting(config.inhibit_rules, labels, tags, inhibitors, own=own)
    planned: list[Planned] = []
    for route in match(config.routes, labels, tags):
        for action in route.actions:
            reason, detail = _suppression(config, route, silence, at)
            incident = open_by_route.get((route.path, action))
            acting = acts(config, action)
            if reason is None and inhibitor is not None and not acting:
                reason, detail = "inhibited", inhibitor.ref  # a notification, not an action
            if reason is None and failure and incident is not None and not acting:
                since = at.timestamp() - incident.last_notified_at
                if incident.acknowledged:  # by hand, in the console: quiet until it resolves
                    reason, detail = "acknowledged", "the incident is acknowledged"
                elif since < route.repeat_interval:
                    reason = "repeat_interval"
                    detail = (
                        f"notified {int(since)}s ago, repeat_interval {int(route.repeat_interval)}s"
                    )
            # an Etlworks action acts on each event: it is neither grouped nor repeated
            kind: Kind = "group" if route.group_by and reason is None and not acting else "notify"
            planned.append(
                Planned(
                    route.path,
                    action,
                    kind,
                    delivery_id(ref, route.path, action, "notify"),
                    reason,
                    detail,
                    route,
                )
            )
    resolving = event.get("kind") in SUCCESS_KINDS and bool(labels["flow_id"])
    if resolving or event.get("kind") == WEBHOOKS_RESUMED:
        for incident in incidents:
            action_cfg = config.actions.get(incident.action)
            if not incident.resolve or action_cfg is None or not action_cfg.send_resolved:
                continue
            if action_cfg.etlworks is not None:  # an action is not an incident to resolve
                continue
            # Never silenced: the success forgets the incident either way, and a resolve held
            # back would leave the page it opened open for good.
            planned.append(
                Planned(
                    incident.route,
                    incident.action,
                    "resolve",
                    delivery_id(ref, incident.route, incident.action, "resolve"),
                    subject=incident.subject or None,
                )
            )
    return planned


def _suppression(
    config: Config, route: Match, silence: Silence | None, at: datetime
) -> tuple[str | None, str | None]:
    if silence is not None:
        return "silenced", silence.id
    for name in route.mute_time_intervals:
        if active(config.time_intervals[name], at):
            return "muted", name
    if route.active_time_intervals and not any(
        active(config.time_intervals[name], at) for name in route.active_time_intervals
    ):
        return "inactive", ", ".join(route.active_time_intervals)
    return None, None


# State in Redis -----------------------------------------------------------------------------


def load_state(
    conn: "Redis", source: str, flow_id: str | None
) -> tuple[list[Silence], list[Incident]]:
    """The silences and the flow's open incidents, in one round trip (two with incidents)."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.hvals(keys.SILENCES)
        if flow_id:
            pipe.smembers(keys.incidents(source, flow_id))
        replies = pipe.execute()
    found = parse_all(replies[0])
    return found, _incidents(conn, replies[1] if flow_id else set())


def open_incidents(conn: "Redis", source: str, scope: str) -> list[Incident]:
    """The open incidents kept under ``scope`` (see :func:`incident_scope`) of ``source``, each
    with the event that opened it as the :attr:`~Incident.subject` of its resolve."""
    return _incidents(conn, conn.smembers(keys.incidents(source, scope)), subject=True)


def _incidents(conn: "Redis", members: Any, *, subject: bool = False) -> list[Incident]:
    if not members:
        return []
    with conn.pipeline(transaction=False) as pipe:
        for key in members:
            pipe.hgetall(key)
        stored = pipe.execute()
    incidents = []
    for data in stored:
        if data:
            fields = {keys.text(k): keys.text(v) for k, v in data.items()}
            incidents.append(
                Incident(
                    route=fields["route"],
                    action=fields["action"],
                    opened_at=float(fields["opened_at"]),
                    last_notified_at=float(fields["last_notified_at"]),
                    resolve=fields["resolve"] == "1",
                    acknowledged="acked_at" in fields,
                    subject=fields.get("event", "") if subject else "",
                )
            )
    return incidents


def received_at(event: Mapping[str, Any]) -> float | None:
    """When flowhooks received the event (a Unix time), if the event says."""
    value = event.get("received_at")
    try:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None


INCIDENT_TTL = 30 * 86400
"""An incident no success ever resolves is forgotten after this long."""


_NOTE_INCIDENT = """
local recovered = tonumber(redis.call('GET', KEYS[3]) or '')
if recovered and recovered >= tonumber(ARGV[6]) then
  return 0
end
redis.call('HSETNX', KEYS[1], 'opened_at', ARGV[1])
redis.call('HSET', KEYS[1], 'route', ARGV[2], 'action', ARGV[3], 'last_notified_at', ARGV[1],
           'resolve', ARGV[4], 'event', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return 1
"""


def note_incident(
    conn: "Redis", event: Mapping[str, Any], route: Match, action: str, now: float
) -> bool:
    """Open or refresh the incident of (flow, route, action) after a failure was notified (of
    (expectation, route, action) after a missed deadline: :func:`incident_scope`); ``False``
    when the flow succeeded after this failure was received: a notification whose retries
    outlasted the recovery reopens nothing, so the next failure is not held back as a repeat
    of it (nor resolved by the next success)."""
    source, flow_id = str(event["source"]), str(incident_scope(event))
    incident = keys.incident(source, flow_id, route.path, action)
    args = (
        repr(now),
        route.path,
        action,
        "1" if route.resolve else "0",
        keys.ref(source, str(event["id"])),
        repr(received_at(event) or now),
        INCIDENT_TTL,
    )
    found = (incident, keys.incidents(source, flow_id), keys.recovered(source, flow_id))
    return bool(conn.eval(_NOTE_INCIDENT, 3, *found, *args))


def note_notified(
    conn: "Redis", config: Config, spec: "Spec", event: Mapping[str, Any] | None = None
) -> None:
    """Open or refresh the incident a delivered notification of a failure belongs to (a flow's,
    an expectation's, the webhooks': :func:`incident_scope`; nothing for other deliveries, or
    when its route is no longer in the config)."""
    if spec.kind != "notify" or acts(config, spec.action):
        return
    event = event if event is not None else eventlog.load_event(conn, spec.ref)
    if event is None or incident_scope(event) is None:
        return
    routes = match(config.routes, *labels_of(event))
    route = next((r for r in routes if r.path == spec.route), None)
    if route is not None:
        note_incident(conn, event, route, spec.action, time.time())


def close_incidents(conn: "Redis", source: str, flow_id: str, at: float) -> None:
    """Close the flow's incidents on a success received ``at``, and remember when."""
    members = conn.smembers(keys.incidents(source, flow_id))
    with conn.pipeline() as pipe:
        for key in members:
            pipe.delete(key)
        pipe.delete(keys.incidents(source, flow_id))
        pipe.set(keys.recovered(source, flow_id), repr(at), ex=INCIDENT_TTL)
        pipe.execute()


_ADD_TO_GROUP = """
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local state = redis.call('GET', KEYS[2])
if state == '1' then
  return false
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
return state or ''
"""
_END_FLUSH = """
redis.call('LTRIM', KEYS[1], ARGV[1], -1)
local left = redis.call('LLEN', KEYS[1])
if left > 0 then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
elseif tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
return left
"""


def group_values(route: Match, labels: Mapping[str, str], tags: Sequence[str]) -> dict[str, str]:
    """The values of the labels a route groups by (``tags`` joined by commas). ``...`` stands
    for every label: as in Alertmanager, it groups nothing together."""
    names = (*LABELS, "tags") if "..." in route.group_by else route.group_by
    return {name: labels.get(name, "") if name != "tags" else ",".join(tags) for name in names}


def group_id(route: Match, action: str, labels: Mapping[str, str], tags: Sequence[str]) -> str:
    values = [f"{name}={value}" for name, value in group_values(route, labels, tags).items()]
    return hashlib.sha1(
        "\x00".join([route.path, action, *values]).encode(), usedforsecurity=False
    ).hexdigest()


def add_to_group(
    conn: "Redis", planned: Planned, event: Mapping[str, Any], now: float
) -> float | None:
    """Add the event to its group. When it starts a new batch, the seconds to wait before
    flushing it (schedule the flush); ``None`` when a flush is already scheduled.

    As in Alertmanager, a group's first batch waits ``group_wait``, and a batch that follows
    a flush goes out ``group_interval`` after it: a steady stream of failures makes one digest
    per interval, not one per ``group_wait``. A group quiet for ``group_interval`` starts over.
    """
    assert planned.match is not None
    labels, tags = labels_of(event)
    gid = group_id(planned.match, planned.action, labels, tags)
    ttl = int(planned.match.group_wait + planned.match.group_interval + 3600)
    ref = keys.ref(labels["source"], labels["id"])
    state = conn.eval(_ADD_TO_GROUP, 2, keys.group(gid), keys.group_flush(gid), ref, ttl)
    if state is None:
        return None
    last_flush = keys.text(state)
    if not last_flush:
        return planned.match.group_wait
    return max(float(last_flush) + planned.match.group_interval - now, 0.0)


def peek_group(conn: "Redis", gid: str) -> list[str]:
    """The refs the group gathered so far, left in place until :func:`end_flush`: a flush
    that dies half-way is run again with the same refs, so the same digest id."""
    return [keys.text(r) for r in conn.lrange(keys.group(gid), 0, -1)]


def end_flush(conn: "Redis", gid: str, taken: int, now: float, group_interval: float) -> bool:
    """Drop the ``taken`` refs a flush has dealt with. ``True`` when more arrived meanwhile:
    the group keeps its flush scheduled, and the caller schedules it, ``group_interval`` from
    ``now``. Else ``now`` is remembered as the group's last flush for ``group_interval``
    seconds (see :func:`add_to_group`)."""
    interval_ms = int(group_interval * 1000)
    ttl = int(group_interval + 3600)
    args = (taken, repr(now), interval_ms, ttl)
    left = conn.eval(_END_FLUSH, 2, keys.group(gid), keys.group_flush(gid), *args)
    return bool(left)


def backoff(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float:
    """Seconds before attempt ``attempt + 1``: exponential with jitter, at least ``Retry-After``."""
    try:
        grown = policy.initial * policy.factor ** (attempt - 1)
    except OverflowError:  # a day of retries at the cap: factor ** 8000
        grown = policy.max_interval
    delay = min(grown, policy.max_interval)
    delay *= 1 + random.uniform(-policy.jitter, policy.jitter)  # noqa: S311 (not for secrets)
    return max(delay, retry_after or 0.0)


def not_before(delay: float, now: float | None = None) -> datetime:
    """The instant ``delay`` seconds after ``now``, rounded up to the whole second.

    RQ keeps a scheduled job's time truncated to the second and enqueues it once that second
    has begun, so a job scheduled at an unrounded instant may run up to a second early: a
    ``Retry-After: 2`` would be honoured as 1.1 s, a ``group_wait`` cut short.
    """
    at = (time.time() if now is None else now) + max(delay, 0.0)
    return datetime.fromtimestamp(math.ceil(at), UTC)


# Sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What a delivery job needs, as JSON (names, never secrets)."""

    ref: str
    route: str
    action: str
    kind: Kind
    delivery_id: str
    attempt: int = 1
    first_at: float = 0.0
    refs: tuple[str, ...] = ()
    """For a digest, the events it summarizes."""
    group: dict[str, str] = field(default_factory=dict)
    paced: bool = False
    title: str = ""
    """For a digest of a storm, its head (:func:`workers.storms.title`)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["refs"] = list(self.refs)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Spec":
        return cls(**{**data, "refs": tuple(data.get("refs", ()))})


def schedule(
    queue: Queue, spec: Spec, delay: float, *, job_timeout: float, retention: float, tag: str = ""
) -> None:
    """Run ``spec`` (again) in ``delay`` seconds, as a deliver job; ``tag`` tells apart jobs
    of one attempt (an action deferred again by the job that ran the last deferral: RQ deletes
    a job that finished, so the next one needs an id of its own)."""
    suffix = ("-paced" if spec.paced else "") + (f"-{tag}" if tag else "")
    queue.enqueue_at(
        not_before(delay),
        DELIVER_TASK,
        spec.to_json(),
        job_id=f"{spec.delivery_id}-{spec.attempt}{suffix}",
        job_timeout=int(job_timeout),
        result_ttl=0,
        failure_ttl=int(retention),
        retry=CRASH_RETRY,
    )


class DeliveryFailed(Exception):
    """Raised by a delivery job to leave it in the dead-letter registry; the message says why
    and holds no secret."""


@dataclass
class Outcome:
    spec: Spec
    result: Literal["delivered", "skipped", "scheduled", "queued", "retry", "dead"]
    """``queued``: it waits in its action's lane; ``retry``: a delivery from the lane failed
    while the lane is held (paused, circuit open) and stays at its head as :attr:`retry`."""
    detail: str = ""
    retry: "Spec | None" = None


class Deliverer:
    """Sends deliveries for one job: Redis for state, an HTTP client shared by its sinks."""

    def __init__(
        self,
        conn: "Redis",
        config: Config,
        metrics: WorkerMetrics,
        *,
        dedup_ttl: float,
        retention: float,
        job_timeout: float,
        own_job: str | None = None,
    ) -> None:
        """``own_job``: the id of the delivery job running this, which itself lands in the
        dead-letter registry when it fails for good (no second entry is made)."""
        self.own_job = own_job
        self.events: dict[str, dict[str, Any] | None] = {}
        self.known: dict[str, bool] = {}
        """Whether deliveries were made before, when the caller already asked Redis."""
        self.conn = conn
        self.config = config
        self.metrics = metrics
        self.dedup_ttl = dedup_ttl
        self.retention = retention
        self.job_timeout = job_timeout
        self.queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)

    async def attempt_all(self, specs: Sequence[Spec], client: httpx.AsyncClient) -> list[Outcome]:
        """Attempt every delivery concurrently over ``client``, the worker's shared one (its
        connections are reused across jobs; making a client costs more than a delivery)."""
        return list(await asyncio.gather(*(self.attempt(s, client) for s in specs)))

    async def attempt(
        self, spec: Spec, client: httpx.AsyncClient, *, drained: bool = False
    ) -> Outcome:
        """One attempt of one delivery; never raises for a sink's failure. A notification that
        must wait joins its action's lane (:mod:`workers.lanes`) and is ``queued``, unless it
        is ``drained``: it comes from the lane, whose drainer waited its turn."""
        ref = spec.refs[-1] if spec.kind == "digest" and spec.refs else spec.ref
        context = {
            "event_id": keys.split_ref(ref)[1],
            "source": keys.split_ref(ref)[0],
            "route": spec.route,
            "action": spec.action,
        }
        delivered = self.known.pop(spec.delivery_id, None)
        if delivered is None:
            delivered = bool(self.conn.exists(keys.delivered(spec.delivery_id)))
        if delivered:
            self._timeline(spec, "delivery", outcome="skipped", reason="already delivered")
            return Outcome(spec, "skipped", "already delivered")
        action = self.config.actions.get(spec.action)
        if action is None:
            return self.dead_letter(spec, "the action is no longer in the config")
        if action.etlworks is not None:
            return await self.act(spec, action, client, context)
        entry = self.entry(spec)
        failed_at = self._failure_at(spec) if action.sink in INCIDENT_SINKS else None
        if drained:
            if failed_at is not None and lanes.recovered_since(self.conn, entry.flow, failed_at):
                return self._recovered(spec)
            storm = action.collapse_after is not None and bool(
                self.conn.exists(keys.lane_storm(spec.action))
            )
            failures = 1  # the drainer's success closes the circuit whatever it was
        else:
            admitted = lanes.admit(
                self.conn, spec.action, action.sink, entry, time.time(), failed_at=failed_at
            )
            if admitted.verdict == "recovered":
                return self._recovered(spec)
            if admitted.verdict == "queued":
                self._timeline(spec, "lane", outcome="queued", waiting=admitted.waiting)
                return Outcome(spec, "queued", f"{admitted.waiting} waiting in the lane")
            storm = admitted.storm and action.collapse_after is not None
            failures = admitted.failures
        return await self._send(
            spec, action, client, context, drained=drained, storm=storm, failures=failures
        )

    async def _send(
        self,
        spec: Spec,
        action: Action,
        client: httpx.AsyncClient,
        context: Mapping[str, object],
        *,
        drained: bool,
        storm: bool,
        failures: int,
    ) -> Outcome:
        ref = str(context["source"]) + ":" + str(context["event_id"])
        try:
            rendered = self.render(spec, action)
        except (RenderError, LookupError) as exc:
            return self.dead_letter(spec, f"cannot render: {exc}")
        if storm:
            rendered = with_note(rendered, storms.after_note(self.conn, spec.action))
        started = time.monotonic()
        try:
            status = await registry.send(
                action, rendered.payload, client=client, delivery_id=spec.delivery_id
            )
        except DeliveryError as exc:
            took = time.monotonic() - started
            return self._failed(spec, action, exc, took, context, drained=drained)
        took = time.monotonic() - started
        if failures:
            lanes.succeeded(self.conn, spec.action)
        if storm:
            self.conn.delete(keys.lane_storm(spec.action))
        self._done(
            spec,
            "delivery",
            outcome="delivered",
            status=status,
            duration_ms=int(took * 1000),
            summary=rendered.summary,
        )
        self.metrics.deliveries.labels(action.sink, "delivered").inc()
        self._observe_latency(ref)
        log.info("delivered", extra={**context, "attempt": spec.attempt, "status": status})
        return Outcome(spec, "delivered")

    def entry(self, spec: Spec) -> lanes.Entry:
        """``spec`` as its lane keeps it, with the flow it is about."""
        event = self._event(spec.ref) if spec.kind != "digest" else None
        flow = ""
        if event is not None and event.get("flow_id"):
            flow = keys.ref(str(event.get("source")), str(event["flow_id"]))
        return lanes.Entry(spec.to_json(), time.time(), flow)

    def _failure_at(self, spec: Spec) -> float | None:
        """When the failure a notification tells of was received; ``None`` when it tells of
        no failure of a flow."""
        if spec.kind != "notify":
            return None
        event = self._event(spec.ref)
        if event is None or event.get("kind") not in FAILURE_KINDS or not event.get("flow_id"):
            return None
        return received_at(event)

    def _recovered(self, spec: Spec) -> Outcome:
        """A failure whose flow succeeded after it was received: a late trigger would open
        the incident the recovery resolved again (:data:`INCIDENT_SINKS`)."""
        reason = "the flow recovered since"
        self._timeline(spec, "delivery", outcome="skipped", reason=reason)
        log.info("not sent: %s", reason, extra={"route": spec.route, "action": spec.action})
        return Outcome(spec, "skipped", reason)

    async def act(
        self,
        spec: Spec,
        action: Action,
        client: httpx.AsyncClient,
        context: Mapping[str, object],
    ) -> Outcome:
        """An Etlworks action (:mod:`workers.etlworks.actions`): the same records, retries and
        dead letters as a notification; a deferral waits without counting as a failure."""
        event = self._event(spec.ref)
        if event is None:
            return self.dead_letter(spec, "the event expired")
        routes = match(self.config.routes, *labels_of(event))
        route = next((r for r in routes if r.path == spec.route), None)
        actor = actor_for(
            "etlworks",
            self.conn,
            self.config,
            client,
            retention=self.retention,
            job_timeout=self.job_timeout,
        )
        started = time.monotonic()
        try:
            acted = await actor.act(
                spec.delivery_id, spec.route, spec.action, event, match=route, waited=spec.paced
            )
        except DeliveryError as exc:
            return self._failed(spec, action, exc, time.monotonic() - started, context)
        except Deferred as later:
            waiting = Spec(**{**asdict(spec), "paced": True, "refs": spec.refs})
            self.schedule(waiting, later.delay, tag=f"w{int(time.time() * 1000)}")
            self._timeline(
                spec, "action", outcome="waiting", wait_s=round(later.delay, 1), reason=str(later)
            )
            return Outcome(spec, "scheduled", str(later))
        except Unconfirmed as exc:
            self._done(spec, "action", outcome="unconfirmed", reason=str(exc))
            log.warning("not confirmed", extra={**context, "reason": str(exc)})
            return Outcome(spec, "delivered", str(exc))
        took = int((time.monotonic() - started) * 1000)
        self._done(spec, "action", outcome="done", duration_ms=took, **acted.fields)
        self.metrics.deliveries.labels(action.sink, "delivered").inc()
        log.info("acted", extra={**context, **acted.fields})
        follow = [
            Spec(spec.ref, spec.route, name, "notify", delivery_id, first_at=time.time())
            for name, delivery_id in acted.notify
        ]
        if follow:  # each a delivery of its own: one that fails for good is a dead job of its own
            own, self.own_job = self.own_job, None
            try:
                await self.attempt_all(follow, client)
            finally:
                self.own_job = own
        return Outcome(spec, "delivered")

    def _done(self, spec: Spec, stage: str, **fields: Any) -> None:
        """Record a delivery as done, never to be made again, with its timeline entry. What
        was sent must not be sent again because Redis went away for a moment: the record is
        tried again while Redis restarts or fails over (:data:`RECORD_RETRY`)."""

        def record() -> None:
            with self.conn.pipeline(transaction=False) as pipe:
                pipe.set(keys.delivered(spec.delivery_id), "1", ex=int(self.dedup_ttl))
                self._timeline(spec, stage, conn=pipe, attempt=spec.attempt, **fields)
                pipe.execute()

        def waiting(error: Exception) -> None:
            log.warning(
                "recording a delivery waits for Redis",
                extra={"delivery_id": spec.delivery_id, "reason": type(error).__name__},
            )

        RECORD_RETRY.call_with_retry(record, waiting)

    def render(self, spec: Spec, action: Action) -> Rendered:
        if spec.kind == "digest":
            events = [e for e in (self._event(r) for r in spec.refs) if e is not None]
            if not events:
                raise LookupError("every event of the digest expired")
            return render_digest(
                action, events, route=spec.route, group=spec.group, title=spec.title or None
            )
        event = self._event(spec.ref)
        if event is None:
            raise LookupError("the event expired")
        return render(action, event, resolved=spec.kind == "resolve", route=spec.route)

    def _failed(
        self,
        spec: Spec,
        action: Action,
        exc: DeliveryError,
        took: float,
        context: Mapping[str, object],
        *,
        drained: bool = False,
    ) -> Outcome:
        """Record a failed attempt and decide what follows: the lane's head again when the
        lane is held (the destination asked for a pause, or the circuit is open), else a retry
        job after the backoff, else the dead letter."""
        self._timeline(
            spec,
            "delivery",
            outcome="failed",
            attempt=spec.attempt,
            status=exc.status,
            retryable=exc.retryable,
            duration_ms=int(took * 1000),
            error=str(exc),
        )
        log.warning(
            "delivery failed", extra={**context, "attempt": spec.attempt, "error": str(exc)}
        )
        now = time.time()
        first_at = spec.first_at or now
        delay = backoff(action.retry, spec.attempt, exc.retry_after)
        retry = Spec(
            **{
                **asdict(spec),
                "attempt": spec.attempt + 1,
                "first_at": first_at,
                # a notification waits for its pace again; an Etlworks action that
                # already waited its delay does not wait it twice
                "paced": spec.paced and action.etlworks is not None,
                "refs": spec.refs,
            }
        )
        in_time = now - first_at <= action.retry.give_up_after
        if exc.retryable and action.etlworks is None and in_time:
            # from the lane, the lane waits out the backoff with it: what follows keeps order
            pause = max(delay, exc.retry_after or 0.0) if drained else exc.retry_after
            held = lanes.failed(self.conn, spec.action, action.circuit, pause, now)
            if drained or held.circuit != "closed" or held.paused_until > now:
                # the lane waits for the destination: this delivery waits at its head
                self.metrics.deliveries.labels(action.sink, "retry").inc()
                why = f"circuit {held.circuit}, lane paused {max(held.paused_until - now, 0):.1f}s"
                if drained:
                    return Outcome(spec, "retry", why, retry=retry)
                lanes.requeue(self.conn, spec.action, self.entry(retry), now)
                return Outcome(spec, "queued", why)
        if exc.retryable and now + delay - first_at <= action.retry.give_up_after:
            self.schedule(retry, delay)
            self.metrics.deliveries.labels(action.sink, "retry").inc()
            return Outcome(spec, "scheduled", f"retry in {delay:.1f}s")
        why = "gave up retrying" if exc.retryable else "permanent failure"
        self.metrics.deliveries.labels(action.sink, "dead").inc()
        return self.dead_letter(spec, f"{why}: {exc}")

    def schedule(self, spec: Spec, delay: float, tag: str = "") -> None:
        schedule(
            self.queue, spec, delay, job_timeout=self.job_timeout, retention=self.retention, tag=tag
        )

    def dead_letter(self, spec: Spec, reason: str) -> Outcome:
        """Put the delivery, as a job that can be replayed, in RQ's failed-job registry."""
        job_id = self.own_job or self._dead_job(spec, reason)
        self._timeline(
            spec,
            "delivery",
            outcome="dead_letter",
            attempt=spec.attempt,
            reason=reason,
            job_id=job_id,
        )
        if self.own_job is not None:
            return Outcome(spec, "dead", reason)  # the job running this lands there itself
        log.error(
            "delivery dead-lettered",
            extra={"route": spec.route, "action": spec.action, "job_id": job_id, "reason": reason},
        )
        return Outcome(spec, "dead", reason)

    def _dead_job(self, spec: Spec, reason: str) -> str:
        """A replayable job for ``spec``, failed with ``reason`` the way RQ fails jobs."""
        job = Job.create(
            DELIVER_TASK,
            args=[spec.to_json()],
            connection=self.conn,
            serializer=JSONSerializer,
            id=f"{spec.delivery_id}-{spec.attempt}-dead",
            origin=keys.QUEUE,
            timeout=int(self.job_timeout),
            result_ttl=0,
            failure_ttl=int(self.retention),
        )
        job.ended_at = datetime.now(UTC)
        with self.conn.pipeline() as pipe:
            # RQ's own worker-less failure path: the registry entry and the failure result
            # that holds the reason (the registry alone does not keep it).
            record_job_failure(job, reason, pipe)
            pipe.execute()
        return str(job.id)

    def _timeline(self, spec: Spec, stage: str, conn: Any = None, **fields: Any) -> None:
        if conn is None:  # one round trip for the entries and the console's counts
            with self.conn.pipeline(transaction=False) as pipe:
                self._timeline(spec, stage, pipe, **fields)
                pipe.execute()
            return
        entry = {"stage": stage, "kind": spec.kind, "route": spec.route, **fields}
        entry["delivery_id"] = spec.delivery_id
        activity.outcome(conn, spec.action, spec.ref, entry, time.time())
        for ref in spec.refs or (spec.ref,):
            eventlog.append(
                conn or self.conn,
                ref,
                stage,
                route=spec.route,
                action=spec.action,
                kind=spec.kind,
                delivery_id=spec.delivery_id,
                **fields,
            )

    def _event(self, ref: str) -> dict[str, Any] | None:
        """The stored event, read once per job (the route job hands over the one it read)."""
        if ref not in self.events:
            event = eventlog.load_event(self.conn, ref)
            audited = any(instance.audit for instance in self.config.etlworks.values())
            self.events[ref] = attach(self.conn, event) if audited else event
        return self.events[ref]

    def _observe_latency(self, ref: str) -> None:
        event = self._event(ref)
        received = received_at(event) if event else None
        if received is not None:
            self.metrics.delivered_after.observe(max(time.time() - received, 0.0))
