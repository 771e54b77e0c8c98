"""Reconciling against Etlworks' execution history: every finished run is routed, whether its
webhook came or not.

Per Etlworks instance that a source names (unless its ``reconcile`` is ``false``), once an
``interval``, one worker reads the runs that ended since the last pass (less ``overlap``, and
at least ``settle`` ago: a webhook may still be on its way), page by page. For each source of
the instance, a run of a flow the source's webhook subscribes to whose outcome nothing routed
yet is stored as the webhook would have been (``via: reconcile``) and routed through the claim
the webhook and the run-and-wait poll share (:func:`workers.synthetic.claim_outcome`): whichever
comes first routes the run, a later one is a duplicate on its timeline.

When runs keep ending and being routed this way (``missing_after`` of them) while no webhook of
the source arrives, a ``webhook.missing`` event is routed once; the next webhook to arrive
after it routes ``webhook.resumed``.

What a source subscribes to is read from its registration in Etlworks, the webhook named
``flowhooks-<source>`` (:func:`webhook_name`), at each pass; the last one seen is kept, so a
deleted registration keeps its runs reconciled. A source with none ever seen is not reconciled
(which flows its webhook leaves out is unknown), and a warning says so at each pass.

Errors: :class:`~workers.sinks.DeliveryError` from the API (the pass is left undone, the
watermark where it was: the next pass reads the same runs again), ``RedisError``.
"""

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from redis.typing import EncodableT, FieldT

from config import eventlog, keys
from config.etlworks import Reconcile
from config.schema import Config
from workers import synthetic
from workers.etlworks.client import EtlworksClient, Execution
from workers.sinks import DeliveryError

if TYPE_CHECKING:
    from redis import Redis

    from workers.context import WorkerContext

log = logging.getLogger("flowhooks.reconcile")

EVENTS = {
    "success": "FLOW_SUCCESS",
    "warning": "FLOW_WARNING",
    "error": "FLOW_FAILED",
    "canceled": "FLOW_CANCELED",
}
"""The webhook event Etlworks sends for each final status."""
EXECUTED = "Flow.Executed"
"""The webhook event of every run's end, whatever its status."""
VIA = "reconcile"
PAGE = 100
"""Executions asked for a page."""
MAX_PAGES = 100
"""Pages a pass reads at most; the next pass goes on from where this one stopped."""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def webhook_name(source: str) -> str:
    """The name of the registration in Etlworks that sends a source its webhooks."""
    return f"flowhooks-{source}"


def sources_of(config: Config, instance: str) -> list[str]:
    """The sources whose follow-up actions, and reconciling, use ``instance``."""
    return [name for name, source in config.sources.items() if source.etlworks == instance]


def reconciled(config: Config) -> dict[str, Reconcile]:
    """The instances to reconcile, with how: those a source names, unless turned off."""
    found = {}
    for name, instance in config.etlworks.items():
        settings = instance.reconciling
        if settings is not None and sources_of(config, name):
            found[name] = settings
    return found


@dataclass(frozen=True)
class Subscription:
    """Which runs' ends a registration sends: its events and flow filters (ids or name
    patterns with ``*``; no includes means every flow)."""

    events: frozenset[str] = frozenset({EXECUTED})
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def of(cls, registration: Mapping[str, Any]) -> "Subscription":
        return cls(
            frozenset(str(e) for e in registration.get("events") or ()),
            tuple(str(i) for i in registration.get("flowIncludes") or ()),
            tuple(str(e) for e in registration.get("flowExcludes") or ()),
        )

    def wants(self, flow_id: str, flow_name: str, status: str) -> bool:
        def named(patterns: tuple[str, ...]) -> bool:
            return any(p == flow_id or fnmatchcase(flow_name, p) for p in patterns)

        sent = EXECUTED in self.events or EVENTS.get(status) in self.events
        return sent and (not self.includes or named(self.includes)) and not named(self.excludes)

    def dump(self) -> str:
        return json.dumps(
            {
                "events": sorted(self.events),
                "flowIncludes": list(self.includes),
                "flowExcludes": list(self.excludes),
            }
        )


