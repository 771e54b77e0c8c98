"""The route job of an event, written by the receiver's own Lua script in RQ's format.

The receiver does not call ``Queue.enqueue`` per request (it costs a dozen Redis commands and
most of a millisecond of CPU); it asks RQ once, at start, for the hash RQ would write, and its
write script (:mod:`receiver.ingest`) fills in the few fields that differ per event: the job
id, ``data`` (uncompressed JSON, which RQ reads as is), ``description`` and the timestamps.
``tests/receiver/test_jobs.py`` holds this to what ``Queue.enqueue`` writes, so an RQ upgrade
that changes the format fails the suite.
"""

from datetime import UTC, datetime

from redis import Redis
from rq import Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from config import keys

PER_EVENT = ("data", "description", "created_at", "enqueued_at")
"""Fields of the job hash that differ from one event to the next."""


ROUTE_RETRY = Retry(max=3, interval=[0, 60, 300])
"""Route jobs that fail, or whose worker died under them (RQ's abandoned-job recovery), run
again: at once the first time (no scheduler needed, whose lock a dead worker may still hold),
then after a minute and five; once retries are spent they stay in the failed-job registry,
the dead letter."""


def template(timeout: float, failure_ttl: float) -> dict[str, str | bytes | int]:
    """RQ's own serialization of a queued route job, without the per-event fields and the
    empty ones."""
    job = Job.create(
        keys.ROUTE_TASK,
        args=["template"],
        connection=Redis(),  # never used for I/O: Job.create and to_dict stay in memory
        serializer=JSONSerializer,
        id=keys.route_job_id("template"),
        timeout=int(timeout),
        result_ttl=0,
        failure_ttl=int(failure_ttl),
        retry=ROUTE_RETRY,
    )
    job.origin = keys.QUEUE
    job.enqueued_at = datetime.now(UTC)
    # RQ reads an empty field as one that is absent (``Job.restore``: ``if obj.get(name)``), so
    # the empty ones are left out: the hash is Redis' costliest write per event.
    fields = {
        name: value
        for name, value in job.to_dict().items()
        if name not in PER_EVENT and value != ""
    }
    fields["status"] = JobStatus.QUEUED.value
    return fields


def rq_time(at: datetime) -> str:
    """A timestamp in RQ's stored format."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
