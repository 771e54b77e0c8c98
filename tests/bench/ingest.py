"""Ingest benchmark: signed ~1.5 KiB Etlworks events posted to the receiver, against a bare
Starlette endpoint (read the body, answer 202) under the same uvicorn settings, in one run.

    make bench                  # or: python -m tests.bench.ingest --rounds 3 --seconds 8

Rounds alternate bare / flowhooks so both see the same machine noise; the figures printed are
the medians over rounds, and the ratio is flowhooks' median rate over the bare one.
Every request carries a distinct event, so each one is a real first write, never a duplicate.
"""

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from tests.bench import loadgen
from tests.support import RedisProcess, free_port

SECRET = "bench-secret-0123456789abcdef0123456789"
API = "https://app.etlworks.com/rest"
CONFIG = """
sources:
  etlworks:
    verify:
      - hmac: {secrets: ["${BENCH_SECRET}"]}
"""


def requests(count: int, port: int) -> list[bytes]:
    """``count`` distinct signed requests of about 1.5 KiB of body each."""
    out = []
    for i in range(count):
        body = json.dumps(
            {
                "eventId": f"bench-{os.getpid()}-{port}-{i}",
                "eventType": "Flow.Executed",
                "webhookId": 3,
                "entityId": 900000 + i,
                "entityUrl": f"{API}/v1/flows/{i % 50}?auditId={900000 + i}",
                "timestamp": 1764000000000 + i,
                "entity": {
                    "flowName": f"warehouse-load-{i % 50}",
                    "status": "error" if i % 10 == 0 else "success",
                    "started": 1764000000000,
                    "finished": 1764000754000,
                    "tags": ["warehouse", "nightly"],
                    "parameters": {"runDate": "2026-11-29", "region": "eu-central-1"},
                    "exception": "ORA-03113: end-of-file on communication channel " * 22,
                },
            }
        ).encode()
        mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        head = (
            f"POST /webhooks/etlworks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Etl-Webhook-Signature: sha256={mac}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


def serve(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.serve", kind, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/webhooks/none", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {kind} server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    kind: str, env: dict[str, str], args: argparse.Namespace
) -> tuple[loadgen.Result, float]:
    """The load generator's result and the server's CPU microseconds per answered request."""
    port = free_port()
    process = serve(kind, port, env)
    try:
        budget = int(30_000 * (args.seconds + args.warmup))  # more than any server here takes
        prepared = requests(budget, port)
        marks: list[float] = []
        result = uvloop.run(
            loadgen.run(
                port,
                prepared,
                connections=args.connections,
                seconds=args.seconds,
                warmup=args.warmup,
                mark=lambda: marks.append(cpu_seconds(process.pid)),
            )
        )
        return result, (marks[1] - marks[0]) / sum(result.statuses.values()) * 1e6
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--stages", action="store_true", help="Also measure the receiver's steps one by one."
    )
    args = parser.parse_args()

    redis = RedisProcess()
    redis.start()
    workdir = Path(tempfile.mkdtemp(prefix="flowhooks-bench-"))
    (workdir / "flowhooks.yaml").write_text(CONFIG)
    env = {
        **os.environ,
        "BENCH_SECRET": SECRET,
        "FLOWHOOKS_REDIS_URL": redis.url,
        "FLOWHOOKS_CONFIG": str(workdir / "flowhooks.yaml"),
    }
    kinds = ["bare", *(("verify", "normalize", "write") if args.stages else ()), "flowhooks"]
    runs: dict[str, list[loadgen.Result]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for round_no in range(1, args.rounds + 1):
            for kind, results in runs.items():
                result, cpu_us = measure(kind, env, args)
                results.append(result)
                cpu[kind].append(cpu_us)
                print(
                    f"round {round_no} {kind:<10} {result.rate():8.0f} ev/s  "
                    f"server CPU {cpu_us:5.0f} us/request  "
                    f"p50 {result.percentile(0.5) * 1000:6.2f} ms  "
                    f"p99 {result.percentile(0.99) * 1000:6.2f} ms  statuses {result.statuses}",
                    flush=True,
                )
    finally:
        redis.cleanup()
    print(
        f"\nmedians over {args.rounds} rounds, {args.connections} connections, one uvicorn worker"
    )
    rates = {k: statistics.median(r.rate() for r in v) for k, v in runs.items()}
    for kind, results in runs.items():
        p50 = statistics.median(r.percentile(0.5) for r in results) * 1000
        p99 = statistics.median(r.percentile(0.99) for r in results) * 1000
        us = statistics.median(cpu[kind])
        print(
            f"  {kind:<10} {rates[kind]:8.0f} accepted/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
            f"   server CPU {us:4.0f} us/request"
        )
    print(f"  ratio      {rates['flowhooks'] / rates['bare']:.2f} of the bare endpoint's rate")
    cpu_ratio = statistics.median(cpu["bare"]) / statistics.median(cpu["flowhooks"])
    print(f"  CPU ratio  {cpu_ratio:.2f} (bare CPU per request / flowhooks CPU per request)")


if __name__ == "__main__":
    main()
