"""What an Etlworks action does for one delivery, and how a run it started is followed.

Exactly once, in effect: a run's trigger is the delivery's id (event, route, action). It is
claimed in Redis before the run call, sent along as the run parameter ``flowhooks_trigger``,
and the run's audit id is recorded after. A delivery that finds its trigger claimed without an
audit id (its worker died between the two, or the call timed out) first looks for the trigger
among the flow's recent executions; only when the run is not there, and the claim is older
than a job may live (or 15 s old, its claimer gone), does it call run again. A call Etlworks
answered with an error started nothing, so its claim is let go at once.

Errors are the sinks' (:class:`~workers.sinks.DeliveryError`), retried on the action's schedule
by the caller; :class:`Deferred` asks the caller to come back later without counting a failed
attempt (a retry's delay, a run of the flow still in progress); :class:`Unconfirmed` says the
executions API disagrees with the event, so nothing is done.
"""

import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from redis.typing import EncodableT, FieldT
from rq import Queue, get_current_job
from rq.serializers import JSONSerializer

from config import eventlog, keys
from config.etlworks import (
    TRIGGER_PARAM,
    RequestAction,
    RetryAction,
    RunAction,
    ScheduleAction,
)
from config.schema import Action, Config
from config.templates import compile_template
from workers import acting, synthetic
from workers.acting import Acted, Deferred, Unconfirmed
from workers.delivery import CRASH_RETRY, FAILURE_KINDS, delivery_id
from workers.etlworks.client import SINK, EtlworksClient, Execution
from workers.routing import Match
from workers.sinks import DeliveryError

if TYPE_CHECKING:
    from redis import Redis

MAX_DEPTH = 8
"""Runs one chain may start, one causing the next, before flowhooks refuses another."""
POLL_TASK = "workers.tasks.poll_run"
FIRST_POLL = 5.0
MAX_POLL = 60.0
ACTIVE = frozenset({"queued", "running"})
_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
"""What an RQ job id may not hold; an audit id is Etlworks' to spell."""


DEAD_CLAIMER_SETTLE = 15.0
"""Seconds after its claim that a run claimed by a worker now gone, and not among the flow's
executions, is started again: a run call sent just before the worker died has that long to
show there."""


def _worker_name() -> str:
    """The name of the worker running this job ('' outside one)."""
    job = get_current_job()
    return str(job.worker_name or "") if job is not None else ""


@dataclass(frozen=True)
class Poll:
    """A run being followed: what the next :func:`workers.tasks.poll_run` asks about."""

    cause: str
    route: str
    action: str
    instance: str
    flow_id: str
    audit_id: str
    until: float
    interval: float = FIRST_POLL


