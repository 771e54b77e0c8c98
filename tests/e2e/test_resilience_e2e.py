"""Workers through Redis restarts and crashes, with real processes: the receiver, ``flowhooks
worker`` processes, a real Redis and HTTP stand-ins. Each crash is a SIGKILL at a known point
(a stand-in holds a send, or an RQ callback holds maintenance), so the test knows where the
worker was."""

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from config import keys
from tests.e2e.delivery_support import (
    RQ_STARTED,
    SLACK_PATH,
    WEBHOOK_PATH,
    HoldingStandIn,
    Sinks,
    WorkerProcess,
    attempts,
    deliveries,
    living,
    running,
    serving_sinks,
    webhook,
)
from tests.e2e.holds import HELD
from tests.support import RedisProcess, wait_until
from workers.adoption import RQ_QUEUE

pytestmark = pytest.mark.slow

FAILURES_TO = """
actions: []
routes:
  - matchers: ['kind="flow.failed"']
    actions: [{actions}]
"""
RECOVERY = 60.0
"""What the README promises: a killed worker's work runs again within a minute."""


def failures_to(*actions: str) -> str:
    return FAILURES_TO.format(actions=", ".join(actions))


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture
def private_client(private_redis: RedisProcess) -> Iterator[Redis]:
    """A client of ``private_redis``, closed after the test (its sockets outlive a restart)."""
    client = Redis.from_url(private_redis.url)
    yield client
    client.close()


def dead_letters(redis: Redis) -> list[str]:
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    return FailedJobRegistry(queue=queue).get_job_ids()


def log_lines(worker: WorkerProcess, message: str) -> list[dict[str, object]]:
    found = []
    for line in worker.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("msg") == message:
            found.append(record)
    return found


# Redis restarts ---------------------------------------------------------------------------


