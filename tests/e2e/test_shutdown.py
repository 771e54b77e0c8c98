"""SIGTERM, as Kubernetes sends it to a pod's process, stops flowhooks without losing work: the
receiver stops accepting, answers the request in flight and exits 0; a worker finishes its
job (RQ's warm shutdown), starts no other and exits 0. Real processes, a real Redis."""

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from redis import Redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from config import eventlog, keys
from tests.e2e.delivery_support import (
    SLACK_PATH,
    WAIT,
    HoldingStandIn,
    Sinks,
    deliveries,
    running,
    serving_sinks,
    stages,
)
from tests.support import (
    ENV,
    FLOWHOOKS,
    HMAC_CONFIG,
    child_env,
    free_port,
    make_config,
    signed_event,
    wait_until,
)
from workers.delivery import delivery_id

pytestmark = pytest.mark.slow

TCP_ESTABLISHED = "01"


# The receiver -----------------------------------------------------------------------------


@contextmanager
def serving(redis_url: str, folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``flowhooks serve`` on a free loopback port, answering; the process and the port."""
    config = folder / "flowhooks.yaml"
    config.write_text(HMAC_CONFIG)
    port = free_port()
    log = folder / "serve.log"
    environ = child_env(FLOWHOOKS_REDIS_URL=redis_url, FLOWHOOKS_CONFIG=str(config), **ENV)
    argv = [*FLOWHOOKS, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:
        if not wait_until(lambda: _healthy(port) or process.poll() is not None, WAIT):
            raise AssertionError(f"the receiver did not start:\n{log.read_text()}")
        assert process.poll() is None, log.read_text()
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def refused(port: int) -> bool:
    """Whether a new connection to ``port`` is refused (nothing listens any more)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    return host, int(port, 16)


def consumed(server_port: int, client_port: int) -> bool:
    """Whether the server has read everything the client sent on their connection: its
    socket's receive queue (``/proc/net/tcp``) is empty."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = _address(fields[1]), _address(fields[2]), fields[3]
        if local[1] == server_port and remote[1] == client_port and state == TCP_ESTABLISHED:
            return int(fields[4].split(":")[1], 16) == 0
    return False


def read_reply(sock: socket.socket) -> bytes:
    reply = b""
    with suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_sigterm_lets_the_receiver_answer_the_request_in_flight(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    steps = make_config(HMAC_CONFIG).sources["etl"].verify
    body, headers = signed_event(steps, "in-flight-1", time.time())
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST /webhooks/etl HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    half = len(body) // 2

    with serving(redis_url, tmp_path) as (process, port):
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            # The headers and half the body: a request the server is reading.
            sock.sendall(request + body[:half])
            client_port = sock.getsockname()[1]
            assert wait_until(lambda: consumed(port, client_port), WAIT)

            process.send_signal(signal.SIGTERM)
            assert wait_until(lambda: refused(port), WAIT), "still accepting after SIGTERM"
            assert process.poll() is None  # it waits for the request in flight

            sock.sendall(body[half:])
            reply = read_reply(sock)

        status_line, _, rest = reply.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 202 Accepted", reply
        assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {"id": "in-flight-1"}
        assert process.wait(WAIT) == 0, (tmp_path / "serve.log").read_text()

    ref = keys.ref("etl", "in-flight-1")
    stored = eventlog.load(redis, ref)
    assert stored is not None
    assert stored.event["id"] == "in-flight-1"
    assert stages(stored.timeline) == ["received"]
    route_job = keys.route_job_id(ref).encode()
    assert route_job in redis.lrange(f"rq:queue:{keys.QUEUE}", 0, -1)


def test_sigterm_on_an_idle_receiver_exits_cleanly(redis_url: str, tmp_path: Path) -> None:
    with serving(redis_url, tmp_path) as (process, port):
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, (tmp_path / "serve.log").read_text()
        assert refused(port)


# The worker -------------------------------------------------------------------------------

SLACK_ON_FAILURE = """
actions: []
routes:
  - matchers: ['kind="flow.failed"']
    actions: [slack]
"""


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_lets_the_worker_finish_its_job_and_start_no_other(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """The worker is in a route job, Slack holding its delivery, with two jobs waiting: one
    of RQ's own (it makes a folder) and, behind it, another event's route job. SIGTERM, then
    Slack answers: the delivery is made and recorded, neither waiting job starts, and the
    worker (its scheduler too) exits 0. The next worker runs both."""
    made = tmp_path / "made-by-the-waiting-job"
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    with (
        HoldingStandIn() as slack,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            SLACK_ON_FAILURE,
            secrets={"SLACK_WEBHOOK_URL": slack.url(SLACK_PATH)},
        ) as system,
    ):
        worker = system.start_worker()
        assert worker.process is not None
        busy = system.post("FLOW_FAILED", "busy-1", flow_id=1501, flow_name="orders")
        system.wait(lambda: slack.held == 1, "Slack holding the first delivery")
        job = queue.enqueue("os.mkdir", str(made))
        waiting = system.post("FLOW_FAILED", "waiting-1", flow_id=1502, flow_name="returns")

        # Kubernetes signals the container's main process only, not the scheduler it forked.
        worker.process.send_signal(signal.SIGTERM)
        system.wait(
            lambda: redis.hexists(f"rq:worker:{worker.name}", "shutdown_requested_date"),
            "RQ to take the warm shutdown request",
        )
        assert worker.alive  # still in the job
        slack.release()

        assert worker.process.wait(WAIT) == 0, system.worker_logs()
        assert wait_until(lambda: not group_alive(worker.process_group), WAIT), (
            "the scheduler outlived its worker"
        )

        # The job in progress finished: the delivery was made and recorded.
        [entry] = deliveries(system.timeline(busy), "slack")
        assert (entry["outcome"], entry["status"]) == ("delivered", 200)
        delivered = keys.delivered(delivery_id(busy, "routes.routes[0]", "slack", "notify"))
        assert redis.exists(delivered)
        assert len(slack.bodies) == 1
        # Nothing else was started: both jobs are still queued, untouched.
        assert job.get_status(refresh=True) == JobStatus.QUEUED
        assert not made.exists()
        assert stages(system.timeline(waiting)) == ["received"]
        assert queue.get_job_ids() == [job.id, keys.route_job_id(waiting)]

        # The next worker to start takes them up.
        system.start_worker()
        [entry] = system.wait_deliveries(waiting, "slack", 1)
        assert entry["outcome"] == "delivered"
        assert made.is_dir()