class Actor:
    """Acts for one job: Redis for triggers and chains, the worker's shared HTTP client."""

    def __init__(
        self,
        conn: "Redis",
        config: Config,
        client: httpx.AsyncClient,
        *,
        retention: float,
        job_timeout: float,
    ) -> None:
        self.conn = conn
        self.config = config
        self.client = client
        self.retention = retention
        self.job_timeout = job_timeout

    def instance_of(self, action: Action, event: Mapping[str, Any]) -> str:
        """The instance an action uses: its own, else its event's source's, else the only one."""
        acting = action.etlworks
        assert acting is not None
        source = self.config.sources.get(str(event.get("source")))
        name = acting.instance or (source.etlworks if source else None)
        if name is None and len(self.config.etlworks) == 1:
            name = next(iter(self.config.etlworks))
        if name is None or name not in self.config.etlworks:
            raise DeliveryError(SINK, "no Etlworks instance for this source", retryable=False)
        return name

    def api(self, name: str) -> EtlworksClient:
        instance = self.config.etlworks[name]
        return EtlworksClient(
            instance.url, instance.api_key, client=self.client, timeout=instance.timeout
        )

    async def act(
        self,
        delivery_id: str,
        route: str,
        action_name: str,
        event: Mapping[str, Any],
        *,
        match: Match | None,
        waited: bool,
    ) -> Acted:
        """Do what the action says for ``event``. ``waited``: this attempt already waited its
        delay. Raises :class:`DeliveryError`, :class:`Deferred`, :class:`Unconfirmed`."""
        action = self.config.actions[action_name]
        instance = self.instance_of(action, event)
        api = self.api(instance)
        if match is not None and match.confirm:
            event = await self.confirm(api, event)
        acting = action.etlworks
        run = Run(self, api, instance, delivery_id, route, action_name, event)
        if isinstance(acting, RunAction):
            params = {name: _render(text, event) for name, text in acting.params.items()}
            return Acted(await run.start(acting.flow_id, params, acting.wait), [])
        if isinstance(acting, RetryAction):
            return await run.retry(acting, waited)
        if isinstance(acting, ScheduleAction):
            await api.set_schedule(acting.schedule_id, acting.enabled)
            return Acted({"schedule_id": acting.schedule_id, "enabled": acting.enabled}, [])
        assert isinstance(acting, RequestAction)
        path = _render(acting.path, event)
        await api.request(acting.method, path, _render_json(acting.body, event))
        return Acted({"method": acting.method, "path": path}, [])

    async def confirm(self, api: EtlworksClient, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """The event, enriched from its execution record, once the record agrees with it."""
        flow_id, audit_id = event.get("flow_id"), event.get("audit_id")
        if not (flow_id and audit_id):
            raise Unconfirmed("the event names no flow and execution to confirm")
        record = await api.execution(str(flow_id), str(audit_id))
        if record.status != event.get("status"):
            raise Unconfirmed(f"the executions API says {record.status}, not {event.get('status')}")
        return {**event, **{k: v for k, v in _record(record).items() if v is not None}}

    async def poll(self, poll: Poll) -> None:
        """Ask once how a followed run is doing; when it ended (or the wait is over), store
        and route its outcome as an event, else ask again later."""
        cause = eventlog.load_event(self.conn, poll.cause)
        if cause is None:
            return
        try:
            record = await self.api(poll.instance).execution(poll.flow_id, poll.audit_id)
        except DeliveryError as exc:
            if exc.retryable and time.time() < poll.until:
                self.follow(poll, max(poll.interval, exc.retry_after or 0.0))
                return
            if exc.retryable:  # the wait is over and the API still cannot say: a timeout
                self._outcome(poll, cause, "flow.timeout", None, None)
                return
            eventlog.append(
                self.conn,
                poll.cause,
                "run",
                flow_id=poll.flow_id,
                audit_id=poll.audit_id,
                status="unknown",
                error=str(exc),
            )
            return
        if record.finished:
            kind, status = synthetic.KINDS[record.status], record.status
        elif time.time() >= poll.until:
            kind, status = "flow.timeout", None
        else:
            self.follow(poll, min(poll.interval * 2, MAX_POLL))
            return
        self._outcome(poll, cause, kind, status, record)

    def _outcome(
        self,
        poll: Poll,
        cause: Mapping[str, Any],
        kind: str,
        status: str | None,
        record: Execution | None,
    ) -> None:
        """Store and route the followed run's outcome; note it on the cause's timeline."""
        event = synthetic.outcome_event(
            cause,
            flow_id=poll.flow_id,
            audit_id=poll.audit_id,
            kind=kind,
            status=status,
            record=_record(record) if record else None,
        )
        ref = synthetic.store(self.conn, event, retention=self.retention)
        eventlog.append(
            self.conn,
            poll.cause,
            "run",
            route=poll.route,
            action=poll.action,
            flow_id=poll.flow_id,
            audit_id=poll.audit_id,
            status=status or "timeout",
            outcome=ref or keys.ref(event["source"], event["id"]),
        )

    def follow(self, poll: Poll, delay: float) -> None:
        """Ask about the run again in ``delay`` seconds (a scheduled job: no worker waits)."""
        nxt = Poll(**{**asdict(poll), "interval": min(delay, MAX_POLL)})
        queue = Queue(keys.QUEUE, connection=self.conn, serializer=JSONSerializer)
        queue.enqueue_in(
            timedelta(seconds=delay),
            POLL_TASK,
            asdict(nxt),
            job_id=f"poll-{_JOB_ID_UNSAFE.sub('_', poll.audit_id)}-{int(time.time() * 1000)}"[:120],
            job_timeout=int(self.job_timeout),
            result_ttl=0,
            failure_ttl=int(self.retention),
            retry=CRASH_RETRY,
        )


@dataclass
class Run:
    """One delivery of a run or retry action: its trigger and the event that caused it."""

    actor: Actor
    api: EtlworksClient
    instance: str
    trigger: str
    route: str
    action: str
    event: Mapping[str, Any]

    @property
    def ref(self) -> str:
        return keys.ref(str(self.event["source"]), str(self.event["id"]))

    async def start(
        self,
        flow_id: str,
        params: Mapping[str, str],
        wait: float | None,
        chain: tuple[str, int] | None = None,
    ) -> dict[str, Any]:
        """Run ``flow_id`` once for this trigger; follow it when ``wait`` is set."""
        conn = self.actor.conn
        depth = self.depth()
        if depth >= MAX_DEPTH:
            message = f"{depth} runs led to this event: not starting another (the limit)"
            raise DeliveryError(SINK, message, retryable=False)
        key = keys.trigger(self.trigger)
        audit_id = await self._started(key, flow_id)
        if audit_id is None:
            # before the call: the run's webhook may come first, and carries the trigger
            conn.hset(key, "depth", depth)
            if chain is not None:
                conn.hset(key, "chain", json.dumps({"root": chain[0], "attempt": chain[1]}))
            try:
                run = await self.api.run_flow(flow_id, {**params, TRIGGER_PARAM: self.trigger})
            except DeliveryError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    conn.delete(key)  # refused: nothing was started
                elif exc.status is not None:
                    # a 5xx (or an answer not understood) may follow a run that started: the
                    # next attempt looks among the executions first, at once
                    conn.hset(key, "claimed_at", "0")
                raise
            audit_id = run.audit_id
            conn.hset(key, "audit_id", audit_id)
        if chain is not None:
            root, attempt = chain
            value = json.dumps({"root": root, "attempt": attempt})
            source = str(self.event["source"])
            conn.set(keys.chain(source, flow_id, audit_id), value, ex=int(self.actor.retention))
        eventlog.append(
            conn,
            self.ref,
            "run",
            route=self.route,
            action=self.action,
            flow_id=flow_id,
            audit_id=audit_id,
            status="started",
        )
        if wait is not None:
            poll = Poll(
                self.ref,
                self.route,
                self.action,
                self.instance,
                flow_id,
                audit_id,
                until=time.time() + wait,
            )
            self.actor.follow(poll, FIRST_POLL)
        return {"flow_id": flow_id, "audit_id": audit_id}

    def depth(self) -> int:
        """How many runs flowhooks started led to this event: the ``chain_depth`` of an event
        flowhooks made, or one more than the depth of the event that started the run this one
        reports on, whose trigger Etlworks' own webhook carries in the run's parameters."""
        depth = int(self.event.get("chain_depth") or 0)
        params = self.event.get("params")
        cause = params.get(TRIGGER_PARAM) if isinstance(params, Mapping) else None
        if cause:
            stored = self.actor.conn.hget(keys.trigger(str(cause)), "depth")
            if stored is not None:
                depth = max(depth, int(keys.text(stored)) + 1)
        return depth

    async def _started(self, key: str, flow_id: str) -> str | None:
        """The audit id of the run this trigger already started, or ``None`` once the trigger
        is claimed for a run to start now. Raises :class:`Deferred` while another attempt may
        be starting it."""
        conn = self.actor.conn
        now = time.time()
        claim: dict[FieldT, EncodableT] = {"claimed_at": repr(now), "worker": _worker_name()}
        if conn.hsetnx(key, "claimed_at", claim["claimed_at"]):
            with conn.pipeline() as pipe:
                pipe.hset(key, "worker", claim["worker"])
                pipe.expire(key, int(self.actor.retention))
                pipe.execute()
            return None
        state = {keys.text(k): keys.text(v) for k, v in conn.hgetall(key).items()}
        if state.get("audit_id"):
            return state["audit_id"]
        for run in await self.api.executions(flow_id):
            if run.params.get(TRIGGER_PARAM) == self.trigger:
                conn.hset(key, "audit_id", run.audit_id)
                return run.audit_id
        age = now - float(state.get("claimed_at") or 0)
        settled = self._settled(state)
        if age < settled:
            raise Deferred(settled - age, "a run of this trigger may still be starting")
        conn.hset(key, mapping=claim)
        return None

    def _settled(self, state: Mapping[str, str]) -> float:
        """How old a claim without a run must be before the run is started again: the time a
        run call has to show in the executions once its claimer is known to be gone (its
        liveness key expired), else the longest a job may live."""
        claimer = state.get("worker")
        if claimer and not self.actor.conn.exists(keys.worker(claimer)):
            return DEAD_CLAIMER_SETTLE
        return self.actor.job_timeout + 5

    async def retry(self, acting: RetryAction, waited: bool) -> Acted:
        """Run the failed flow again within the chain's attempts and the flow's budget;
        escalate, once a chain, when neither allows another retry."""
        event = self.event
        flow_id, audit_id = str(event.get("flow_id") or ""), str(event.get("audit_id") or "")
        if event.get("kind") not in FAILURE_KINDS or not flow_id:
            return Acted({"skipped": "not a failed run"}, [])
        conn = self.actor.conn
        source = str(event["source"])
        stored = self._chain(source, flow_id, audit_id)
        chain: dict[str, Any] = (
            json.loads(stored) if stored else {"root": audit_id or self.ref, "attempt": 0}
        )
        root, attempt = str(chain["root"]), int(chain["attempt"])
        if attempt >= acting.max_attempts:
            return self._escalate(acting, root, f"{attempt} retries failed")
        budget = keys.budget(self.action, flow_id)
        if acting.budget is not None:
            since = time.time() - acting.budget.per
            spent = conn.zcount(budget, since, "+inf") - (
                conn.zscore(budget, self.trigger) is not None
            )
            if spent >= acting.budget.runs:
                reason = f"budget spent: {acting.budget.runs} retries in {int(acting.budget.per)}s"
                return self._escalate(acting, root, reason)
        if not waited:
            raise Deferred(acting.delay * acting.backoff**attempt, "retry delay")
        running = [
            r
            for r in await self.api.executions(flow_id)
            if r.status in ACTIVE and r.params.get(TRIGGER_PARAM) != self.trigger
        ]
        if running:
            raise Deferred(max(acting.delay, FIRST_POLL), f"a run of flow {flow_id} is in progress")
        if acting.budget is not None:
            conn.zadd(budget, {self.trigger: time.time()})
            conn.zremrangebyscore(budget, "-inf", time.time() - acting.budget.per)
            conn.expire(budget, int(acting.budget.per) + 60)
        params = {str(k): str(v) for k, v in (event.get("params") or {}).items()}
        params.pop(TRIGGER_PARAM, None)
        done = await self.start(flow_id, params, acting.wait, (root, attempt + 1))
        # "retry", not "attempt": the timeline entry's "attempt" is the delivery's own
        return Acted({**done, "retry": attempt + 1}, [])

    def _chain(self, source: str, flow_id: str, audit_id: str) -> str | None:
        """The retry chain this failed run belongs to: kept by its audit id once flowhooks
        knew it, else with the trigger the run's parameters name (set before the call)."""
        conn = self.actor.conn
        stored = conn.get(keys.chain(source, flow_id, audit_id)) if audit_id else None
        if stored is None:
            params = self.event.get("params")
            cause = params.get(TRIGGER_PARAM) if isinstance(params, Mapping) else None
            stored = conn.hget(keys.trigger(str(cause)), "chain") if cause else None
        return keys.text(stored) if stored is not None else None

    def _escalate(self, acting: RetryAction, root: str, reason: str) -> Acted:
        """Escalate once a chain. A delivery run again (its worker died after claiming the
        escalation) asks for the notifications again: each is made once, by its own id."""
        source, flow_id = str(self.event["source"]), str(self.event.get("flow_id"))
        once = f"{keys.chain(source, flow_id, root)}:escalated"
        ttl = int(self.actor.retention)
        conn = self.actor.conn
        first = None if conn.set(once, self.trigger, nx=True, ex=ttl) else conn.get(once)
        if isinstance(first, bytes | str) and keys.text(first) != self.trigger:
            return Acted({"escalated": False, "reason": f"{reason}; escalated before"}, [])
        # hashed: an action's name may hold a dot, which an RQ job id (a retry's) may not
        notify = [(name, delivery_id(self.trigger, "escalate", name)) for name in acting.escalate]
        return Acted({"escalated": True, "reason": reason}, notify)


def _record(record: Execution) -> dict[str, Any]:
    return {
        "error": record.error,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "duration_ms": record.duration_ms,
        "params": record.params or None,
        "flow_name": record.raw.get("flowName") if isinstance(record.raw, Mapping) else None,
    }


def _render(source: str, event: Mapping[str, Any]) -> str:
    return compile_template(source).render(event=event)


def _render_json(body: Any, event: Mapping[str, Any]) -> Any:
    if isinstance(body, str):
        return _render(body, event)
    if isinstance(body, dict):
        return {key: _render_json(value, event) for key, value in body.items()}
    if isinstance(body, list):
        return [_render_json(value, event) for value in body]
    return body


acting.register("etlworks", Actor)