def test_a_redis_restart_leaves_workers_running_and_delivering(
    private_redis: RedisProcess, private_client: Redis, sinks: Sinks, tmp_path: Path
) -> None:
    """Redis is killed and started again (its append-only file keeps what it held): the
    worker says so once each way and goes on with the same pid; the receiver answers 503 with
    ``Retry-After`` meanwhile and 202 after, without a restart."""
    redis = private_client
    with running(
        redis,
        private_redis.url,
        sinks,
        tmp_path,
        failures_to("slack"),
        receiver_settings={"redis_timeout": 1},
    ) as system:
        worker = system.start_worker()
        before = system.post("FLOW_FAILED", "before-restart", flow_id=1)
        system.wait_deliveries(before, "slack", 1)

        private_redis.stop()
        system.wait(lambda: bool(log_lines(worker, "Redis unreachable, reconnecting")), "outage")
        body, headers = webhook("FLOW_FAILED", "during-restart", flow_id=2)
        refused = httpx.post(
            f"{system.receiver.url}/webhooks/etl", content=body, headers=headers, timeout=10
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        private_redis.start()
        system.wait(lambda: bool(log_lines(worker, "Redis reachable again")), "reconnection")

        # the liveness thread outlived the outage: it writes its key again
        redis.delete(keys.worker(worker.name))
        system.wait(lambda: bool(redis.exists(keys.worker(worker.name))), "the liveness beat")
        after = system.post("FLOW_FAILED", "after-restart", flow_id=3)
        [entry] = system.wait_deliveries(after, "slack", 1)
        assert entry["outcome"] == "delivered"
        assert worker.alive
        assert len(log_lines(worker, "Redis unreachable, reconnecting")) == 1
        [back] = log_lines(worker, "Redis reachable again")
        assert isinstance(back["down_s"], float)
        assert private_redis.url.split("//")[1] in str(back["redis"])


def test_a_send_whose_record_meets_a_redis_restart_is_not_sent_again(
    private_redis: RedisProcess, private_client: Redis, sinks: Sinks, tmp_path: Path
) -> None:
    """Redis goes away while Slack holds the send and is back a few seconds after Slack
    answered: the delivery's record waits for it, and nothing is sent a second time."""
    redis = private_client
    with (
        HoldingStandIn() as slack,
        running(
            redis,
            private_redis.url,
            sinks,
            tmp_path,
            failures_to("slack"),
            secrets={"SLACK_WEBHOOK_URL": slack.url(SLACK_PATH)},
        ) as system,
    ):
        worker = system.start_worker()
        ref = system.post("FLOW_FAILED", "record-waits", flow_id=1400)
        system.wait(lambda: slack.held == 1, "a held send")
        private_redis.stop()
        slack.release()
        system.wait(lambda: bool(log_lines(worker, "recording a delivery waits for Redis")), "wait")
        time.sleep(2)  # Redis stays away for a couple of the record's tries
        private_redis.start()
        [entry] = system.wait_deliveries(ref, "slack", 1)
        assert (entry["outcome"], entry["attempt"]) == ("delivered", 1)
        system.wait_routed(ref)
        system.wait(lambda: not redis.zcard(RQ_STARTED), "the job's bookkeeping")
        assert len(slack.bodies) == 1
        assert dead_letters(redis) == []
        assert worker.alive


# Crashes: what is left of a worker --------------------------------------------------------


def test_a_sigkilled_worker_leaves_no_process_behind(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """Only the worker's own pid is killed (not its process group): no scheduler process, nor
    any other, lives on."""
    with running(redis, redis_url, sinks, tmp_path, failures_to("slack")) as system:
        worker = system.start_worker()
        # the scheduler runs once the lock is taken: the worker is fully started by then
        system.wait(lambda: bool(redis.exists(f"rq:scheduler-lock:{keys.QUEUE}")), "scheduler")
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.process is not None
        worker.process.wait(10)
        assert wait_until(lambda: not living(worker.pid), 10), living(worker.pid)


# Crashes: how fast the work runs again ----------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "before"),
    [((), []), ((503,), [("failed", 1, 503)])],
    ids=["route-job", "deliver-job"],
)
def test_a_killed_workers_job_runs_again_within_a_minute_with_default_settings(
    redis: Redis,
    redis_url: str,
    sinks: Sinks,
    tmp_path: Path,
    *,
    statuses: tuple[int, ...],
    before: list[tuple[object, ...]],
) -> None:
    """Real time, default settings: the worker is killed while Slack holds its send, in the
    route job's first attempt or in a retry job; a worker started then runs the job again
    within a minute, and its success is a success (no dead letter, no retry pending)."""
    with (
        HoldingStandIn(*statuses) as slack,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            failures_to("slack"),
            secrets={"SLACK_WEBHOOK_URL": slack.url(SLACK_PATH)},
        ) as system,
    ):
        first = system.start_worker()
        ref = system.post("FLOW_FAILED", "killed-default", flow_id=1300)
        system.wait(lambda: slack.held == 1, "a held send")
        first.kill()
        slack.release()
        system.start_worker()
        system.wait_deliveries(ref, "slack", len(before) + 1, timeout=RECOVERY)
        timeline = system.timeline(ref)
        assert attempts(timeline, "slack") == [*before, ("delivered", len(before) + 1, 200)]
        system.wait_routed(ref)
        system.wait(lambda: not redis.zcard(RQ_STARTED), "the re-run's bookkeeping")
        assert dead_letters(redis) == []
        assert not redis.zcard(f"rq:scheduled:{keys.QUEUE}")


def test_a_running_jobs_started_entry_stays_fresh_past_its_short_ttl(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """A send held for longer than the started entry's 15 s, with a second worker running
    RQ's abandoned-job recovery every second: the job is never taken for abandoned (one
    request, no second run), and finishes as a success."""
    with (
        HoldingStandIn() as slack,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            failures_to("slack"),
            secrets={"SLACK_WEBHOOK_URL": slack.url(SLACK_PATH)},
            worker_settings={"FLOWHOOKS_MAINTENANCE_INTERVAL": "1"},
        ) as system,
    ):
        system.start_worker()
        system.start_worker()
        ref = system.post("FLOW_FAILED", "long-send", flow_id=1301)
        system.wait(lambda: slack.held == 1, "a held send")
        until = time.monotonic() + 18
        while time.monotonic() < until:
            entries: list[tuple[bytes, float]] = redis.zrange(RQ_STARTED, 0, -1, withscores=True)  # type: ignore[assignment]
            [(_, expires)] = entries
            assert expires > time.time()
            time.sleep(1)
        assert len(slack.bodies) == 1
        slack.release()
        [entry] = system.wait_deliveries(ref, "slack", 1)
        assert entry["outcome"] == "delivered"
        system.wait_routed(ref)
        assert len(slack.bodies) == 1
        assert dead_letters(redis) == []


# Crashes: taken route jobs ----------------------------------------------------------------


