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
