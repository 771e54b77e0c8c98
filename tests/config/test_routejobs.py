"""An event's route job queued again (``routejobs.replay``), against a real Redis."""

import json

import pytest
from redis import Redis
from rq.job import Job, JobStatus, Retry
from rq.serializers import JSONSerializer

from config import eventlog, keys, routejobs

REF = keys.ref("etl", "ev-1")
TIMELINE = [
    {"at": "t1", "stage": "received"},
    {"at": "t2", "stage": "delivery", "delivery_id": "d1", "outcome": "failed"},
    {"at": "t3", "stage": "delivery", "delivery_id": "d2", "outcome": "delivered"},
    {"at": "t4", "stage": "delivery", "delivery_id": "d1", "outcome": "delivered"},
    {"at": "t5", "stage": "suppressed", "action": "pager"},
]


def test_the_deliveries_a_timeline_names() -> None:
    assert routejobs.delivery_ids(TIMELINE) == ["d1", "d2"]
    assert routejobs.delivery_ids([{"stage": "x", "delivery_id": ""}, {"stage": "y"}]) == []


def stored(conn: Redis) -> eventlog.StoredEvent:
    conn.set(keys.event(REF), json.dumps({"id": "ev-1", "source": "etl"}))
    conn.rpush(keys.timeline(REF), *(json.dumps(e) for e in TIMELINE))
    found = eventlog.load(conn, REF)
    assert found is not None
    return found


def replay(conn: Redis, *, force: bool) -> routejobs.Replayed:
    return routejobs.replay(conn, stored(conn), force=force, failure_ttl=600, retry=Retry(max=1))


@pytest.mark.parametrize("force", [False, True])
def test_a_replay_queues_the_route_job_and_forgets_deliveries_only_when_forced(
    redis: Redis, force: bool
) -> None:
    redis.set(keys.delivered("d1"), "1")
    redis.set(keys.delivered("d2"), "1")
    done = replay(redis, force=force)
    assert done == routejobs.Replayed(keys.route_job_id(REF), ("d1", "d2") if force else ())
    assert redis.lrange(f"rq:queue:{keys.QUEUE}", 0, -1) == [done.job_id.encode()]
    job = Job.fetch(done.job_id, connection=redis, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.timeout, job.retries_left) == (
        keys.ROUTE_TASK,
        [REF],
        60,
        1,
    )
    assert bool(redis.exists(keys.delivered("d1"))) is not force
    last = json.loads(redis.lindex(keys.timeline(REF), -1) or b"{}")
    assert (last["stage"], last["force"]) == ("replayed", force)


def test_a_queued_route_job_is_left_alone(redis: Redis) -> None:
    replay(redis, force=False)
    redis.set(keys.delivered("d1"), "1")
    with pytest.raises(routejobs.Busy):
        replay(redis, force=True)
    assert redis.exists(keys.delivered("d1"))  # nothing forgotten either
    assert redis.llen(f"rq:queue:{keys.QUEUE}") == 1


def test_a_finished_job_is_replaced_not_merged(redis: Redis) -> None:
    first = replay(redis, force=False)
    job = Job.fetch(first.job_id, connection=redis, serializer=JSONSerializer)
    redis.lpop(f"rq:queue:{keys.QUEUE}")
    job.set_status(JobStatus.STOPPED)
    redis.hset(job.key, "exc_info", "left over")
    replay(redis, force=False)
    assert redis.hget(job.key, "exc_info") is None
    assert Job.fetch(job.id, connection=redis).get_status() == JobStatus.QUEUED
