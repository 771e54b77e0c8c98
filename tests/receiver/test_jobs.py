"""The route jobs the receiver writes with its own Lua script are the jobs RQ writes.

Each test puts an event through the real receiver, then has RQ's own ``Queue.enqueue`` write the
same task next to it, and compares what landed in Redis. An RQ upgrade that changes its job
format fails here, not in production.
"""

import hashlib
import hmac
import json
import re
import zlib
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from config import keys, routejobs
from config.settings import DAY, Settings
from receiver import jobs
from tests.support import HMAC_CONFIG, SECRET, ServedApp, make_config, settings

RQ_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
TWIN = "rq-twin"


@pytest.fixture
def app_settings(redis_url: str) -> Settings:
    # Not the defaults, so a field the receiver forgot to carry over shows up as a difference;
    # the job timeout is not a route job's (config.routejobs.TIMEOUT), so it must not be used.
    return settings(redis_url, job_timeout=123, event_retention=3 * DAY)


@pytest.fixture
def app(redis: Redis, app_settings: Settings) -> Iterator[ServedApp]:
    with ServedApp(app_settings, make_config(HMAC_CONFIG)) as served:
        yield served


def post(app: ServedApp, event_id: str) -> httpx.Response:
    body = json.dumps({"eventId": event_id, "eventType": "FLOW_FAILED", "flowId": 7}).encode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Etl-Webhook-Signature": mac, "Content-Type": "application/json"}
    return httpx.post(f"{app.url}/webhooks/etl", content=body, headers=headers)


def receive(app: ServedApp, event_id: str) -> str:
    """Post a signed event with ``event_id``; return its ref."""
    response = post(app, event_id)
    assert (response.status_code, response.json()) == (202, {"id": event_id})
    return keys.ref("etl", event_id)


def rq_enqueue(redis: Redis, app_settings: Settings, ref: str, job_id: str = TWIN) -> Job:
    """What ``Queue.enqueue`` writes for the route job of ``ref``."""
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    return queue.enqueue(
        keys.ROUTE_TASK,
        ref,
        job_id=job_id,
        result_ttl=0,
        failure_ttl=int(app_settings.event_retention),
        job_timeout=int(routejobs.TIMEOUT),
        retry=jobs.ROUTE_RETRY,
    )


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def job_hash(redis: Redis, job_id: str) -> dict[str, bytes]:
    return {
        text(k): v.encode() if isinstance(v, str) else v
        for k, v in redis.hgetall(f"rq:job:{job_id}").items()
    }


def rq_keys(redis: Redis) -> dict[str, str]:
    """The ``rq:*`` keys and their types."""
    return {text(k): text(redis.type(k)) for k in redis.keys("rq:*")}


@pytest.mark.parametrize(
    "event_id",
    [
        "evt-1",
        "x" * 200,
        "ünïcödé 'quoted' \"twice\" \\ back / slash",  # JSON escaping in Lua
    ],
    ids=["short", "long", "escaped"],
)
def test_the_receivers_job_hash_is_the_one_rq_writes(
    app: ServedApp, redis: Redis, app_settings: Settings, event_id: str
) -> None:
    ref = receive(app, event_id)
    rq_enqueue(redis, app_settings, ref)
    ours = job_hash(redis, keys.route_job_id(ref))
    theirs = job_hash(redis, TWIN)

    # RQ reads an empty field as an absent one: the receiver leaves the empty ones out.
    assert set(ours) <= set(theirs)
    assert {k: v for k, v in theirs.items() if k not in ours} == dict.fromkeys(
        set(theirs) - set(ours), b""
    )
    for stamp in ("created_at", "enqueued_at"):
        assert RQ_TIMESTAMP.fullmatch(ours[stamp].decode()), stamp
        assert RQ_TIMESTAMP.fullmatch(theirs[stamp].decode()), stamp
    # RQ compresses `data` and falls back to reading it uncompressed; the receiver writes it plain.
    assert json.loads(ours["data"]) == json.loads(zlib.decompress(theirs["data"]))
    task, _, argument = ours["description"].decode().partition("(")
    assert (task, json.loads(argument.removesuffix(")"))) == (keys.ROUTE_TASK, ref)
    per_event = set(jobs.PER_EVENT)
    assert {k: v for k, v in ours.items() if k not in per_event} == {
        k: v for k, v in theirs.items() if k not in per_event and k in ours
    }
    # And RQ reads the two as the same job: every attribute it restores, but the per-event ones.
    mine = Job.fetch(keys.route_job_id(ref), connection=redis, serializer=JSONSerializer)
    twin = Job.fetch(TWIN, connection=redis, serializer=JSONSerializer)
    restored = [
        {k: v for k, v in job.to_dict().items() if k not in per_event} for job in (mine, twin)
    ]
    assert restored[0] == restored[1]


def test_rq_reads_the_receivers_job_as_its_own(
    app: ServedApp, redis: Redis, app_settings: Settings
) -> None:
    ref = receive(app, "evt-fetch")
    job = Job.fetch(keys.route_job_id(ref), connection=redis, serializer=JSONSerializer)
    assert job.func_name == "workers.tasks.route_event"
    assert (job.args, job.kwargs) == ([ref], {})
    assert job.get_status() == JobStatus.QUEUED
    assert job.origin == "flowhooks"
    assert (job.timeout, job.result_ttl, job.failure_ttl) == (routejobs.TIMEOUT, 0, 3 * DAY)
    assert job.created_at is not None and job.enqueued_at is not None
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    assert queue.job_ids == [job.id]


def test_the_receiver_touches_the_keys_rq_touches(
    app: ServedApp, redis: Redis, app_settings: Settings
) -> None:
    """Besides the job hash, ``enqueue`` adds the job to the queue and the queue to the list of
    queues; a key RQ starts writing on enqueue (a registry, say) would appear here."""
    rq_enqueue(redis, app_settings, "etl:twin")
    theirs = rq_keys(redis)
    their_queues = redis.smembers("rq:queues")
    redis.flushdb()

    ref = receive(app, "evt-keys")
    job_id = keys.route_job_id(ref)
    assert {k.replace(job_id, TWIN): v for k, v in rq_keys(redis).items()} == theirs
    assert redis.smembers("rq:queues") == their_queues
    assert redis.lrange(f"rq:queue:{keys.QUEUE}", 0, -1) == [job_id.encode()]
    assert redis.ttl(f"rq:job:{job_id}") == -1  # like RQ's: the job lives until it has run


def test_a_duplicate_writes_no_second_job(app: ServedApp, redis: Redis) -> None:
    ref = receive(app, "evt-dup")
    before = job_hash(redis, keys.route_job_id(ref))
    assert post(app, "evt-dup").status_code == 200
    assert job_hash(redis, keys.route_job_id(ref)) == before
    assert redis.llen(f"rq:queue:{keys.QUEUE}") == 1
