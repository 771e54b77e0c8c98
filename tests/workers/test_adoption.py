"""A route job taking the route jobs queued behind it: what it takes, in what order, and how
nothing it holds is lost when it fails, is stopped or dies."""

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from config import keys
from workers.adoption import RQ_QUEUE, Taker

TTL = 3600


def route_job(redis: Redis, ref: str) -> Job:
    """A route job as RQ writes it (compressed data), under the id the receiver gives it."""
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    return queue.enqueue(keys.ROUTE_TASK, ref, job_id=keys.route_job_id(ref), result_ttl=0)


def queued(redis: Redis) -> list[str]:
    return [keys.text(item) for item in redis.lrange(RQ_QUEUE, 0, -1)]


def test_takes_route_jobs_in_queue_order_with_their_refs(redis: Redis) -> None:
    jobs = [route_job(redis, f"etl:ev-{i}") for i in range(3)]
    taker = Taker(redis, "route-me", TTL)
    taken = [taker.take() for _ in range(3)]
    assert taken == [(job.id, f"etl:ev-{i}") for i, job in enumerate(jobs)]
    assert taker.take() is None
    assert queued(redis) == []


def test_a_routed_job_leaves_the_takers_list_and_its_hash_is_deleted(redis: Redis) -> None:
    first, second = route_job(redis, "etl:ev-1"), route_job(redis, "etl:ev-2")
    taker = Taker(redis, "route-me", TTL)
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
    taker = Taker(redis, "route-me", TTL)
    assert taker.take() is not None
    assert taker.take() is None
    assert queued(redis) == [other.id, later.id]


def test_a_job_with_other_arguments_goes_back_as_a_job_of_its_own(redis: Redis) -> None:
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    odd = queue.enqueue(keys.ROUTE_TASK, "etl:ev-1", "extra", job_id="route-odd")
    taker = Taker(redis, "route-me", TTL)
    assert taker.take() == ("route-odd", None)
    assert queued(redis) == [odd.id]
    assert redis.exists(keys.solo(odd.id))
    assert taker.take() is None  # it is not taken again
    assert redis.exists(odd.key)


def test_a_released_job_runs_on_its_own_and_is_not_taken_again(redis: Redis) -> None:
    job = route_job(redis, "etl:ev-1")
    taker = Taker(redis, "route-me", TTL)
    assert taker.take() == (job.id, "etl:ev-1")
    taker.release(job.id)
    assert queued(redis) == [job.id]
    assert redis.exists(job.key)
    assert Taker(redis, "route-other", TTL).take() is None


def test_what_a_dead_run_held_goes_back_to_the_head_of_the_queue_in_order(redis: Redis) -> None:
    jobs = [route_job(redis, f"etl:ev-{i}") for i in range(4)]
    dead = Taker(redis, "route-me", TTL)
    dead.take()
    dead.take()
    dead.take()  # routed the first two; holds the third
    rerun = Taker(redis, "route-me", TTL)  # the same job, run again after its worker died
    assert rerun.give_back() == 1
    assert queued(redis) == [jobs[2].id, jobs[3].id]
    assert redis.exists(jobs[2].key)
    assert rerun.give_back() == 0


def test_the_receivers_plain_json_job_data_is_read(redis: Redis) -> None:
    ref = "etl:ev-1"
    job_id = keys.route_job_id(ref)
    redis.hset(f"rq:job:{job_id}", "data", f'["{keys.ROUTE_TASK}", null, ["{ref}"], {{}}]')
    redis.rpush(RQ_QUEUE, job_id)
    assert Taker(redis, "route-me", TTL).take() == (job_id, ref)


def test_a_job_taken_after_its_worker_died_gives_back_what_it_held(redis: Redis) -> None:
    """RQ runs a route job again after its worker died; if another route job takes it from
    the queue, the events the dead run held go back to the queue first, not astray."""
    dead, held, behind = (route_job(redis, f"etl:ev-{i}") for i in range(3))
    redis.lpop(RQ_QUEUE)  # a worker dequeues `dead`, runs it, and its route job takes `held`
    assert Taker(redis, dead.id, TTL).take() == (held.id, "etl:ev-1")
    redis.lpush(RQ_QUEUE, dead.id)  # the worker died; RQ queues `dead` again
    other = Taker(redis, "route-other", TTL)
    assert other.take() == (dead.id, "etl:ev-0")
    assert queued(redis) == [held.id, behind.id]
    assert not redis.exists(keys.adopted(dead.id))
