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
import os
import statistics
import tempfile
import time
from pathlib import Path

from redis import Redis
from rq import Queue, SimpleWorker

from config import keys
from config.connections import connect
from tests.bench.loadgen import Pool, Posted, acknowledged, http_request, paced
from tests.bench.system import commands, percentile, processes, wait_ready
from tests.services import WEBHOOK_PATH, Services
from tests.support import RedisProcess, free_port, settings, wait_until

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
    in-repo load generator; the post time of each event id. A request waits for a free
    connection, so a receiver that falls behind shows in the posted-to-delivered figures."""
    pool = Pool(port, CONNECTIONS)

    async def post(i: int) -> Posted:
        body, headers = signed(f"{tag}-{i}", time.time())
        request = http_request(port, "/webhooks/etlworks", body, headers)
        return await acknowledged(pool, request, every=1.0, give_up_after=0)

    posted = await paced(rate, int(rate * seconds), post)
    pool.close()
    refused = [p.status for p in posted if p.status != 202]
    if refused:
        raise RuntimeError(f"the receiver refused {len(refused)} events: {refused[:5]}")
    return {f"{tag}-{i}": p.first_at for i, p in enumerate(posted)}


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
        with Services(routing_key="unused") as sink:
            port = free_port()
            env = {
                **os.environ,
                "BENCH_SECRET": SECRET,
                "BENCH_SINK_URL": sink.url(WEBHOOK_PATH),
                "FLOWHOOKS_REDIS_URL": redis.url,
                "FLOWHOOKS_CONFIG": str(workdir / "flowhooks.yaml"),
                "FLOWHOOKS_LOG_LEVEL": "WARNING",
            }
            with processes(commands(port, args.workers), env):
                wait_ready(port)
                for rate in args.rates:
                    _measure(sink, port, rate, args.seconds, redis.url)
    finally:
        redis.cleanup()


def _measure(sink: Services, port: int, rate: float, seconds: float, redis_url: str) -> None:
    tag = f"r{int(rate)}-{int(time.time())}"
    sent = asyncio.run(post_at_rate(port, rate, seconds, tag))
    stopped = time.time()
    backlog = connect(settings(redis_url)).llen(f"rq:queue:{keys.QUEUE}")
    arrivals: dict[str, float] = {}
    received: dict[str, float] = {}

    def arrived() -> bool:
        sink.fetch()
        for arrival in sink.webhook:
            if arrival.event_id is not None and arrival.received_at is not None:
                arrivals.setdefault(arrival.event_id, arrival.at)
                received[arrival.event_id] = arrival.received_at
        return all(e in arrivals for e in sent)

    if not wait_until(arrived, 120, interval=0.5):
        missing = sum(1 for e in sent if e not in arrivals)
        raise RuntimeError(f"{missing} deliveries did not arrive within 2 minutes")
    latencies = [arrivals[e] - received[e] for e in sent]
    posted = [arrivals[e] - sent[e] for e in sent]
    in_time = sum(1 for e in sent if arrivals[e] <= stopped)
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
