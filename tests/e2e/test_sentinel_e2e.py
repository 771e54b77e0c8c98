"""flowhooks on a Sentinel-managed Redis, with real processes only.

Every process finds the primary through the Sentinels: the receiver (writes, ``/readyz``,
``/metrics``, the admin API), a worker and the commands.

And a failover under load: a primary, a replica and three Sentinels on loopback, the receiver
and two ``flowhooks worker`` processes connected through the Sentinels with
``FLOWHOOKS_REDIS_MIN_REPLICAS=1``, and a webhook stand-in. Events are posted steadily, each
retried after a 503 as Etlworks retries; the primary is SIGKILLed mid-stream, Sentinel promotes
the replica, the old primary comes back as an empty node that Sentinel turns into the new
replica; and then every acknowledged event has been delivered, once, by the same workers."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.exceptions import RedisError

from config import eventlog, keys
from config.connections import connect
from tests.e2e.delivery_support import (
    Flowhooks,
    Sinks,
    WorkerProcess,
    running,
    serving_sinks,
    webhook,
)
from tests.sentinels import SentinelGroup, sentinel_group
from tests.support import (
    ENV,
    FLOWHOOKS,
    HMAC_CONFIG,
    ServedApp,
    child_env,
    make_config,
    run_process,
    settings,
    wait_until,
)

pytestmark = pytest.mark.slow

PASSWORD = "sentinel-group-pa55/w0rd"
ROUTES = "actions: [hook]"
REPLICATED = {"redis_min_replicas": 1, "redis_wait_timeout": 0.5}
WORKER_SETTINGS = {"FLOWHOOKS_REDIS_MIN_REPLICAS": "1"}
WAIT = 40.0
RECOVERY = 90.0
"""How long the delivery of everything acknowledged may take: what a route job held when Redis
failed under it goes back once its worker runs another job, or past the job's time limit
(60 s) and a grace of 5 s at most, on a busy machine a little later."""
TOKEN = "admin-t0ken-for-sentinel-tests-4c3b"


def test_every_process_connects_through_the_sentinels(tmp_path: Path) -> None:
    with sentinel_group(password=PASSWORD, replicas=0, sentinels=1) as group:
        url = group.url(db=1)
        config_file = tmp_path / "flowhooks.yaml"
        config_file.write_text(HMAC_CONFIG)
        env = child_env(FLOWHOOKS_REDIS_URL=url, FLOWHOOKS_CONFIG=str(config_file), **ENV)
        served = settings(url, admin_token=TOKEN)
        with ServedApp(served, make_config(HMAC_CONFIG)) as app, httpx.Client() as client:
            assert client.get(f"{app.url}/readyz").json()["redis"] == "ok"
            body, headers = webhook("FLOW_FAILED", "via-sentinel", flow_id=7)
            posted = client.post(f"{app.url}/webhooks/etl", content=body, headers=headers)
            assert (posted.status_code, posted.json()) == (202, {"id": "via-sentinel"})
            assert "flowhooks_queue_depth 1.0" in client.get(f"{app.url}/metrics").text
            auth = {"Authorization": f"Bearer {TOKEN}"}
            listed = client.get(f"{app.url}/api/events", headers=auth).json()
            assert [e["id"] for e in listed] == ["via-sentinel"]

        worker = run_process([*FLOWHOOKS, "worker", "--burst"], env)
        assert worker.returncode == 0, worker.stderr
        assert "sentinel 127.0.0.1:" in worker.stderr  # its location, logged
        assert "pa55" not in worker.stdout + worker.stderr

        shown = run_process([*FLOWHOOKS, "events", "list", "-o", "json"], env)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert [json.loads(line)["id"] for line in lines] == ["via-sentinel"]
        silence = ["--matcher", 'flow_id="7"', "--duration", "1h", "--comment", "maintenance"]
        added = run_process([*FLOWHOOKS, "silence", "add", *silence], env)
        assert added.returncode == 0, added.stderr
        assert run_process([*FLOWHOOKS, "dlq", "list"], env).returncode == 0

        # All of it went to the primary's database 1.
        data = group.node(group.primary_port()).client()
        data.select(1)
        stored = eventlog.load(data, keys.ref("etl", "via-sentinel"))
        assert stored is not None
        assert [entry["stage"] for entry in stored.timeline] == [
            "received",
            "picked_up",
            "routed",
        ]


class Sender:
    """Posts events one after another from a thread, each until it is acknowledged (2xx):
    a 503 or a failed connection is retried after a short pause, with the same event id."""

    def __init__(self, flowhooks: Flowhooks) -> None:
        self.url = f"{flowhooks.receiver.url}/webhooks/etl"
        self.acknowledged: list[str] = []
        self.acknowledged_at: list[float] = []
        self.refused = Counter[int]()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sender":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                event_id = f"fo-{n}"
                while not self._post(client, event_id, n):
                    if self._stop.wait(0.2):
                        return
                self._stop.wait(0.02)

    def _post(self, client: httpx.Client, event_id: str, n: int) -> bool:
        body, headers = webhook("FLOW_FAILED", event_id, flow_id=n)
        try:
            status = client.post(self.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            self.errors.append(type(exc).__name__)
            return False
        if status in (200, 202):
            self.acknowledged.append(event_id)
            self.acknowledged_at.append(time.monotonic())
            return True
        self.refused[status] += 1
        return False


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.mark.timeout(200)
def test_a_failover_loses_no_acknowledged_event_and_the_workers_carry_on(
    sinks: Sinks, tmp_path: Path
) -> None:
    with sentinel_group(password=PASSWORD) as group:
        url = group.url()
        redis = connect(settings(url), socket_timeout=2, socket_connect_timeout=1)
        with running(
            redis,
            url,
            sinks,
            tmp_path,
            ROUTES,
            receiver_settings=REPLICATED,
            worker_settings=WORKER_SETTINGS,
        ) as flowhooks:
            workers = [flowhooks.start_worker(), flowhooks.start_worker()]
            pids = [w.process_group for w in workers]
            with Sender(flowhooks) as sender:
                until(lambda: len(sender.acknowledged) >= 40, "40 events before", group)
                old = group.kill_primary()
                killed, killed_at = time.monotonic(), len(sender.acknowledged)
                group.wait_promoted(old.port)
                promoted = time.monotonic()
                group.rejoin(old)
                until(
                    lambda: len(sender.acknowledged) >= killed_at + 40,
                    "40 events after the failover",
                    group,
                    workers,
                )
            acknowledged = sender.acknowledged
            resumed = sender.acknowledged_at[killed_at]
            # Figures for the README (`pytest -s` shows them); no assertion on any of them.
            print(
                f"\nfailover: replica promoted {promoted - killed:.1f} s after the kill; "
                f"first acknowledgement {resumed - killed:.1f} s after it; "
                f"{sender.refused[503]} answers 503; {len(acknowledged)} events acknowledged"
            )
            until(
                lambda: delivered(sinks) >= set(acknowledged),
                "every acknowledged event delivered",
                group,
                workers,
                explain=lambda: missing(redis, set(acknowledged) - delivered(sinks)),
                wait=RECOVERY,
            )
            time.sleep(1)  # time for a second delivery of anything, were there one
            counts = Counter(r.json()["event"]["id"] for r in sinks.webhook.requests)
            assert len(acknowledged) == len(set(acknowledged))
            assert [i for i, n in counts.items() if n > 1] == []
            assert set(counts) == set(acknowledged)
            # The failover was seen: requests were refused while it lasted.
            assert sender.refused[503] > 0, (sender.refused, sender.errors)
            assert [w.alive for w in workers] == [True, True], flowhooks.worker_logs()
            assert [w.process_group for w in workers] == pids
        redis.close()


def delivered(sinks: Sinks) -> set[str]:
    return {r.json()["event"]["id"] for r in sinks.webhook.requests}


def missing(redis: Redis, ids: set[str]) -> str:
    """What the primary holds of each event not delivered: its timeline's stages."""
    told = []
    for event_id in sorted(ids):
        ref = keys.ref("etl", event_id)
        stored = eventlog.load(redis, ref)
        stages = [e.get("stage") for e in stored.timeline] if stored is not None else None
        job = keys.route_job_id(ref)
        status = redis.hget(f"rq:job:{job}", "status")
        holders = [
            keys.text(k)
            for k, _ in redis.hgetall(keys.TAKEN).items()
            if job.encode() in redis.lrange(k, 0, -1)
        ]
        places = {
            name: redis.zscore(f"rq:{name}:{keys.QUEUE}", job)
            for name in ("wip", "scheduled", "failed", "finished")
        }
        told.append(
            f"{event_id}: {stages if stages is not None else 'not stored'}, job {job} "
            f"status {status!r}, taken by {holders}, registries {places}"
        )
    queued = redis.llen(f"rq:queue:{keys.QUEUE}")
    return f"not delivered ({len(ids)}; {queued} route jobs queued): " + "; ".join(told)


def until(
    condition: Callable[[], bool],
    what: str,
    group: SentinelGroup,
    workers: Sequence[WorkerProcess] = (),
    *,
    explain: Callable[[], str] | None = None,
    wait: float = WAIT,
) -> None:
    """Wait for ``condition`` (a Redis error counts as not yet), failing with the logs, and
    at once when one of ``workers`` exits: they must carry on through a failover."""

    def holds() -> bool:
        if not all(w.alive for w in workers):
            return True
        try:
            return condition()
        except RedisError:
            return False

    held = wait_until(holds, wait, interval=0.1)
    logs = "\n".join(f"--- {w.name}\n{w.output()[-4000:]}" for w in workers)
    exited = [w.name for w in workers if not w.alive]
    if exited:
        raise AssertionError(f"{', '.join(exited)} exited waiting for {what}\n{logs}")
    if not held:
        told = ""
        if explain is not None:
            try:
                told = explain() + "\n"
            except RedisError as exc:
                told = f"(what is missing could not be read: {exc})\n"
        raise AssertionError(f"timed out waiting for {what}\n{told}{logs}\n{group.logs()}")
