"""RQ 3.0's execution records of a job, kept consistent where RQ leaves them inconsistent.

RQ keeps, per job, a sorted set of its executions (``rq:executions:{job_id}``) whose members
outlive their execution's hash by a minute (RQ scores them 60 s past the hash's expiry). When
the job is deleted (a success whose result is not kept, a replay), RQ fetches every member's
hash and raises ``ValueError: Execution ... not found`` for one that expired: the records of a
run whose worker died. Inside RQ's success handling that turns a success into a failure, so a
job is cleared of them first (:func:`forget_dead`).
"""

from typing import TYPE_CHECKING

from rq.executions import Execution, ExecutionRegistry

from config import keys

if TYPE_CHECKING:
    from redis import Redis


def forget_dead(conn: "Redis", job_id: str) -> int:
    """Remove from the job's execution registry the members whose execution hash is gone; how
    many there were. Raises ``RedisError``."""
    registry = ExecutionRegistry(job_id, connection=conn)
    members: list[bytes] = conn.zrange(registry.key, 0, -1)  # type: ignore[assignment]
    ids = [keys.text(member) for member in members]
    if not ids:
        return 0
    with conn.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.exists(Execution(execution_id, job_id, conn).key)
        found = pipe.execute()
    dead = [execution_id for execution_id, there in zip(ids, found, strict=True) if not there]
    if dead:
        conn.zrem(registry.key, *dead)
    return len(dead)
