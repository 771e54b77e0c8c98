"""A route job taking the route jobs queued behind it: what it takes, in what order, and how
nothing it holds is lost when it fails, is stopped or dies."""

import json

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from config import keys
from workers.adoption import RQ_QUEUE, Taker, reclaim

TTL = 3600
WORKER = "w-1"
LATER = 4_000_000_000.0
"""A deadline far off."""


def holder(redis: Redis, job_id: str, deadline: float = LATER) -> Taker:
    """A taker running on :data:`WORKER` (which says it runs ``job_id``)."""
    return Taker(redis, job_id, TTL, worker=WORKER, deadline=deadline)


def route_job(redis: Redis, ref: str) -> Job:
    """A route job as RQ writes it (compressed data), under the id the receiver gives it."""
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    return queue.enqueue(keys.ROUTE_TASK, ref, job_id=keys.route_job_id(ref), result_ttl=0)


def queued(redis: Redis) -> list[str]:
    return [keys.text(item) for item in redis.lrange(RQ_QUEUE, 0, -1)]


def test_takes_route_jobs_in_queue_order_with_their_refs(redis: Redis) -> None:
    jobs = [route_job(redis, f"etl:ev-{i}") for i in range(3)]
    taker = holder(redis, "route-me")
    taken = [taker.take() for _ in range(3)]
    assert taken == [(job.id, f"etl:ev-{i}") for i, job in enumerate(jobs)]
    assert taker.take() is None
    assert queued(redis) == []


def test_a_routed_job_leaves_the_takers_list_and_its_hash_is_deleted(redis: Redis) -> None:
    first, second = route_job(redis, "etl:ev-1"), route_job(redis, "etl:ev-2")
    taker = holder(redis, "route-me")
    taker.take()
    taker.take()  # the first one is routed by now
    assert not redis.exists(first.key)
    assert [keys.text(i) for i in redis.lrange(keys.adopted("route-me"), 0, -1)] == [second.id]
    taker.done()
    assert not redis.exists(second.key)
    assert not redis.exists(keys.adopted("route-me"))


def test_stops_at_a_job_that_is_not_a_route_job(redis: Redis) -> None:
    route_job(redis, "etl:ev-1")
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    other = queue.enqueue("workers.tasks.deliver", {}, job_id="deliver-1")
    later = route_job(redis, "etl:ev-2")
    taker = holder(redis, "route-me")
    assert taker.take() is not None
    assert taker.take() is None
    assert queued(redis) == [other.id, later.id]


def test_a_job_with_other_arguments_goes_back_as_a_job_of_its_own(redis: Redis) -> None:
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    odd = queue.enqueue(keys.ROUTE_TASK, "etl:ev-1", "extra", job_id="route-odd")
    taker = holder(redis, "route-me")
    assert taker.take() == ("route-odd", None)
    assert queued(redis) == [odd.id]
    assert redis.exists(keys.solo(odd.id))
    assert taker.take() is None  # it is not taken again
    assert redis.exists(odd.key)


def test_a_released_job_runs_on_its_own_and_is_not_taken_again(redis: Redis) -> None:
    job = route_job(redis, "etl:ev-1")
    taker = holder(redis, "route-me")
    assert taker.take() == (job.id, "etl:ev-1")
    taker.release(job.id)
    assert queued(redis) == [job.id]
    assert redis.exists(job.key)
    assert holder(redis, "route-other").take() is None


def test_what_a_dead_run_held_goes_back_to_the_head_of_the_queue_in_order(redis: Redis) -> None:
    jobs = [route_job(redis, f"etl:ev-{i}") for i in range(4)]
    dead = holder(redis, "route-me")
    dead.take()
    dead.take()
    dead.take()  # routed the first two; holds the third
    rerun = holder(redis, "route-me")  # the same job, run again after its worker died
    assert rerun.give_back() == 1
    assert queued(redis) == [jobs[2].id, jobs[3].id]
    assert redis.exists(jobs[2].key)
    assert rerun.give_back() == 0


def test_the_receivers_plain_json_job_data_is_read(redis: Redis) -> None:
    ref = "etl:ev-1"
    job_id = keys.route_job_id(ref)
    data = f'["{keys.ROUTE_TASK}", null, ["{ref}"], {{}}]'
    redis.hset(f"rq:job:{job_id}", mapping={"data": data, "status": "queued"})
    redis.rpush(RQ_QUEUE, job_id)
    assert holder(redis, "route-me").take() == (job_id, ref)


