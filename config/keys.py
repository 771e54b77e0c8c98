"""The Redis key layout, the one place both processes learn it from.

An event is addressed by its *ref*, ``{source}:{id}``: ids are unique per source only, and
source names cannot contain a colon, so the first colon splits a ref unambiguously.
"""

import hashlib

PREFIX = "flowhooks"
QUEUE = "flowhooks"
ROUTE_TASK = "workers.tasks.route_event"
EVENT_INDEX = f"{PREFIX}:events"
"""Sorted set of refs scored by received time in milliseconds."""


def text(reply: bytes | str) -> str:
    """A Redis reply as text, from a client that decodes replies or one that does not."""
    return reply.decode() if isinstance(reply, bytes) else reply


def ref(source: str, event_id: str) -> str:
    return f"{source}:{event_id}"


def split_ref(event_ref: str) -> tuple[str, str]:
    source, _, event_id = event_ref.partition(":")
    return source, event_id


def dedup(event_ref: str) -> str:
    return f"{PREFIX}:dedup:{event_ref}"


def event(event_ref: str) -> str:
    return f"{PREFIX}:event:{event_ref}"


def timeline(event_ref: str) -> str:
    return f"{PREFIX}:timeline:{event_ref}"


ROUTE_JOB_PREFIX = "route-"


def route_job_id(event_ref: str) -> str:
    """The deterministic RQ job id of an event's route job (RQ allows ``[A-Za-z0-9_-]``).

    SHA-1 because the receiver's write script derives the same id with Redis' ``sha1hex``.
    """
    return ROUTE_JOB_PREFIX + hashlib.sha1(event_ref.encode(), usedforsecurity=False).hexdigest()


def adopted(job_id: str) -> str:
    """The route jobs a running route job took from the queue to run itself
    (:mod:`workers.adoption`)."""
    return f"{PREFIX}:adopted:{job_id}"


TAKEN = f"{PREFIX}:taken"
"""Hash of every taker's list (:func:`adopted`) to its holder, as JSON: the worker, the job
and the deadline (epoch seconds) past which the list goes back whatever the holder does."""
TAKEN_LOCK = f"{PREFIX}:taken-lock"
"""Held for a few seconds by the worker that looks for taken lists to give back."""


def worker(name: str) -> str:
    """A worker's liveness: the id of the job it runs ('' when idle), refreshed every couple
    of seconds and gone ten seconds after the worker is."""
    return f"{PREFIX}:worker:{name}"


def solo(job_id: str) -> str:
    """Set on a route job that must run as a job of its own: no other route job takes it."""
    return f"{PREFIX}:solo:{job_id}"


def delivered(delivery_id: str) -> str:
    """Set once a delivery succeeded: it is never sent again (replays, duplicates, re-runs)."""
    return f"{PREFIX}:delivered:{delivery_id}"


def incident(source: str, flow_id: str, route: str, action: str) -> str:
    return f"{PREFIX}:incident:{source}:{flow_id}:{route}:{action}"


def incidents(source: str, flow_id: str) -> str:
    """The set of open incident keys of one flow, which its next success resolves."""
    return f"{PREFIX}:incidents:{source}:{flow_id}"


def recovered(source: str, flow_id: str) -> str:
    """When the flow last succeeded, so that a late retry of an older failure does not reopen
    its incident."""
    return f"{PREFIX}:recovered:{source}:{flow_id}"


def expectation(name: str) -> str:
    """Hash of what flowhooks knows of an expectation: since when it watches, the last
    success and its event, the last deadline judged, the deadline missed and its event."""
    return f"{PREFIX}:expect:{name}"


def audit(instance: str) -> str:
    """The flows' recent changes an Etlworks instance's audit log answered, as JSON, for a
    minute (:mod:`workers.etlworks.audit`)."""
    return f"{PREFIX}:audit:{instance}"


def change(event_ref: str) -> str:
    """The latest change of a failed flow, as JSON, found when its event was routed."""
    return f"{PREFIX}:change:{event_ref}"


INHIBITORS = f"{PREFIX}:inhibitors"
"""Hash of the open incidents that may inhibit (``source:scope``) to their event, as JSON
(:mod:`workers.inhibition`)."""


def inhibited(inhibitor_ref: str) -> str:
    """The set of events an inhibitor held back, routed again when its incident closes."""
    return f"{PREFIX}:inhibited:{inhibitor_ref}"


SILENCES = f"{PREFIX}:silences"
"""Hash of silence id to the silence as JSON."""


def pace(action: str) -> str:
    return f"{PREFIX}:pace:{action}"


def group(group_id: str) -> str:
    return f"{PREFIX}:group:{group_id}"


def group_flush(group_id: str) -> str:
    return f"{PREFIX}:group-flush:{group_id}"


def outcome(source: str, flow_id: str, audit_id: str) -> str:
    """The ref of the event that routes a run's final outcome: Etlworks' webhook and the event
    flowhooks makes when it follows the run are one outcome, routed once."""
    return f"{PREFIX}:outcome:{source}:{flow_id}:{audit_id}"


def trigger(trigger_id: str) -> str:
    """A trigger of an Etlworks call: claimed before the call, the run's audit id after."""
    return f"{PREFIX}:trigger:{trigger_id}"


def chain(source: str, flow_id: str, audit_id: str) -> str:
    """Which retry of its chain a run flowhooks started is: the chain's first run and the
    attempt."""
    return f"{PREFIX}:chain:{source}:{flow_id}:{audit_id}"


def budget(action: str, flow_id: str) -> str:
    """When an action retried a flow, scored by time, for its budget's window."""
    return f"{PREFIX}:budget:{action}:{flow_id}"


def failures(source: str, flow_id: str) -> str:
    """How many times in a row the flow failed; a success resets it."""
    return f"{PREFIX}:failures:{source}:{flow_id}"


def reconcile(instance: str) -> str:
    """An Etlworks instance's reconciling: its watermark (epoch seconds) and last pass."""
    return f"{PREFIX}:reconcile:{instance}"


def reconcile_due(instance: str) -> str:
    """Set for one interval by the worker that reconciles the instance: one pass an interval."""
    return f"{PREFIX}:reconcile-due:{instance}"


def reconcile_lock(instance: str) -> str:
    """Held by the worker reconciling the instance now: one pass at a time."""
    return f"{PREFIX}:reconcile-lock:{instance}"


def webhooks(source: str) -> str:
    """What reconciling learnt of a source's webhooks: the runs it routed, the registration
    it last saw, whether they are missing."""
    return f"{PREFIX}:webhooks:{source}"


LANES = f"{PREFIX}:lanes"
"""Sorted set of the actions whose lanes hold deliveries, scored by when the next one is due
(epoch seconds): what the workers' drainers look at (:mod:`workers.lanes`)."""


def lane(action: str) -> str:
    """The deliveries of one action waiting their turn, oldest first, as JSON."""
    return f"{PREFIX}:lane:{action}"


def lane_state(action: str) -> str:
    """Hash of an action's lane: its circuit, failures in a row, and until when it pauses."""
    return f"{PREFIX}:lane-state:{action}"


def lane_lease(action: str) -> str:
    """Held, and renewed, by the one worker that drains the action's lane."""
    return f"{PREFIX}:lane-lease:{action}"


def lane_batch(action: str) -> str:
    """How many entries at the head of the lane the digest being sent carries, so that a
    drainer that died sending it is followed by one that sends the same digest."""
    return f"{PREFIX}:lane-batch:{action}"


def lane_storm(action: str) -> str:
    """The flows the last storm digest of an action named, for the message after it."""
    return f"{PREFIX}:lane-storm:{action}"
