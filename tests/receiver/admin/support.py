"""What the admin tests share: the token, events stored as the receiver stores them, and a real
pipeline (receiver, ``flowhooks worker --burst``, a stand-in for a webhook's far side) for
replays and dead letters that are the real thing."""

import json
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from config import keys
from flowhooks.sendtest import sample, sign
from tests.support import (
    ENV,
    FLOWHOOKS,
    ServedApp,
    child_env,
    free_port,
    make_config,
    run_process,
    settings,
)
from tests.workers.sinks.standins import HttpStandIn, Reply

TOKEN = "admin-t0ken-for-tests-9f8e7d6c5b4a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK_PATH = "/hook/path-is-a-secret-Zq7"
PIPELINE_CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
actions:
  hook: {webhook: {url: "${HOOK_URL}"}}
routes:
  actions: [hook]
"""
NOW_MS = int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def store(
    conn: Redis,
    event_id: str,
    *,
    received_ms: int = NOW_MS,
    timeline: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> str:
    """An event stored as the receiver stores it (record, timeline, time index); its ref.
    ``fields`` override the canonical event's."""
    event: dict[str, Any] = {
        "id": event_id,
        "source": "etl",
        "event": "FLOW_FAILED",
        "kind": "flow.failed",
        "status": "error",
        "flow_id": "7",
        "flow_name": "orders",
        "tags": [],
        "params": {},
        "duration_ms": None,
        "received_at": iso(received_ms),
        "raw": {"eventId": event_id},
        **fields,
    }
    ref = keys.ref(event["source"], event_id)
    received = {"at": iso(received_ms), "stage": "received", "verified": ["hmac: secret #1"],
                "remote": "127.0.0.1"}  # fmt: skip
    conn.set(keys.event(ref), json.dumps(event))
    conn.rpush(keys.timeline(ref), *(json.dumps(e) for e in (received, *timeline)))
    conn.zadd(keys.EVENT_INDEX, {ref: received_ms})
    return ref


@dataclass
class Pipeline:
    """The receiver (with the admin token), a webhook action's far side, and workers run on
    demand, against the test Redis."""

    redis: Redis
    redis_url: str
    receiver: ServedApp
    hook: HttpStandIn
    config_file: Path

    def post(
        self, event_id: str, *, event: str = "FLOW_FAILED", flow_name: str | None = None
    ) -> str:
        """A signed Etlworks webhook (``FLOW_FAILED``, ``FLOW_SUCCESS``…) to the receiver; the
        stored event's ref."""
        now = time.time()
        sent, headers = sample(event, 12345, now)
        payload = json.loads(sent) | {"eventId": event_id}
        if flow_name is not None:
            payload["entity"]["flowName"] = flow_name
        body = json.dumps(payload).encode()
        steps = make_config(PIPELINE_CONFIG, self.environ).sources["etl"].verify
        headers |= sign(steps, body, now) | {"Content-Type": "application/json"}
        headers["X-Etl-Webhook-Event-Id"] = event_id
        response = httpx.post(f"{self.receiver.url}/webhooks/etl", content=body, headers=headers)
        assert response.status_code == 202, response.text
        return keys.ref("etl", event_id)

    @property
    def environ(self) -> dict[str, str]:
        return {**ENV, "HOOK_URL": self.hook.url(HOOK_PATH)}

    def work(self) -> None:
        """Run a worker until the queue is empty."""
        env = child_env(
            FLOWHOOKS_REDIS_URL=self.redis_url,
            FLOWHOOKS_CONFIG=str(self.config_file),
            **self.environ,
        )
        done = run_process([*FLOWHOOKS, "worker", "--burst"], env)
        assert done.returncode == 0, done.stderr

    @contextmanager
    def worker(self, name: str) -> Iterator[subprocess.Popen[str]]:
        """A worker process that keeps running (with RQ's scheduler), stopped after."""
        env = child_env(
            FLOWHOOKS_REDIS_URL=self.redis_url,
            FLOWHOOKS_CONFIG=str(self.config_file),
            **self.environ,
        )
        argv = [*FLOWHOOKS, "worker", "--name", name]
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.receiver.url}{path}", headers=AUTH, **kwargs)


@contextmanager
def pipeline(redis: Redis, redis_url: str, folder: Path, *replies: Reply) -> Iterator[Pipeline]:
    """The far side answers ``replies`` in turn, then 200."""
    hook = HttpStandIn(free_port())
    hook.reset(*replies)
    hook.start()
    try:
        environ = {**ENV, "HOOK_URL": hook.url(HOOK_PATH)}
        config_file = folder / "flowhooks.yaml"
        config_file.write_text(PIPELINE_CONFIG)
        served = settings(redis_url, admin_token=TOKEN)
        with ServedApp(served, make_config(PIPELINE_CONFIG, environ, folder)) as receiver:
            yield Pipeline(redis, redis_url, receiver, hook, config_file)
    finally:
        hook.stop()


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found, page.text
    return found.group(1)


def cookie(response: httpx.Response, name: str) -> str:
    """A cookie the response sets (httpx keeps a Secure cookie only for https: the tests hand
    it over themselves on plain loopback HTTP)."""
    for header in response.headers.get_list("set-cookie"):
        key, _, value = header.split(";")[0].partition("=")
        if key == name:
            return value
    raise AssertionError(f"no {name} cookie set: {response.headers}")


def login(client: httpx.Client, token: str = TOKEN) -> httpx.Response:
    """The login form fetched, then posted with its CSRF token and nonce cookie."""
    form = client.get("/login")
    client.cookies.set("flowhooks_login", cookie(form, "flowhooks_login"))
    return client.post("/login", data={"token": token, "csrf": csrf(form)})


def sign_in(served: ServedApp) -> httpx.Client:
    client = httpx.Client(base_url=f"{served.url}/ui")
    response = login(client)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/")
    client.cookies.set("flowhooks_session", cookie(response, "flowhooks_session"))
    return client
