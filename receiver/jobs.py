"""The route job of an event, written by the receiver's own Lua script in RQ's format.

The receiver does not call ``Queue.enqueue`` per request (it costs a dozen Redis commands and
most of a millisecond of CPU); it asks RQ once, at start, for the hash RQ would write, and fills
in the few fields that differ per event. ``tests/receiver/test_jobs.py`` holds this to what
``Queue.enqueue`` writes, so an RQ upgrade that changes the format fails the suite.
"""

import json
import zlib
from datetime import UTC, datetime

from redis import Redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import get_call_string

from config import keys

PER_EVENT = ("data", "description", "created_at", "enqueued_at")
"""Fields of the job hash that differ from one event to the next."""


def template(timeout: float, failure_ttl: float) -> dict[str, str | bytes | int]:
    """RQ's own serialization of a queued route job, without the per-event fields."""
    job = Job.create(
        keys.ROUTE_TASK,
        args=["template"],
        connection=Redis(),  # never used for I/O: Job.create and to_dict stay in memory
        serializer=JSONSerializer,
        id=keys.route_job_id("template"),
        timeout=int(timeout),
        result_ttl=0,
        failure_ttl=int(failure_ttl),
    )
    job.origin = keys.QUEUE
    job.enqueued_at = datetime.now(UTC)
    fields = {name: value for name, value in job.to_dict().items() if name not in PER_EVENT}
    fields["status"] = JobStatus.QUEUED.value
    return fields


def data(event_ref: str) -> bytes:
    """The job's ``data`` field as RQ's ``JSONSerializer`` and ``Job.to_dict`` store it."""
    return zlib.compress(json.dumps([keys.ROUTE_TASK, None, [event_ref], {}]).encode())


def description(event_ref: str) -> str:
    """The job's ``description`` as RQ writes it (an argument's repr is cut at 75 characters)."""
    return str(get_call_string(keys.ROUTE_TASK, [event_ref], {}, max_length=75))


def rq_time(at: datetime) -> str:
    """A timestamp in RQ's stored format."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
