"""Routing benchmark: signed events posted at a steady rate to the receiver, routed by real
worker processes and delivered to a local HTTP sink (a `webhook` action), with the
received-to-delivered latency of every event; next to RQ's own rate for a no-op job measured
in the same run on the same Redis.

    make bench-routing          # or: python -m tests.bench.routing --rates 100 200 --seconds 20

For each rate it prints the events delivered per second while sending, the p50/p99 of
received-to-delivered latency (the sink's arrival time minus the receiver's ``received_at`` of
the event; one machine, one clock) and of posted-to-delivered latency (from the moment the load
generator made the request, which adds the time a request waits for the receiver), and whether
a backlog was left when sending stopped.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import uvicorn
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from rq import Queue, SimpleWorker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.bench.loadgen import Connection
from tests.support import RedisProcess, free_port, wait_until

CONNECTIONS = 32
SECRET = "bench-secret-0123456789abcdef0123456789"
CONFIG = """
sources:
  etlworks:
    verify:
      - hmac: {secrets: ["${BENCH_SECRET}"]}
actions:
  sink: {webhook: {url: "${BENCH_SINK_URL}"}}
routes:
  actions: [sink]
"""


ARRIVALS = "bench:arrivals"


def serve_sink(port: int, redis_url: str) -> None:
    """The far side, a process of its own (sharing the load generator's would slow both):
    records in Redis when each event's notification arrived, and its ``received_at``."""
    conn = AsyncRedis.from_url(redis_url)

    async def receive(request: Request) -> Response:
        event = (await request.json())["event"]
        received = datetime.fromisoformat(event["received_at"]).timestamp()
        await conn.hset(ARRIVALS, event["id"], f"{time.time()} {received}")
        return Response(b"ok")

    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")


class Sink:
    """The sink process, and what it recorded: when each event arrived, and when the receiver
    had taken it in (its ``received_at``: one machine, one clock)."""

    def __init__(self, redis_url: str) -> None:
        self.port = free_port()
        self.redis = Redis.from_url(redis_url, decode_responses=True)
        self.process = multiprocessing.get_context("spawn").Process(
            target=serve_sink, args=(self.port, redis_url), daemon=True
        )
        self.arrivals: dict[str, float] = {}
        self.received: dict[str, float] = {}

    def read(self) -> None:
        recorded: dict[str, str] = self.redis.hgetall(ARRIVALS)  # type: ignore[assignment]
        for key, value in recorded.items():
            arrived, received = value.split()
            self.arrivals[key] = float(arrived)
            self.received[key] = float(received)

    def __enter__(self) -> "Sink":
        self.process.start()
        if not wait_until(lambda: _listening(self.port), 10):
            raise RuntimeError("the sink did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def processes(argvs: list[list[str]], env: dict[str, str]) -> Iterator[None]:
    running = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for argv in argvs
    ]
    try:
        yield
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(30)


def signed(event_id: str, sent: float) -> tuple[bytes, dict[str, str]]:
    """A failure of a flow of its own (one flow's repeated failures are one incident, whose
    repeats the route's repeat_interval would rightly hold back)."""
    body = json.dumps(
        {
            "eventId": event_id,
            "eventType": "FLOW_FAILED",
            "flowId": event_id,
            "flowName": "warehouse-load",
            "error": "ORA-03113: end-of-file on communication channel",
            "sent": sent,
        }
    ).encode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Etl-Webhook-Signature": mac, "Content-Type": "application/json"}


async def post_at_rate(port: int, rate: float, seconds: float, tag: str) -> dict[str, float]:
    """Post ``rate`` events a second for ``seconds`` over keep-alive connections of the
    in-repo load generator (httpx costs more CPU a request than the receiver does, and on two
    cores that CPU is taken from the system measured); the post time of each event id. A
    request waits for a free connection, so a receiver that falls behind shows in the
    posted-to-delivered figures."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        _, connection = await loop.create_connection(Connection, "127.0.0.1", port)
        idle.put_nowait(connection)

    async def post(request: bytes) -> int:
        connection = await idle.get()
        try:
            return await connection.send(request)
        finally:
            idle.put_nowait(connection)

    sent: dict[str, float] = {}
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event_id = f"{tag}-{i}"
        now = time.time()
        body, headers = signed(event_id, now)
        sent[event_id] = now
        tasks.append(asyncio.create_task(post(_request(port, body, headers))))
    statuses = await asyncio.gather(*tasks)
    refused = [status for status in statuses if status != 202]
    if refused:
        raise RuntimeError(f"the receiver refused {len(refused)} events: {refused[:5]}")
    return sent


def _request(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST /webhooks/etlworks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def noop_rate(redis_url: str, jobs: int) -> float:
    """RQ's own rate for a no-op job with a SimpleWorker, on the same Redis."""
    conn = Redis.from_url(redis_url)
    queue = Queue("bench-noop", connection=conn)
    for _ in range(jobs):
        queue.enqueue("time.time", result_ttl=0)
    worker = SimpleWorker([queue], connection=conn)
    start = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    return jobs / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 200.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    redis = RedisProcess()
    redis.start()
    workdir = Path(tempfile.mkdtemp(prefix="flowhooks-bench-"))
    (workdir / "flowhooks.yaml").write_text(CONFIG)
    try:
        print(
            f"RQ no-op jobs, one SimpleWorker: {noop_rate(redis.url, 2000):.0f} jobs/s", flush=True
        )
        with Sink(redis.url) as sink:
            port = free_port()
            env = {
                **os.environ,
                "BENCH_SECRET": SECRET,
                "BENCH_SINK_URL": f"http://127.0.0.1:{sink.port}/hook",
                "FLOWHOOKS_REDIS_URL": redis.url,
                "FLOWHOOKS_CONFIG": str(workdir / "flowhooks.yaml"),
                "FLOWHOOKS_LOG_LEVEL": "WARNING",
            }
            me = [sys.executable, "-m", "flowhooks"]
            argvs = [[*me, "serve", "--host", "127.0.0.1", "--port", str(port)]]
            argvs += [[*me, "worker", "--name", f"bench-{i}"] for i in range(args.workers)]
            with processes(argvs, env):
                if not wait_until(lambda: _ready(port), 30):
                    raise RuntimeError("the receiver did not start")
                for rate in args.rates:
                    _measure(sink, port, rate, args.seconds, redis.url)
    finally:
        redis.cleanup()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _measure(sink: Sink, port: int, rate: float, seconds: float, redis_url: str) -> None:
    tag = f"r{int(rate)}-{int(time.time())}"
    sent = asyncio.run(post_at_rate(port, rate, seconds, tag))
    stopped = time.time()
    backlog = Redis.from_url(redis_url).llen("rq:queue:flowhooks")

    def arrived() -> bool:
        sink.read()
        return all(e in sink.arrivals for e in sent)

    if not wait_until(arrived, 120):
        missing = sum(1 for e in sent if e not in sink.arrivals)
        raise RuntimeError(f"{missing} deliveries did not arrive within 2 minutes")
    latencies = [sink.arrivals[e] - sink.received[e] for e in sent]
    posted = [sink.arrivals[e] - sent[e] for e in sent]
    in_time = sum(1 for e in sent if sink.arrivals[e] <= stopped)
    print(
        f"{rate:5.0f} events/s for {seconds:.0f}s: delivered {in_time / seconds:6.1f}/s while "
        f"sending, backlog at the end {backlog} jobs, received-to-delivered "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms  "
        f"p99 {percentile(latencies, 0.99) * 1000:7.1f} ms; posted-to-delivered "
        f"p50 {statistics.median(posted) * 1000:6.1f} ms  "
        f"p99 {percentile(posted, 0.99) * 1000:7.1f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
