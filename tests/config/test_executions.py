"""RQ's execution records of a job whose earlier run died: cleared before the job is deleted,
which RQ 3.0 would otherwise refuse (``Execution ... not found``)."""

from redis import Redis
from rq import Queue
from rq.executions import Execution
from rq.serializers import JSONSerializer

from config import executions, keys


def test_the_records_of_a_dead_run_are_forgotten_and_the_job_deletes(redis: Redis) -> None:
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    job = queue.enqueue(keys.ROUTE_TASK, "etl:ev-1", job_id="route-1", result_ttl=0)
    with redis.pipeline() as pipe:
        dead = Execution.create(job, 15, pipeline=pipe, worker_name="w-dead")
        live = Execution.create(job, 15, pipeline=pipe, worker_name="w-live")
        pipe.execute()
    redis.delete(dead.key)  # its hash expired with its worker; RQ's registry entry did not
    assert executions.forget_dead(redis, job.id) == 1
    assert redis.zrange(f"rq:executions:{job.id}", 0, -1) == [live.id.encode()]
    job.delete()  # raises ValueError while the dead run's entry is there
    assert not redis.exists(job.key)
    assert executions.forget_dead(redis, job.id) == 0
