"""The whole delivery path on loopback, for end-to-end tests: the real receiver, real
``flowhooks worker`` processes, a real Redis, and stand-ins for Slack, PagerDuty, a generic
webhook (scriptable HTTP servers) and an SMTP server (aiosmtpd).

Every secret of the config (the Slack URL, the PagerDuty routing key, the webhook URL, the
signing keys) reaches the worker through its environment, as in production.
"""

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from redis import Redis

from config import eventlog, keys
from flowhooks.sendtest import sample
from tests.support import (
    ENV,
    FLOWHOOKS,
    SECRET,
    ServedApp,
    child_env,
    free_port,
    mac,
    make_config,
    run_process,
    settings,
    wait_until,
)
from tests.workers.sinks.standins import HttpStandIn, Reply, SmtpStandIn

SLACK_PATH = "/services/T0E2E/B0E2E/slack-path-is-a-secret-Hq3"
PAGERDUTY_PATH = "/v2/enqueue"
WEBHOOK_PATH = "/hooks/webhook-path-is-a-secret-Vb8"
ROUTING_KEY = "routing-key-Jx6Tn2Lp9Wq4"
SLACK_OK = Reply(200, b"ok")
PAGERDUTY_OK = Reply(202, b'{"status":"success","message":"Event processed"}')
WEBHOOK_OK = Reply(200, b"")
RETRY = "{initial: 0.2s, max_interval: 1s, give_up_after: 30s, jitter: 0}"
"""Short retries, so an outage of a few attempts lasts seconds."""
WAIT = 30.0
"""The longest any one step may take before a test fails (no step needs nearly this long)."""
RQ_STARTED = f"rq:wip:{keys.QUEUE}"
RQ_SCHEDULER_LOCK = f"rq:scheduler-lock:{keys.QUEUE}"


@dataclass
class Sinks:
    """The far side of every action, shared by a module's tests and reset for each."""

    slack: HttpStandIn
    pagerduty: HttpStandIn
    webhook: HttpStandIn
    smtp: SmtpStandIn
    smtp_port: int

    def reset(self) -> None:
        self.slack.reset(default=SLACK_OK)
        self.pagerduty.reset(default=PAGERDUTY_OK)
        self.webhook.reset(default=WEBHOOK_OK)
        self.smtp.reset()

    def environ(self) -> dict[str, str]:
        """The secrets the config refers to, as the worker's environment holds them."""
        return {
            **ENV,
            "SLACK_WEBHOOK_URL": self.slack.url(SLACK_PATH),
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "WEBHOOK_URL": self.webhook.url(WEBHOOK_PATH),
        }


@contextmanager
def serving_sinks() -> Iterator[Sinks]:
    slack, pagerduty, hook = servers = [HttpStandIn(free_port()) for _ in range(3)]
    smtp = SmtpStandIn()
    smtp_port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    for server in servers:
        server.start()
    controller.start()
    try:
        yield Sinks(slack, pagerduty, hook, smtp, smtp_port)
    finally:
        controller.stop()
        for server in servers:
            server.stop()


def config_text(sinks: Sinks, routes: str, extra: str = "", actions: str = "") -> str:
    """The config every test shares (one action of each kind, short retries) with ``routes``,
    the YAML of the ``routes:`` mapping, ``extra`` top-level sections and ``actions``, more
    actions (YAML of the ``actions:`` mapping)."""
    return f"""
sources:
  etl:
    verify:
      - hmac: {{secrets: ["${{SECRET}}"]}}
actions:
  slack:
    slack: {{webhook_url: "${{SLACK_WEBHOOK_URL}}"}}
    retry: {RETRY}
  pager:
    pagerduty:
      routing_key: "${{PAGERDUTY_ROUTING_KEY}}"
      url: "{sinks.pagerduty.url(PAGERDUTY_PATH)}"
      severity: critical
    retry: {RETRY}
  mail:
    email:
      to: [data@example.com]
      from: flowhooks@example.com
      smtp: {{host: 127.0.0.1, port: {sinks.smtp_port}, timeout: 5s}}
    retry: {RETRY}
  hook:
    webhook:
      url: "${{WEBHOOK_URL}}"
      sign: {{secret: "${{WHSEC}}"}}
    retry: {RETRY}
{textwrap.indent(textwrap.dedent(actions).strip(), "  ")}
routes:
{textwrap.indent(textwrap.dedent(routes).strip(), "  ")}
{textwrap.dedent(extra).strip()}
"""


