"""Events flowhooks makes itself (a run's outcome, a join's expiry), stored as the receiver
stores a webhook: deduplicated by (source, id), kept for the retention period, indexed by
time, with a timeline that starts by naming its cause, and, when asked, routed by a job of its
own. Routing an outcome once, whichever of it and the real webhook comes first, is the route
job's business (:func:`claim_outcome`)."""

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import WatchError
from rq import Queue
from rq.serializers import JSONSerializer

from config import eventlog, keys, routejobs
from workers.delivery import CRASH_RETRY

if TYPE_CHECKING:
    from redis import Redis

    from workers.joins import Expiry

KINDS = {
    "success": "flow.succeeded",
    "warning": "flow.warning",
    "error": "flow.failed",
    "canceled": "flow.canceled",
}
"""The kind of event a run's final status makes."""


def store(
    conn: "Redis",
    event: Mapping[str, Any],
    *,
    retention: float,
    route: bool = True,
) -> str | None:
    """Store ``event`` (a canonical event as JSON) and queue its route job; its ref, or
    ``None`` when an event of that source and id was stored before."""
    ref = keys.ref(event["source"], event["id"])
    received = eventlog.entry("received", synthetic=True, triggered_by=event.get("triggered_by"))
    if event.get("via"):
        received["via"] = event["via"]
    queue = Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer)
    # One transaction, the dedup key in it: a job that dies before it stored nothing, and its
    # retry stores it all; one that dies after finds it stored.
    with conn.pipeline(transaction=True) as pipe:
        pipe.watch(keys.dedup(ref))  # type: ignore[no-untyped-call]
        if pipe.exists(keys.dedup(ref)):
            return None
        pipe.multi()
        pipe.set(keys.event(ref), json.dumps(event, default=str), ex=int(retention))
        pipe.rpush(keys.timeline(ref), json.dumps(received, default=str))
        pipe.expire(keys.timeline(ref), int(retention))
        pipe.zadd(keys.EVENT_INDEX, {ref: int(time.time() * 1000)})
        if route:
            queue.enqueue_call(
                keys.ROUTE_TASK,
                args=(ref,),
                job_id=keys.route_job_id(ref),
                timeout=int(routejobs.TIMEOUT),
                result_ttl=0,
                failure_ttl=int(retention),
                retry=CRASH_RETRY,
                pipeline=pipe,
            )
        pipe.set(keys.dedup(ref), "1", ex=int(retention))
        try:
            pipe.execute()
        except WatchError:  # stored by another run in between
            return None
    return ref


def outcome_event(
    cause: Mapping[str, Any],
    *,
    flow_id: str,
    audit_id: str,
    kind: str,
    status: str | None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event of a run flowhooks started for ``cause`` ending (or timing out), in the
    canonical shape, with ``triggered_by`` naming the cause."""
    cause_ref = keys.ref(cause["source"], cause["id"])
    record = record or {}
    return {
        "id": f"run-{flow_id}-{audit_id}-{kind.removeprefix('flow.')}",
        "source": cause["source"],
        "event": "flowhooks.run",
        "kind": kind,
        "status": status,
        "flow_id": flow_id,
        "flow_name": record.get("flow_name"),
        "audit_id": audit_id,
        "webhook_id": None,
        "entity_id": None,
        "entity_url": None,
        "tags": [],
        "params": dict(record.get("params") or {}),
        "error": record.get("error"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "duration_ms": record.get("duration_ms"),
        "sent_at": None,
        "received_at": datetime.now(UTC).isoformat(),
        "triggered_by": cause_ref,
        "chain_depth": int(cause.get("chain_depth") or 0) + 1,
        "raw": None,
    }


def expiry_event(expiry: "Expiry", *, source: str) -> dict[str, Any]:
    """The ``join.expired`` event of a join window that closed incomplete: ``flow_name`` is the
    join, ``error`` says what is missing, ``raw`` holds the members seen and missing."""
    return {
        "id": f"join-{expiry.join}-{expiry.window_key}",
        "source": source,
        "event": "flowhooks.join_expired",
        "kind": "join.expired",
        "status": None,
        "flow_id": None,
        "flow_name": expiry.join,
        "audit_id": None,
        "webhook_id": None,
        "entity_id": None,
        "entity_url": None,
        "tags": [],
        "params": {},
        "error": expiry.summary,
        "started_at": expiry.start.isoformat(),
        "finished_at": expiry.end.isoformat(),
        "duration_ms": None,
        "sent_at": None,
        "received_at": datetime.now(UTC).isoformat(),
        "triggered_by": None,
        "chain_depth": 0,
        "raw": {"join": expiry.join, "seen": dict(expiry.seen), "missing": list(expiry.missing)},
    }


def claim_outcome(conn: "Redis", event: Mapping[str, Any], ttl: float) -> str | None:
    """Claim the routing of a run's final outcome for ``event``: ``None`` when it is this
    event's to route, else the ref of the event (the webhook, or flowhooks' own) that claimed
    it first. Events that are not a run's final outcome are always their own to route."""
    # A timeout is flowhooks giving up waiting, not the run's end: the run's real outcome,
    # when it comes, is routed all the same.
    if event.get("kind") not in KINDS.values():
        return None
    if not (event.get("flow_id") and event.get("audit_id")):
        return None
    ref = keys.ref(event["source"], event["id"])
    key = keys.outcome(event["source"], str(event["flow_id"]), str(event["audit_id"]))
    # SET NX then GET, not SET NX GET: Redis 6.2 (the embedded one of `flowhooks dev`) lacks it
    if conn.set(key, ref, nx=True, ex=int(ttl)):
        return None
    first = conn.get(key)
    if first is None:  # expired in between: nothing routed it within the retention
        return None
    first_ref = first.decode() if isinstance(first, bytes) else str(first)
    return None if first_ref == ref else first_ref
