"""``/healthz`` on a worker's metrics port, what Kubernetes' liveness probe asks: 200 while the
liveness thread beats, 503 once it has stopped, and 200 through a Redis outage (restarting the
worker would not bring Redis back)."""

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis import Redis

from config import keys
from tests.support import FLOWHOOKS, RedisProcess, child_env, free_port, wait_until
from workers import liveness
from workers.liveness import Liveness
from workers.metrics import DeadLetters, WorkerMetrics
from workers.worker import SIDE_CLIENT, serve_metrics

CONFIG = """
sources:
  etl:
    verify:
      - header_token: {header: X-Token, token: "${TOKEN}"}
actions:
  console: {log: {}}
routes:
  actions: [console]
"""


def health(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


@pytest.fixture
def beating(redis_url: str) -> Iterator[Liveness]:
    side = Redis.from_url(redis_url, **SIDE_CLIENT)
    thread = Liveness(side, "health-test", worker_ttl=60, queue=keys.QUEUE)
    thread.start()
    yield thread
    thread.stop()
    side.close()


def test_healthz_answers_while_the_thread_beats_and_503_once_it_stopped(
    beating: Liveness, redis_url: str
) -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    conn = Redis.from_url(redis_url)
    registry.register(DeadLetters(conn))
    port = free_port()
    server = serve_metrics(port, registry, beating)
    try:
        answer = health(port)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
        # the metrics are still served, on any other path, as before
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "flowhooks_dead_letters 0.0" in page
        assert "# TYPE flowhooks_deliveries_total counter" in page
        first = beating.last_beat
        assert wait_until(lambda: beating.last_beat != first, liveness.EVERY + 3)
        beating.stop()
        stopped = health(port)
        assert stopped.status_code == 503
        assert stopped.json()["status"] == "not beating"
    finally:
        server.shutdown()
        server.server_close()
        conn.close()


def test_a_beat_older_than_the_liveness_ttl_is_no_beat(beating: Liveness) -> None:
    """The age at which the other workers take this one for dead, and reclaim its jobs."""
    beat = beating.last_beat
    assert beat is not None
    assert beating.beating(beat + liveness.TTL - 0.5)
    assert not beating.beating(beat + liveness.TTL)


def test_a_liveness_not_started_is_not_beating(redis_url: str) -> None:
    side = Redis.from_url(redis_url, **SIDE_CLIENT)
    try:
        idle = Liveness(side, "never-started", worker_ttl=60, queue=keys.QUEUE)
        assert idle.last_beat is None
        assert not idle.beating(time.monotonic())
    finally:
        side.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_worker_process_stays_healthy_through_a_redis_outage(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """``flowhooks worker --metrics-port``, as the chart runs it: healthy, then healthy still
    for longer than the liveness TTL while its Redis is stopped (SIGSTOP: every command times
    out), then gone with its process."""
    config = tmp_path / "flowhooks.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = child_env(
        FLOWHOOKS_REDIS_URL=private_redis.url, FLOWHOOKS_CONFIG=str(config), TOKEN="t0ken-Hh4"
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*FLOWHOOKS, "worker", "--metrics-port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        assert wait_until(lambda: _status(port) == 200, 20), log.read_text()
        assert private_redis.process is not None
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            outage_ends = time.monotonic() + liveness.TTL + 3
            while time.monotonic() < outage_ends:
                assert _status(port) == 200, log.read_text()
                time.sleep(1)
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert _status(port) is None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def _status(port: int) -> int | None:
    """The status of ``/healthz``, or ``None`` when nothing answers."""
    try:
        return health(port).status_code
    except httpx.HTTPError:
        return None
