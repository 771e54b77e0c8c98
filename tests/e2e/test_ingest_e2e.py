"""From the socket to the worker: a real receiver (uvicorn on loopback), a real worker process,
the real Redis, and clients that misbehave the way slow or hostile senders do."""

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from config import eventlog, keys
from flowhooks.cli import main
from tests.support import (
    ENV,
    FLOWHOOKS,
    HMAC_CONFIG,
    ServedApp,
    child_env,
    exchange,
    make_config,
    run_process,
    settings,
    signed_event,
)

QUEUE = f"rq:queue:{keys.QUEUE}"
MAX_BODY = 4096
HMAC_STEPS = make_config(HMAC_CONFIG).sources["etl"].verify


@pytest.fixture
def app(redis: Redis, redis_url: str) -> Iterator[ServedApp]:
    config = make_config(HMAC_CONFIG)
    with ServedApp(settings(redis_url, max_body_bytes=MAX_BODY, body_timeout=1), config) as app:
        yield app


def test_a_received_event_is_picked_up_by_a_worker_process(
    app: ServedApp, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    body, headers = signed_event(HMAC_STEPS, "e2e-1", time.time())
    response = httpx.post(f"{app.url}/webhooks/etl", content=body, headers=headers)
    assert (response.status_code, response.json()) == (202, {"id": "e2e-1"})
    assert redis.llen(QUEUE) == 1

    config_file = tmp_path / "flowhooks.yaml"
    config_file.write_text(HMAC_CONFIG)
    env = child_env(FLOWHOOKS_REDIS_URL=redis_url, FLOWHOOKS_CONFIG=str(config_file), **ENV)
    worker = run_process([*FLOWHOOKS, "worker", "--burst"], env)
    assert worker.returncode == 0, worker.stderr

    stored = eventlog.load(redis, "etl:e2e-1")
    assert stored is not None
    assert [entry["stage"] for entry in stored.timeline] == ["received", "picked_up", "routed"]
    assert stored.timeline[1]["job_id"] == keys.route_job_id("etl:e2e-1")
    assert redis.llen(QUEUE) == 0
    assert not redis.exists(f"rq:job:{keys.route_job_id('etl:e2e-1')}")  # result_ttl=0
    assert not redis.zcard(f"rq:failed:{keys.QUEUE}")
    picked = [json.loads(line) for line in worker.stderr.splitlines() if "picked up" in line]
    assert [(p["source"], p["event_id"], p["kind"]) for p in picked] == [
        ("etl", "e2e-1", "flow.failed")
    ]


def test_one_route_job_routes_the_events_queued_behind_it(
    app: ServedApp, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    refs = []
    for i in range(5):
        body, headers = signed_event(HMAC_STEPS, f"batch-{i}", time.time())
        assert httpx.post(f"{app.url}/webhooks/etl", content=body, headers=headers).is_success
        refs.append(keys.ref("etl", f"batch-{i}"))
    # An event whose record is broken: its routing raises, and it must fail on its own.
    broken = keys.ref("etl", "broken")
    redis.set(keys.event(broken), "{not json")
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    queue.enqueue(keys.ROUTE_TASK, broken, job_id=keys.route_job_id(broken), result_ttl=0)
    body, headers = signed_event(HMAC_STEPS, "after", time.time())
    assert httpx.post(f"{app.url}/webhooks/etl", content=body, headers=headers).is_success

    config_file = tmp_path / "flowhooks.yaml"
    config_file.write_text(HMAC_CONFIG)
    env = child_env(FLOWHOOKS_REDIS_URL=redis_url, FLOWHOOKS_CONFIG=str(config_file), **ENV)
    worker = run_process([*FLOWHOOKS, "worker", "--burst"], env)
    assert worker.returncode == 0, worker.stderr

    first = keys.route_job_id(refs[0])
    for ref in refs:
        stored = eventlog.load(redis, ref)
        assert stored is not None
        assert [entry["stage"] for entry in stored.timeline] == ["received", "picked_up", "routed"]
        picked = stored.timeline[1]
        assert picked["job_id"] == keys.route_job_id(ref)
        assert picked.get("by_job", first) == first
        assert not redis.exists(f"rq:job:{keys.route_job_id(ref)}")
    assert not redis.exists(keys.adopted(first))
    # The broken job went back to the queue on its own and failed there; the one behind it
    # was routed all the same.
    assert redis.exists(keys.solo(keys.route_job_id(broken)))
    failed = FailedJobRegistry(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    assert failed.get_job_ids() == [keys.route_job_id(broken)]
    assert eventlog.load(redis, keys.ref("etl", "after")).timeline[-1]["stage"] == "routed"  # type: ignore[union-attr]
    assert redis.llen(QUEUE) == 0


# Misbehaving clients, on a raw socket: what a client sends and when is the point of the test.


def head(content_length: int | None) -> bytes:
    framing = (
        f"Content-Length: {content_length}"
        if content_length is not None
        else "Transfer-Encoding: chunked"
    )
    return (
        f"POST /webhooks/etl HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize("how", ["halts", "dribbles"])
def test_a_body_not_sent_in_time_gets_408(app: ServedApp, redis: Redis, how: str) -> None:
    """The body timeout bounds the whole body, so a byte every so often does not extend it."""
    parts = [b'{"eventId": '] + ([b"1"] * 200 if how == "dribbles" else [])
    reply = exchange(app.port, head(1000), parts, pause=0.1)
    assert status(reply) == 408
    assert b"connection: close" in reply.lower()
    assert redis.dbsize() == 0


def test_an_announced_oversized_body_gets_413_before_it_is_sent(
    redis: Redis, redis_url: str
) -> None:
    # A body timeout far beyond the socket's, so an answer can only come from the size check.
    config = make_config(HMAC_CONFIG)
    with ServedApp(settings(redis_url, max_body_bytes=MAX_BODY, body_timeout=300), config) as app:
        reply = exchange(app.port, head(10**9) + b'{"eventId": "big", ')
    assert status(reply) == 413
    assert reply.endswith(b'{"error": "body too large"}')
    assert redis.dbsize() == 0


def test_a_chunked_body_over_the_cap_gets_413_while_still_streaming(
    app: ServedApp, redis: Redis
) -> None:
    chunk = b"x" * 1000
    endless = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 100  # never the terminating chunk
    reply = exchange(app.port, head(None), endless, pause=0.01)
    assert status(reply) == 413
    assert redis.dbsize() == 0


def test_a_chunked_body_under_the_cap_is_accepted(app: ServedApp, redis: Redis) -> None:
    body, headers = signed_event(HMAC_STEPS, "chunked-1", time.time())
    pieces = (body[i : i + 100] for i in range(0, len(body), 100))
    response = httpx.post(f"{app.url}/webhooks/etl", content=pieces, headers=headers)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert (response.status_code, response.json()) == (202, {"id": "chunked-1"})


# `flowhooks send-test` signs what each check verifies.

EVERY_SIGNATURE = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}", "${OLD_SECRET}"]}
      - basic: {username: etlworks, password: "${PASSWORD}"}
      - header_token: {header: X-Flowhooks-Token, token: "${TOKEN}"}
      - hmac:
          header: X-Stamped-Signature
          timestamp_header: X-Etl-Webhook-Timestamp
          algorithm: sha512
          encoding: base64
          prefix: "v1="
          secrets: ["${OLD_SECRET}"]
"""
STANDARD_WEBHOOKS = """
sources:
  etl:
    verify:
      - standard_webhooks: {secrets: ["${WHSEC}"]}
"""


def send_test(
    redis_url: str, tmp_path: Path, text: str, environ: Mapping[str, str]
) -> tuple[str, Result]:
    """``flowhooks send-test --source etl`` with the config ``text`` and ``environ``, against a
    receiver of the same config (its secrets from :data:`ENV`); the receiver's URL and the
    command's result."""
    config_file = tmp_path / "flowhooks.yaml"
    config_file.write_text(text)
    with ServedApp(settings(redis_url), make_config(text)) as app:
        result = CliRunner().invoke(
            main,
            ["send-test", "--url", app.url, "--source", "etl", "--config", str(config_file)],
            env=child_env(**environ),
        )
    return app.url, result


@pytest.mark.parametrize(
    ("text", "verified"),
    [
        (
            EVERY_SIGNATURE,
            [
                "hmac: secret #1",
                "basic",
                "header_token: X-Flowhooks-Token",
                "hmac: secret #1",
            ],
        ),
        (STANDARD_WEBHOOKS, ["standard_webhooks: secret #1"]),
    ],
    ids=["hmac-basic-token-timestamp", "standard-webhooks"],
)
def test_send_test_passes_the_checks_of_its_source(
    redis: Redis, redis_url: str, tmp_path: Path, text: str, verified: list[str]
) -> None:
    url, result = send_test(redis_url, tmp_path, text, ENV)
    assert result.exit_code == 0, result.output
    assert f"POST {url}/webhooks/etl -> 202 " in result.output
    event_id = json.loads(result.output.split(" -> 202 ", 1)[1])["id"]
    stored = eventlog.load(redis, keys.ref("etl", event_id))
    assert stored is not None
    assert stored.timeline[0]["verified"] == verified
    assert (stored.event["kind"], stored.event["flow_id"]) == ("flow.failed", "12345")


def test_send_test_signed_with_another_secret_fails(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    _, result = send_test(
        redis_url, tmp_path, HMAC_CONFIG, {**ENV, "SECRET": "not-the-receivers-secret"}
    )
    assert result.exit_code == 1
    assert '-> 401 {"error": "unauthorized"}' in result.output
    assert redis.dbsize() == 0


WHOLE_CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
  partner:
    verify:
      - basic: {username: partner, password: "${PARTNER_PASSWORD}"}
actions:
  ops-slack: {slack: {webhook_url: "${SLACK_WEBHOOK_URL}"}}
  oncall: {pagerduty: {routing_key: "${PAGERDUTY_ROUTING_KEY}"}}
etlworks:
  prod: {url: "https://app.etlworks.com/rest", api_key: "${ETLWORKS_API_KEY}"}
routes:
  actions: [ops-slack]
"""
WHOLE_ENV = {
    "SECRET": ENV["SECRET"],
    "PARTNER_PASSWORD": "partner-pa55word",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY",
    "ETLWORKS_API_KEY": "api-key",
}


def test_send_test_needs_only_the_secrets_of_its_source(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    config_file = tmp_path / "flowhooks.yaml"
    config_file.write_text(WHOLE_CONFIG)
    receiver = make_config(WHOLE_CONFIG, WHOLE_ENV)
    argv = [*FLOWHOOKS, "send-test", "--source", "etl", "--config", str(config_file)]
    with ServedApp(settings(redis_url), receiver) as app:
        sent = run_process([*argv, "--url", app.url], child_env(SECRET=ENV["SECRET"]))
        assert sent.returncode == 0, sent.stderr
        assert f"POST {app.url}/webhooks/etl -> 202 " in sent.stdout

        # Its own secret is still required, and is the only one named.
        unset = run_process([*argv, "--url", app.url], child_env())
    assert unset.returncode == 2
    assert unset.stderr == (
        f"{config_file}:5: sources.etl.verify[0].hmac.secrets[0]:"
        " environment variable SECRET is not set\n"
    )
    assert redis.dbsize() > 0