def registration(hooks: Iterable[Mapping[str, Any]], source: str) -> Mapping[str, Any] | None:
    """The registration of ``source`` among ``hooks``, found by its name."""
    return next((h for h in hooks if h.get("name") == webhook_name(source)), None)


def registration_state(hook: Mapping[str, Any] | None) -> str:
    """``absent``, ``disabled`` or ``enabled``."""
    if hook is None:
        return "absent"
    return "disabled" if hook.get("enabled") is False else "enabled"


async def history(api: EtlworksClient, since_ms: int) -> tuple[list[Execution], bool]:
    """The runs that ended at or after ``since_ms``, oldest first, each once, and whether that
    is all of them (:data:`MAX_PAGES` pages at most): page by page until ``X-Total-Count``
    items, or, without it, a short page."""
    found: dict[tuple[str, str], Execution] = {}
    offset = 0
    for _ in range(MAX_PAGES):
        page, total = await api.history(since_ms, limit=PAGE, offset=offset)
        offset += len(page)
        found.update(((e.flow_id, e.audit_id), e) for e in page)
        if not page or (offset >= total if total is not None else len(page) < PAGE):
            return list(found.values()), True
    return list(found.values()), False


@dataclass
class SourcePass:
    """What one pass did for one source."""

    source: str
    routed: list[str] = field(default_factory=list)
    """Refs of the events it stored and routed, one a run."""
    missing: str | None = None
    """The ref of the ``webhook.missing`` event it raised."""
    resumed: str | None = None
    """The ref of the ``webhook.resumed`` event it raised."""


class Reconciler:
    """Reconciles one instance: ``conn`` for the claims and state, ``api`` for the history."""

    def __init__(
        self,
        conn: "Redis",
        config: Config,
        instance: str,
        api: EtlworksClient,
        *,
        retention: float,
    ) -> None:
        self.conn = conn
        self.instance = instance
        self.settings = config.etlworks[instance].reconciling or Reconcile()
        self.sources = sources_of(config, instance)
        self.api = api
        self.retention = retention

    async def run(self, now: float | None = None) -> list[SourcePass]:
        """One pass: read the history since the watermark, route what nothing routed, move
        the watermark. Raises ``DeliveryError``, ``RedisError``."""
        now = time.time() if now is None else now
        state = _hash(self.conn, keys.reconcile(self.instance))
        watermark = float(state.get("watermark") or now - self.settings.lookback)
        until = now - self.settings.settle
        since = min(watermark, until) - self.settings.overlap
        hooks = await self.api.webhooks()
        flows = {str(f.get("id")): f for f in await self.api.flows()}
        runs, complete = await history(self.api, int(since * 1000))
        ended = sorted((at, run) for run in runs if (at := _ended(run)) is not None and at <= until)
        done = [
            self._source(s, registration(hooks, s), ended, flows, now=now) for s in self.sources
        ]
        # An incomplete read goes on from the last run it read, not from ``until``.
        last = ended[-1][0] if ended and not complete else until
        self.conn.hset(
            keys.reconcile(self.instance),
            mapping={"watermark": repr(max(watermark, last)), "last_pass": repr(now)},
        )
        return done

    def _source(
        self,
        source: str,
        hook: Mapping[str, Any] | None,
        ended: list[tuple[float, Execution]],
        flows: Mapping[str, Mapping[str, Any]],
        *,
        now: float,
    ) -> SourcePass:
        key = keys.webhooks(source)
        state = _hash(self.conn, key)
        if hook is not None:
            subscription = Subscription.of(hook)
        elif state.get("subscription"):
            subscription = Subscription.of(json.loads(state["subscription"]))
        else:
            # Which flows it sends is unknown: routing every flow could page for flows its
            # webhook leaves out on purpose.
            log.warning(
                "not reconciled: no webhook %s in Etlworks was ever seen"
                " (flowhooks etlworks subscribe registers it)",
                webhook_name(source),
                extra={"source": source, "instance": self.instance},
            )
            self.conn.hset(key, "registration", registration_state(None))
            return SourcePass(source)
        known = float(state.get("last_webhook") or 0)
        arrived = last_webhook(self.conn, source, int(known))
        missed = int(state.get("missed") or 0)
        if arrived is not None and arrived > known:
            missed = 0  # webhooks came since
        last_webhook_ms = max(arrived or 0, known)
        done = SourcePass(source)
        for at, run in ended:
            flow = flows.get(run.flow_id, {})
            name = str(run.raw.get("flowName") or flow.get("name") or "")
            if not subscription.wants(run.flow_id, name, run.status):
                continue
            ref = route_once(self.conn, reconciled_event(source, run, flow, now), self.retention)
            if ref is None:
                continue
            done.routed.append(ref)
            if at * 1000 > last_webhook_ms:
                missed += 1
        fields: dict[FieldT, EncodableT] = {
            "missed": str(missed),
            "last_webhook": repr(last_webhook_ms),
            "registration": registration_state(hook),
            "webhook": json.dumps(dict(hook)) if hook is not None else "",
        }
        if hook is not None:
            fields["subscription"] = subscription.dump()
        missing = state.get("missing") or ""
        if missing and last_webhook_ms > float(state.get("missing_since") or 0):
            done.resumed = self._raise(source, "webhook.resumed", _resumed(source), now)
            fields |= {"missing": "", "missing_since": ""}
        elif not missing and missed >= self.settings.missing_after:
            error = _missing(source, missed, registration_state(hook))
            done.missing = self._raise(source, "webhook.missing", error, now)
            # on the clock webhooks' arrivals are measured by: the index's
            raised = self.conn.zscore(keys.EVENT_INDEX, done.missing or "")
            since_ms = raised if raised is not None else time.time() * 1000
            fields |= {"missing": done.missing or "", "missing_since": repr(since_ms)}
        with self.conn.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            if done.routed:
                pipe.hincrby(key, "reconciled", len(done.routed))
            pipe.execute()
        return done

    def _raise(self, source: str, kind: str, error: str, now: float) -> str | None:
        event = webhooks_event(source, kind, error, now)
        ref = synthetic.store(self.conn, event, retention=self.retention)
        log.warning(error, extra={"source": source, "kind": kind})
        return ref or keys.ref(source, event["id"])