def test_a_job_taken_after_its_worker_died_gives_back_what_it_held(redis: Redis) -> None:
    """RQ runs a route job again after its worker died; if another route job takes it from
    the queue, the events the dead run held go back to the queue first, not astray."""
    dead, held, behind = (route_job(redis, f"etl:ev-{i}") for i in range(3))
    redis.lpop(RQ_QUEUE)  # a worker dequeues `dead`, runs it, and its route job takes `held`
    assert holder(redis, dead.id).take() == (held.id, "etl:ev-1")
    redis.lpush(RQ_QUEUE, dead.id)  # the worker died; RQ queues `dead` again
    other = holder(redis, "route-other")
    assert other.take() == (dead.id, "etl:ev-0")
    assert queued(redis) == [held.id, behind.id]
    assert not redis.exists(keys.adopted(dead.id))


def held(redis: Redis, job_id: str) -> list[str]:
    return [keys.text(item) for item in redis.lrange(keys.adopted(job_id), 0, -1)]


@pytest.mark.parametrize("status", ["started", "finished", "failed", "scheduled", None])
def test_taking_stops_at_a_head_that_is_not_queued_and_leaves_it_to_rq(
    redis: Redis, status: str | None
) -> None:
    head, behind = route_job(redis, "etl:ev-1"), route_job(redis, "etl:ev-2")
    if status is None:
        redis.delete(head.key)
    else:
        redis.hset(head.key, "status", status)
    assert holder(redis, "route-me").take() is None
    assert queued(redis) == [head.id, behind.id]
    assert redis.exists(head.key) == (status is not None)


def test_a_routed_job_that_rq_runs_meanwhile_keeps_its_hash(redis: Redis) -> None:
    """A second copy of the id reached the queue and RQ started it while the taker routed the
    first: its hash is RQ's now, and the taker leaves it alone."""
    job = route_job(redis, "etl:ev-1")
    taking = holder(redis, "route-me")
    assert taking.take() == (job.id, "etl:ev-1")
    redis.hset(job.key, "status", "started")
    taking.done()
    assert redis.hget(job.key, "status") == b"started"
    assert held(redis, "route-me") == []
    assert not redis.hexists(keys.TAKEN, keys.adopted("route-me"))


def test_a_list_is_registered_with_its_holder_and_unregistered_when_done(redis: Redis) -> None:
    route_job(redis, "etl:ev-1")
    taking = Taker(redis, "route-me", TTL, worker="w-9", deadline=1234.5)
    taking.take()
    registered = redis.hget(keys.TAKEN, keys.adopted("route-me"))
    assert registered is not None
    assert json.loads(registered) == {"worker": "w-9", "job": "route-me", "deadline": 1234.5}
    taking.done()
    assert redis.hlen(keys.TAKEN) == 0


def hold_two(redis: Redis, job_id: str, deadline: float = LATER) -> list[Job]:
    """``job_id`` takes two route jobs and holds the second; the rest of the queue."""
    jobs = [route_job(redis, f"etl:{job_id}-{i}") for i in range(3)]
    taking = holder(redis, job_id, deadline)
    taking.take()
    taking.take()
    return jobs


@pytest.mark.parametrize(
    ("running", "deadline", "given"),
    [
        (None, LATER, True),  # the worker is gone (its liveness key expired)
        ("route-other", LATER, True),  # alive, but its job ended without giving back
        ("", LATER, True),  # alive and idle
        ("route-me", 1000.0, True),  # still at it, long past its deadline
        ("route-me", LATER, False),  # still at it
    ],
    ids=["dead", "another-job", "idle", "past-deadline", "running"],
)
def test_reclaim_gives_back_a_list_whose_holder_is_not_running_its_job(
    redis: Redis, running: str | None, deadline: float, given: bool
) -> None:
    jobs = hold_two(redis, "route-me", deadline)
    if running is not None:
        redis.set(keys.worker(WORKER), running)
    assert reclaim(redis, 2000.0) == (1 if given else 0)
    if given:
        assert queued(redis) == [jobs[1].id, jobs[2].id]
        assert held(redis, "route-me") == []
        assert redis.hlen(keys.TAKEN) == 0
    else:
        assert queued(redis) == [jobs[2].id]
        assert held(redis, "route-me") == [jobs[1].id]


def test_one_worker_reclaims_at_a_time(redis: Redis) -> None:
    hold_two(redis, "route-me")
    assert reclaim(redis, 2000.0) == 1
    hold_two(redis, "route-you")
    assert reclaim(redis, 2000.0) is None  # the first look holds the lock a moment
    redis.delete(keys.TAKEN_LOCK)
    assert reclaim(redis, 2000.0) == 1
