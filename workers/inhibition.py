"""Inhibition at work (see :mod:`config.inhibit`): the open incidents that may inhibit, kept in
Redis by the route jobs, and the notifications they held back, routed again once they close.

An event that opens an incident (a flow's failure, a missed expectation) and matches the source
matchers of a rule is noted in :data:`config.keys.INHIBITORS` when it is routed, before any
notification of it is attempted (a silenced or muted source inhibits all the same, as in
Alertmanager), and stays there until its flow's next success (its expectation's) closes the
incident (:func:`release`). An entry older than the incidents' lifetime is ignored.

A failure held back is remembered under its inhibitor (:func:`hold`); when the inhibitor closes,
each one whose own flow has not succeeded since is routed again (its route job replayed): it
pages then, once the upstream incident is over, as Alertmanager's inhibited alert still firing
does.
"""

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from rq.exceptions import NoSuchJobError

from config import eventlog, keys, routejobs
from config.inhibit import Inhibitor, is_source
from config.schema import Config
from workers.delivery import CRASH_RETRY, INCIDENT_TTL, incident_scope, labels_of, received_at

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("flowhooks.worker")


def note_and_load(conn: "Redis", config: Config, event: dict[str, Any]) -> list[Inhibitor]:
    """Note ``event`` as an inhibitor when it is one, and read every open one (one round trip
    each); nothing without rules."""
    if not config.inhibit_rules:
        return []
    labels, tags = labels_of(event)
    scope = incident_scope(event)
    now = time.time()
    if scope is not None and is_source(config.inhibit_rules, labels, tags):
        key = f"{labels['source']}:{scope}"
        ref = keys.ref(labels["source"], labels["id"])
        entry = {**Inhibitor(key, ref, labels, tuple(tags)).to_json(), "at": now}
        conn.hset(keys.INHIBITORS, key, json.dumps(entry))
    return load(conn, now, forget=True)


def load(conn: "Redis", now: float, *, forget: bool = False) -> list[Inhibitor]:
    """The open inhibitors, those older than the incidents' lifetime left out (and, with
    ``forget``, deleted: ``routes test`` reads without writing)."""
    found, stale = [], []
    for key, value in conn.hgetall(keys.INHIBITORS).items():
        data = json.loads(value)
        if now - float(data.get("at", 0)) <= INCIDENT_TTL:
            found.append(Inhibitor.from_json(keys.text(key), data))
        else:
            stale.append(key)
    if stale and forget:
        conn.hdel(keys.INHIBITORS, *stale)
    return found


def hold(conn: "Redis", inhibitor_ref: str, ref: str) -> None:
    """Remember that the inhibitor ``inhibitor_ref`` held back the event ``ref``."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.inhibited(inhibitor_ref), ref)
        pipe.expire(keys.inhibited(inhibitor_ref), INCIDENT_TTL)
        pipe.execute()


def release(conn: "Redis", source: str, scope: str, *, retention: float) -> list[str]:
    """The incident kept under ``scope`` of ``source`` closed: it inhibits no more, and the
    failures it held back whose flows have not succeeded since are routed again; their refs."""
    key = f"{source}:{scope}"
    value = conn.hget(keys.INHIBITORS, key)
    if value is None:
        return []
    conn.hdel(keys.INHIBITORS, key)
    inhibitor_ref = str(json.loads(value)["ref"])
    held = [keys.text(r) for r in conn.smembers(keys.inhibited(inhibitor_ref))]
    conn.delete(keys.inhibited(inhibitor_ref))
    routed = []
    for ref in sorted(held):
        if _still_failing(conn, ref) and _route_again(conn, ref, inhibitor_ref, retention):
            routed.append(ref)
    return routed


def _still_failing(conn: "Redis", ref: str) -> bool:
    """Whether the held event's flow has not succeeded since it was received."""
    event = eventlog.load_event(conn, ref)
    if event is None or incident_scope(event) is None:
        return False
    recovered = conn.get(keys.recovered(str(event["source"]), str(incident_scope(event))))
    received = received_at(event) or 0.0
    return recovered is None or float(keys.text(recovered)) < received


def _route_again(conn: "Redis", ref: str, inhibitor_ref: str, retention: float) -> bool:
    stored = eventlog.load(conn, ref)
    if stored is None:
        return False
    try:
        routejobs.replay(conn, stored, force=False, failure_ttl=retention, retry=CRASH_RETRY)
    except (routejobs.Busy, NoSuchJobError):
        return False  # its route job is running: it routes with the inhibitor gone
    source, event_id = keys.split_ref(ref)
    log.info(
        "no longer inhibited: routed again",
        extra={"source": source, "event_id": event_id, "inhibited_by": inhibitor_ref},
    )
    return True