def maintain(conn: "Redis", ctx: "WorkerContext", owner: str) -> list[SourcePass]:
    """Reconcile each instance whose pass is due and that no other worker reconciles now (a
    worker's maintenance calls it); what the passes did. An API error is logged and leaves the
    pass to the next interval. Raises ``RedisError``."""
    config, done = ctx.config, []
    for name, settings in reconciled(config).items():
        if not lock(conn, name, owner, settings, hold=ctx.settings.job_timeout):
            continue
        instance = config.etlworks[name]
        try:
            api = EtlworksClient(
                instance.url, instance.api_key, client=ctx.client, timeout=instance.timeout
            )
            reconciler = Reconciler(conn, config, name, api, retention=ctx.settings.event_retention)
            done.extend(ctx.run(reconciler.run()))
        except DeliveryError as exc:
            extra = {"instance": name, "reason": str(exc)}
            log.warning("reconciling failed; the next pass reads the same runs", extra=extra)
        finally:
            unlock(conn, name, owner)
    for source_pass in done:
        if source_pass.routed:
            counter = ctx.metrics.reconciled.labels(source_pass.source)
            counter.inc(len(source_pass.routed))
            log.info(
                "runs routed from the execution history",
                extra={"source": source_pass.source, "events": source_pass.routed},
            )
    return done


def lock(conn: "Redis", instance: str, owner: str, settings: Reconcile, hold: float) -> bool:
    """Whether ``owner`` may reconcile ``instance`` now: a pass is due (one an interval, among
    all workers) and no other runs (the lock lapses after ``hold`` seconds)."""
    if conn.exists(keys.reconcile_due(instance)):
        return False
    if not conn.set(keys.reconcile_lock(instance), owner, nx=True, ex=max(1, int(hold))):
        return False
    if not conn.set(keys.reconcile_due(instance), owner, nx=True, px=int(settings.interval * 1000)):
        unlock(conn, instance, owner)
        return False
    return True