def test_route_jobs_a_killed_taker_held_go_back_whatever_became_of_it(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """Route job A takes B and is killed while B's send is held; A itself is then lost to RQ
    (its hash and started entry gone, so RQ's recovery never runs it again, nor runs at all:
    maintenance every ten minutes). B goes back to the queue by flowhooks' own maintenance and
    is delivered by the next worker."""
    # The first send (A's) is answered at once, the second (B's, inside A's job) held.
    with (
        HoldingStandIn(202) as hook,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            failures_to("hook"),
            secrets={"WEBHOOK_URL": hook.url(WEBHOOK_PATH)},
            worker_settings={"FLOWHOOKS_MAINTENANCE_INTERVAL": "600"},
        ) as system,
    ):
        a = system.post("FLOW_FAILED", "taker-a", flow_id=1302)
        b = system.post("FLOW_FAILED", "taken-b", flow_id=1303)
        taker = system.start_worker()
        system.wait(lambda: hook.held == 1, "B's send held inside A's job")
        a_job, b_job = keys.route_job_id(a), keys.route_job_id(b)
        assert redis.lrange(keys.adopted(a_job), 0, -1) == [b_job.encode()]
        taker.kill()
        redis.delete(f"rq:job:{a_job}", RQ_STARTED)
        hook.release()

        system.start_worker()
        [entry] = system.wait_deliveries(b, "hook", 1)
        assert entry["outcome"] == "delivered"
        system.wait_routed(b)
        assert not redis.exists(keys.adopted(a_job))
        assert not redis.hlen(keys.TAKEN)
        assert redis.llen(RQ_QUEUE) == 0
        picked = [e for e in system.timeline(b) if e["stage"] == "picked_up"]
        assert [(p["job_id"], p.get("by_job")) for p in picked] == [(b_job, a_job), (b_job, None)]


# Crashes: inside maintenance --------------------------------------------------------------


def abandoned(redis: Redis, ref: str, **options: object) -> Job:
    """A route job left as a worker that died running it leaves it: started, out of the
    queue, its started entry expired."""
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    job = queue.enqueue(
        keys.ROUTE_TASK, ref, job_id=keys.route_job_id(ref), result_ttl=0, **options
    )
    redis.lrem(queue.key, 0, job.id)
    job.set_status(JobStatus.STARTED)
    redis.zadd(RQ_STARTED, {f"{job.id}:dead-run": 1})
    return job


def test_a_worker_killed_inside_maintenance_holds_recovery_back_one_interval_at_most(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """The first worker dies inside RQ's abandoned-job recovery (an RQ failure callback of an
    abandoned job holds it there); the maintenance lock it held lapses within one maintenance
    interval, and the next worker recovers the abandoned jobs."""
    hold = Callback("tests.e2e.holds.hold_in_maintenance")
    held = abandoned(redis, "etl:held", retry=Retry(max=1), on_failure=hold)
    other = abandoned(redis, "etl:other", retry=Retry(max=1))
    with running(
        redis,
        redis_url,
        sinks,
        tmp_path,
        failures_to("slack"),
        worker_settings={"FLOWHOOKS_MAINTENANCE_INTERVAL": "3"},
    ) as system:
        first = system.start_worker()
        system.wait(lambda: bool(redis.exists(HELD)), "the first worker inside maintenance")
        first.kill()
        assert 0 < redis.ttl(f"rq:clean_registries:{keys.QUEUE}") <= 3

        system.start_worker()
        # each route job ran again (its event is gone: it finds nothing to route and ends)
        system.wait(
            lambda: not redis.exists(held.key) and not redis.exists(other.key), "recovery", 30
        )
        assert dead_letters(redis) == []
        assert redis.llen(RQ_QUEUE) == 0


# Crashes: a time limit mid-send -----------------------------------------------------------


def test_a_time_limit_reached_mid_send_is_retried_not_dead_lettered(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """The retry job's send is held past its 3 s limit: RQ stops the job (SIGALRM), which
    fails as a timeout and runs again (RQ's retries), and the next send is delivered. (A
    webhook: a paced Slack message due within its pace would wait in the lane instead.)"""
    with (
        HoldingStandIn(503) as hook,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            failures_to("hook"),
            secrets={"WEBHOOK_URL": hook.url(WEBHOOK_PATH)},
            worker_settings={"FLOWHOOKS_JOB_TIMEOUT": "3"},
        ) as system,
    ):
        system.start_worker()
        ref = system.post("FLOW_FAILED", "timed-out", flow_id=1304)
        system.wait(lambda: hook.held == 2, "the retry job's send held past its limit, twice")
        hook.release()
        entries = system.wait_deliveries(ref, "hook", 2)
        assert [e["outcome"] for e in entries] == ["failed", "delivered"]
        assert not any(e.get("outcome") == "dead" for e in deliveries(system.timeline(ref), "hook"))
        assert dead_letters(redis) == []
