"""Replays through the API, against the real pipeline: the receiver stores an event, a real
worker routes it to a webhook's stand-in, and a replay queues its route job again. What was
delivered is not delivered again, unless ``force=true``."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job, JobStatus
from rq.results import Result as JobResult
from rq.serializers import JSONSerializer

from config import deadletters, eventlog, keys
from tests.receiver.admin.support import HOOK_PATH, Pipeline, pipeline
from tests.workers.sinks.standins import Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def system(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(redis, redis_url, tmp_path) as running:
        yield running


def deliveries(system: Pipeline, ref: str) -> list[str]:
    stored = eventlog.load(system.redis, ref)
    assert stored is not None
    return [e["outcome"] for e in stored.timeline if e["stage"] == "delivery"]


def test_a_replay_does_not_redo_a_delivery_unless_forced(system: Pipeline) -> None:
    """(A success: a failure's replay within its route's repeat interval is held back by the
    open incident, forced or not, as a second failure would be.)"""
    ref = system.post("rp-1", event="FLOW_SUCCESS")
    system.work()
    assert [r.path for r in system.hook.requests] == [HOOK_PATH]

    replayed = system.api("POST", "/api/events/etl/rp-1/replay")
    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == {
        "ref": ref,
        "job": keys.route_job_id(ref),
        "force": False,
        "forgotten": [],
    }
    system.work()
    assert len(system.hook.requests) == 1
    assert deliveries(system, ref) == ["delivered", "skipped"]

    forced = system.api("POST", "/api/events/rp-1/replay", params={"force": "true"})
    assert forced.status_code == 202, forced.text
    [delivery_id] = forced.json()["forgotten"]
    assert delivery_id.startswith("d")
    system.work()
    assert len(system.hook.requests) == 2
    assert deliveries(system, ref) == ["delivered", "skipped", "delivered"]
    stages = system.api("GET", "/api/events/etl/rp-1").json()["stages"]
    assert [e["force"] for e in stages["replayed"]] == [False, True]


def test_a_route_job_still_queued_is_not_queued_twice(system: Pipeline) -> None:
    system.post("rp-2")
    busy = system.api("POST", "/api/events/etl/rp-2/replay")
    assert (busy.status_code, busy.json()) == (
        409,
        {"error": "the event's route job is queued or running already"},
    )
    system.work()
    assert len(system.hook.requests) == 1


def test_a_replay_replaces_a_route_job_that_failed_for_good(system: Pipeline) -> None:
    """The dead route job leaves the dead-letter registry: the replay is its new run."""
    ref = system.post("rp-3", event="FLOW_SUCCESS")
    redis = system.redis
    job = Job.fetch(keys.route_job_id(ref), connection=redis, serializer=JSONSerializer)
    with redis.pipeline() as pipe:  # what RQ records when a job fails for good
        pipe.lrem(f"rq:queue:{keys.QUEUE}", 0, job.id)
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        deadletters.registry(redis).add(
            job, ttl=600, exc_string="RuntimeError: boom", pipeline=pipe
        )
        JobResult.create_failure(job, 600, exc_string="RuntimeError: boom", pipeline=pipe)
        pipe.execute()
    assert [d["job"] for d in system.api("GET", "/api/dlq").json()] == [job.id]

    replayed = system.api("POST", "/api/events/etl/rp-3/replay")
    assert replayed.status_code == 202, replayed.text
    assert system.api("GET", "/api/dlq").json() == []
    system.work()
    assert deliveries(system, ref) == ["delivered"]
    assert not redis.exists(f"rq:job:{job.id}")  # done, and RQ keeps no result


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/events/etl/nope/replay", 404),
        ("/api/events/nope/replay", 404),
        ("/api/events/etl/rp/replay?force=yes", 400),
        ("/api/events/etl/rp/replay?forced=true", 400),
    ],
)
def test_replay_refusals(system: Pipeline, path: str, status: int) -> None:
    response = system.api("POST", path)
    assert response.status_code == status
    assert "error" in response.json()


def test_a_far_side_that_refuses_makes_a_dead_letter_replayed_from_the_api(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    with pipeline(redis, redis_url, tmp_path, Reply(400, b"no")) as system:
        ref = system.post("dl-1")
        system.work()
        [dead] = system.api("GET", "/api/dlq").json()
        assert (dead["ref"], dead["action"], dead["task"]) == (ref, "hook", "workers.tasks.deliver")
        assert dead["reason"].startswith("permanent failure")

        requeued = system.api("POST", f"/api/dlq/{dead['job']}/replay")
        assert (requeued.status_code, requeued.json()) == (
            200,
            {"job": dead["job"], "requeued": True},
        )
        system.work()
        assert len(system.hook.requests) == 2  # the 400, then the replay's 200
        assert system.api("GET", "/api/dlq").json() == []
        assert deliveries(system, ref) == ["failed", "dead_letter", "delivered"]