def unlock(conn: "Redis", instance: str, owner: str) -> None:
    conn.eval(_UNLOCK, 1, keys.reconcile_lock(instance), owner)


def route_once(conn: "Redis", event: Mapping[str, Any], retention: float) -> str | None:
    """Store and route ``event`` (a run's outcome) unless something else claimed that run's
    outcome: its ref when this call stored it, else ``None``. The claim comes first, so the
    route job finds it its own and a webhook that comes later is a duplicate; a pass that died
    between the two finds its own claim, and stores the event then."""
    ref = keys.ref(event["source"], event["id"])
    claim = keys.outcome(event["source"], str(event["flow_id"]), str(event["audit_id"]))
    if not conn.set(claim, ref, nx=True, ex=int(retention)):
        first = conn.get(claim)
        if first is not None and keys.text(first) != ref:
            return None
    return synthetic.store(conn, event, retention=retention)


def reconciled_event(
    source: str, run: Execution, flow: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The event of a run read from the history, as its webhook would have made it."""
    tags = flow.get("tags")
    return {
        "id": f"reconcile-{run.flow_id}-{run.audit_id}",
        "source": source,
        "event": EVENTS.get(run.status, EXECUTED),
        "kind": synthetic.KINDS[run.status],
        "status": run.status,
        "flow_id": run.flow_id,
        "flow_name": run.raw.get("flowName") or flow.get("name"),
        "audit_id": run.audit_id,
        "webhook_id": None,
        "entity_id": run.audit_id,
        "entity_url": None,
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "params": dict(run.params),
        "error": run.error,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
        "sent_at": None,
        "received_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "triggered_by": None,
        "chain_depth": 0,
        "via": VIA,
        "raw": dict(run.raw),
    }


def webhooks_event(source: str, kind: str, error: str, now: float) -> dict[str, Any]:
    """A ``webhook.missing`` or ``webhook.resumed`` event of ``source``."""
    return {
        "id": f"{kind.replace('.', '-')}-{int(now * 1000)}",
        "source": source,
        "event": f"flowhooks.{kind.replace('.', '_')}",
        "kind": kind,
        "status": None,
        "flow_id": None,
        "flow_name": webhook_name(source),  # what a message names, as a join's name
        "audit_id": None,
        "webhook_id": None,
        "entity_id": None,
        "entity_url": None,
        "tags": [],
        "params": {},
        "error": error,
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
        "sent_at": None,
        "received_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "triggered_by": None,
        "chain_depth": 0,
        "via": VIA,
        "raw": {"webhook": webhook_name(source)},
    }


def last_webhook(conn: "Redis", source: str, after_ms: int) -> float | None:
    """When the newest webhook of ``source`` received after ``after_ms`` arrived (Unix
    milliseconds), ``None`` if none did: events flowhooks made do not count. The newest are
    read first, and no further than the first webhook found."""
    filters = eventlog.Filters(source=source, since_ms=after_ms + 1 if after_ms else None)
    for stored in eventlog.scan(conn, filters):
        event = stored.event
        if event.get("via") or str(event.get("event") or "").startswith("flowhooks."):
            continue
        score = conn.zscore(keys.EVENT_INDEX, stored.ref)
        return float(score) if score is not None else None
    return None


def _missing(source: str, missed: int, state: str) -> str:
    why = {"absent": f"; its webhook {webhook_name(source)} is gone from Etlworks"}
    why["disabled"] = f"; its webhook {webhook_name(source)} is disabled"
    return (
        f"Etlworks stopped sending webhooks to {source}: {missed} runs ended since the last "
        f"webhook arrived, routed from the execution history{why.get(state, '')}"
    )


def _resumed(source: str) -> str:
    return f"Etlworks sends webhooks to {source} again"


def _ended(run: Execution) -> float | None:
    return run.finished_at.timestamp() if run.finished_at and run.finished else None


def _hash(conn: "Redis", key: str) -> dict[str, str]:
    return {keys.text(k): keys.text(v) for k, v in conn.hgetall(key).items()}