class HoldingStandIn:
    """An HTTP server that answers the first requests with ``statuses``, then holds the next
    one while :attr:`holding` (until :meth:`release`, or a minute), then answers ``ok``: a
    request in flight, for as long as a test needs one."""

    def __init__(self, *statuses: int) -> None:
        self.bodies: list[bytes] = []
        self.statuses = deque(statuses)
        self.holding = True
        self.held = 0
        """Requests held so far."""
        self.released = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                stand_in.bodies.append(body)
                status = stand_in.statuses.popleft() if stand_in.statuses else 200
                if status == 200 and stand_in.holding:
                    stand_in.held += 1
                    stand_in.released.wait(60)
                with suppress(OSError):  # the client may be dead by now
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def release(self) -> None:
        self.holding = False
        self.released.set()

    def __enter__(self) -> "HoldingStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


class WorkerProcess:
    """``flowhooks worker`` in a session of its own: :meth:`kill` takes down whatever the
    worker may have started, as losing the pod or the machine would."""

    def __init__(self, env: Mapping[str, str], log: Path, name: str) -> None:
        self.env = dict(env)
        self.log = log
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, redis: Redis) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*FLOWHOOKS, "worker", "--name", self.name],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        registered = wait_until(
            lambda: bool(redis.exists(f"rq:worker:{self.name}")) or not self.alive, WAIT
        )
        if not (registered and self.alive):
            raise AssertionError(f"the worker did not start:\n{self.output()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the worker's process group at once: nothing gets to clean up. Returns
        once no process of the group is left to touch Redis (teardown uses it too: each test
        starts from an empty Redis, so a warm shutdown would only cost time)."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        if not wait_until(lambda: not living(self.process_group), 10):
            raise AssertionError(f"processes of {self.name} outlived SIGKILL")

    @property
    def process_group(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Flowhooks:
    """The receiver and the workers of one test, with one config, against one Redis."""

    redis: Redis
    redis_url: str
    sinks: Sinks
    folder: Path
    config_file: Path
    receiver: ServedApp
    secrets: dict[str, str]
    worker_settings: dict[str, str] = field(default_factory=dict)
    """``FLOWHOOKS_*`` settings of the workers besides Redis and the config."""
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def environ(self) -> dict[str, str]:
        return child_env(
            FLOWHOOKS_REDIS_URL=self.redis_url,
            FLOWHOOKS_CONFIG=str(self.config_file),
            **self.worker_settings,
            **self.secrets,
        )

    def start_worker(self) -> WorkerProcess:
        n = len(self.workers) + 1
        worker = WorkerProcess(self.environ, self.folder / f"worker-{n}.log", f"e2e-worker-{n}")
        self.workers.append(worker)
        worker.start(self.redis)
        return worker

    def worker_logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.output()[-6000:]}" for w in self.workers)

    def post(
        self,
        event: str,
        event_id: str,
        *,
        flow_id: int = 4242,
        flow_name: str | None = None,
        error: str | None = None,
    ) -> str:
        """Send a signed Etlworks webhook to the receiver; the stored event's ref."""
        body, headers = webhook(event, event_id, flow_id=flow_id, flow_name=flow_name, error=error)
        response = httpx.post(
            f"{self.receiver.url}/webhooks/etl", content=body, headers=headers, timeout=10
        )
        assert (response.status_code, response.json()) == (202, {"id": event_id})
        return keys.ref("etl", event_id)

    def timeline(self, ref: str) -> list[dict[str, Any]]:
        stored = eventlog.load(self.redis, ref)
        assert stored is not None, f"no stored event {ref}"
        return stored.timeline

    def event(self, ref: str) -> dict[str, Any]:
        stored = eventlog.load(self.redis, ref)
        assert stored is not None, f"no stored event {ref}"
        return stored.event

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Wait for ``condition``, failing with the workers' logs if it never holds."""
        if not wait_until(condition, timeout, interval=0.05):
            raise AssertionError(f"timed out waiting for {what}\n{self.worker_logs()}")

    def wait_routed(self, ref: str) -> list[dict[str, Any]]:
        """Wait until the event's route job is done (RQ deletes it: ``result_ttl=0``); its
        timeline."""
        job_key = f"rq:job:{keys.route_job_id(ref)}"
        self.wait(
            lambda: not self.redis.exists(job_key) and has_stage(self.timeline(ref), "routed"),
            f"the route job of {ref}",
        )
        return self.timeline(ref)

    def wait_deliveries(
        self, ref: str, action: str, count: int, timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        """Wait until the event's timeline holds ``count`` ``delivery`` entries of ``action``;
        those entries."""
        self.wait(
            lambda: len(deliveries(self.timeline(ref), action)) >= count,
            f"{count} delivery entries of {action} on {ref}",
            timeout,
        )
        return deliveries(self.timeline(ref), action)

    def cli(self, *args: str) -> "subprocess.CompletedProcess[str]":
        """A ``flowhooks`` command against this Redis, run as an operator runs it."""
        return run_process([*FLOWHOOKS, *args], child_env(FLOWHOOKS_REDIS_URL=self.redis_url))


@contextmanager
def running(
    redis: Redis,
    redis_url: str,
    sinks: Sinks,
    folder: Path,
    routes: str,
    *,
    secrets: Mapping[str, str] | None = None,
    receiver_settings: Mapping[str, object] | None = None,
    worker_settings: Mapping[str, str] | None = None,
    extra: str = "",
    actions: str = "",
) -> Iterator[Flowhooks]:
    """The receiver (its config written to ``folder``) with ``routes``; workers are started
    by the test and stopped at the end. ``secrets`` replace some of :meth:`Sinks.environ`;
    ``receiver_settings`` are :class:`~config.settings.Settings` fields of the receiver,
    ``worker_settings`` ``FLOWHOOKS_*`` variables of the workers."""
    sinks.reset()
    environ = {**sinks.environ(), **(secrets or {})}
    text = config_text(sinks, routes, extra, actions)
    config_file = folder / "flowhooks.yaml"
    config_file.write_text(text)
    served = settings(redis_url, **(receiver_settings or {}))
    receiver = ServedApp(served, make_config(text, environ, folder))
    with receiver:
        system = Flowhooks(
            redis,
            redis_url,
            sinks,
            folder,
            config_file,
            receiver,
            environ,
            dict(worker_settings or {}),
        )
        try:
            yield system
        finally:
            for worker in system.workers:
                worker.kill()


def living(group: int) -> list[int]:
    """The processes of a process group, zombies (dead, not yet reaped) excepted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == group and state != "Z":
            found.append(int(entry.name))
    return found


def webhook(
    event: str,
    event_id: str,
    *,
    flow_id: int,
    flow_name: str | None = None,
    error: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A realistic Etlworks webhook (``FLOW_FAILED``, ``FLOW_SUCCESS``…) and its headers,
    signed here with HMAC-SHA256 of the raw body."""
    sent, headers = sample(event, flow_id, time.time())
    payload = json.loads(sent)
    payload["eventId"] = event_id
    if flow_name is not None:
        payload["entity"]["flowName"] = flow_name
    if error is not None:
        payload["entity"]["exception"] = error
    body = json.dumps(payload).encode()
    headers["X-Etl-Webhook-Event-Id"] = event_id
    headers["X-Etl-Webhook-Signature"] = mac(SECRET, body).hex()
    headers["Content-Type"] = "application/json"
    return body, headers


def has_stage(timeline: list[dict[str, Any]], stage: str) -> bool:
    return any(entry["stage"] == stage for entry in timeline)


def stages(timeline: list[dict[str, Any]]) -> list[str]:
    return [entry["stage"] for entry in timeline]


def deliveries(timeline: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [e for e in timeline if e["stage"] == "delivery" and e.get("action") == action]


def attempts(timeline: list[dict[str, Any]], action: str) -> list[tuple[Any, ...]]:
    """``(outcome, attempt, status)`` of each delivery entry of ``action``."""
    return [(e["outcome"], e.get("attempt"), e.get("status")) for e in deliveries(timeline, action)]


def fast_forward_rq(redis: Redis) -> None:
    """Make RQ see what it would see a minute after a worker died: the started-job entries it
    left have expired, and so has the scheduler lock it held. Both are plain expiry times in
    Redis (the started entry's 15 s past the worker's last beat, the lock's 61 s), so this is
    the passage of time and nothing else."""
    started = [m for m in redis.zrange(RQ_STARTED, 0, -1) if isinstance(m, bytes)]
    if started:
        redis.zadd(RQ_STARTED, dict.fromkeys(started, 1))
    redis.delete(RQ_SCHEDULER_LOCK)
