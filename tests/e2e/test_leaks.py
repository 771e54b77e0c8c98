"""Secrets never leak: a session of every outcome the receiver has, against a real ``flowhooks
serve`` and ``flowhooks worker`` logging at DEBUG, and a Redis that wants a password; then no
secret, in clear or in its usual encodings, may appear in anything they said or stored."""

import base64
import contextlib
import json
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from redis import Redis

from config import keys
from config.loader import load
from config.settings import Settings
from flowhooks.cli import main
from flowhooks.sendtest import sign
from tests.support import (
    FLOWHOOKS,
    RedisProcess,
    child_env,
    exchange,
    free_port,
    signed_event,
    wait_until,
)

pytestmark = pytest.mark.slow

REDIS_USER = "flowhooks"
WHSEC_KEY = b"standard-webhooks-key-Vx4Jg"
SECRETS = {
    "LEAK_HMAC_SECRET": "hmac-current-Zq8vK2pW",
    "LEAK_HMAC_PREVIOUS": "hmac-previous-Rt5nB7xY",
    "LEAK_STAMPED_SECRET": "stamped-Lm3cH9dQ",
    "LEAK_WHSEC": "whsec_" + base64.b64encode(WHSEC_KEY).decode(),
    "LEAK_BASIC_PASSWORD": "basic-pass-Ny6Tf1sE",
}
FILE_TOKEN = "token-from-file-Kp2Wd8uA"
REDIS_PASSWORD = "redis-pass-Hb7Qe3mZ"

CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${LEAK_HMAC_SECRET}", "${LEAK_HMAC_PREVIOUS}"]}
      - hmac:
          header: X-Stamped-Signature
          timestamp_header: X-Etl-Webhook-Timestamp
          encoding: base64
          secrets: ["${LEAK_STAMPED_SECRET}"]
      - standard_webhooks: {secrets: ["${LEAK_WHSEC}"]}
      - basic: {username: etlworks, password: "${LEAK_BASIC_PASSWORD}"}
      - header_token: {header: X-Flowhooks-Token, token: {file: token.txt}}
"""


def forms(secret: bytes) -> set[bytes]:
    """``secret`` in clear, hex and base64 (standard and URL-safe, with and without padding)."""
    encoded = {base64.b64encode(secret), base64.urlsafe_b64encode(secret)}
    return {
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        *encoded,
        *(e.rstrip(b"=") for e in encoded),
    }


def secret_forms() -> dict[bytes, str]:
    """Every form to look for, mapped to the secret it gives away."""
    named: dict[str, bytes] = {name: value.encode() for name, value in SECRETS.items()}
    named |= {
        "whsec key": WHSEC_KEY,
        "token file": FILE_TOKEN.encode(),
        "redis password": REDIS_PASSWORD.encode(),
    }
    found = {form: name for name, value in named.items() for form in forms(value)}
    basic = f"etlworks:{SECRETS['LEAK_BASIC_PASSWORD']}".encode()
    found |= dict.fromkeys(forms(basic), "basic credentials")
    return found


def leaks(text: bytes) -> list[str]:
    return sorted({name for form, name in secret_forms().items() if form in text})


def secure(server: RedisProcess) -> str:
    """Require a user and password on ``server``; the URL to reach it with them."""
    admin = Redis.from_url(server.url)
    admin.acl_setuser(
        REDIS_USER,
        enabled=True,
        passwords=[f"+{REDIS_PASSWORD}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    admin.acl_setuser("default", enabled=False)
    admin.close()
    return f"redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"


def raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def dump(conn: Redis) -> bytes:
    """Every key and value in Redis, read by type, compressed values inflated too."""
    out: list[bytes] = []
    for key in conn.scan_iter(count=1000):
        kind = raw(conn.type(key)).decode()
        values: list[object]
        if kind == "string":
            values = [conn.get(key)]
        elif kind == "list":
            values = list(conn.lrange(key, 0, -1))
        elif kind == "hash":
            values = [part for pair in conn.hgetall(key).items() for part in pair]
        elif kind == "set":
            values = list(conn.smembers(key))
        elif kind == "zset":
            values = list(conn.zrange(key, 0, -1))
        elif kind == "stream":
            values = [
                part
                for _, fields in conn.xrange(key) or []
                for pair in (fields or {}).items()
                for part in pair
            ]
        else:
            raise AssertionError(f"{key!r} has a type the dump does not read: {kind}")
        out.append(raw(key))
        for value in map(raw, values):
            out.append(value)
            with contextlib.suppress(zlib.error):
                out.append(zlib.decompress(value))
    return b"\n".join(out)


@dataclass
class Session:
    """What the receiver said to every request, for the leak check and for the outcomes."""

    url: str
    replies: list[bytes] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def record(self, response: httpx.Response) -> httpx.Response:
        head = [f"HTTP {response.status_code}", *(f"{k}: {v}" for k, v in response.headers.items())]
        self.replies.append("\n".join(head).encode() + b"\n\n" + response.content)
        self.statuses.append(response.status_code)
        return response

    def post(self, body: bytes, headers: dict[str, str], source: str = "etl") -> int:
        response = httpx.post(f"{self.url}/webhooks/{source}", content=body, headers=headers)
        return self.record(response).status_code

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        return self.record(httpx.get(f"{self.url}{path}", headers=headers)).status_code


class Receiver:
    """``flowhooks serve`` in a process of its own, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*FLOWHOOKS, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = wait_until(lambda: self._healthy() or self.process.poll() is not None, 30)
        assert self.process.poll() is None, log.read_text()
        assert started, log.read_text()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def receiver_env(tmp_path: Path, private_redis: RedisProcess) -> dict[str, str]:
    (tmp_path / "token.txt").write_text(FILE_TOKEN + "\n")
    (tmp_path / "flowhooks.yaml").write_text(CONFIG)
    return child_env(
        **SECRETS,
        FLOWHOOKS_CONFIG=str(tmp_path / "flowhooks.yaml"),
        FLOWHOOKS_REDIS_URL=secure(private_redis),
        FLOWHOOKS_LOG_FORMAT="json",
        FLOWHOOKS_LOG_LEVEL="DEBUG",
        FLOWHOOKS_MAX_BODY_BYTES="4096",
        FLOWHOOKS_BODY_TIMEOUT="1",
        FLOWHOOKS_REDIS_TIMEOUT="1",
    )


@pytest.fixture
def receiver(receiver_env: dict[str, str], tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(receiver_env, tmp_path / "receiver.log")
    try:
        yield running
    finally:
        running.stop()


def test_no_secret_leaks_from_a_session_of_every_outcome(
    receiver: Receiver,
    receiver_env: dict[str, str],
    private_redis: RedisProcess,
    tmp_path: Path,
) -> None:
    config = load(tmp_path / "flowhooks.yaml", receiver_env)
    steps = config.sources["etl"].verify
    session = Session(receiver.url)

    def event(
        event_id: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[bytes, dict[str, str]]:
        return signed_event(steps, event_id, time.time(), body, content_type)

    # Redis gone: 503 and not ready; back (with its password set again): the same event in.
    body, good = event("first")
    private_redis.stop()
    assert session.post(body, good) == 503
    assert session.get("/readyz") == 503
    private_redis.start()
    redis_url = secure(private_redis)
    assert redis_url == receiver_env["FLOWHOOKS_REDIS_URL"]
    back = wait_until(lambda: session.post(body, good) != 503, 20, interval=0.1)
    assert back, receiver.log.read_text()
    assert session.statuses[-1] == 202
    assert session.post(body, good) == 200  # a duplicate

    # Every way verification can fail, each on an otherwise valid request.
    body, good = event("rejected")
    now = time.time()
    stamped = [s for s in steps if s.hmac is not None and s.hmac.timestamp_header]
    standard = [s for s in steps if s.standard_webhooks is not None]
    wrong_basic = base64.b64encode(b"etlworks:not-the-password").decode()
    failures = [
        {"X-Etl-Webhook-Signature": "0" * 64},
        {"X-Etl-Webhook-Signature": "not hex"},
        sign(stamped, body, now - 3600),
        sign(stamped, body, now + 3600),
        sign(standard, body, now - 3600),
        {"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()},
        {"webhook-signature": "v1,!!!"},
        {"Authorization": f"Basic {wrong_basic}"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer whatever"},
        {"X-Flowhooks-Token": "not-the-token"},
    ]
    for override in failures:
        assert session.post(body, good | override) == 401, override
    without_token = {k: v for k, v in good.items() if k != "X-Flowhooks-Token"}
    assert session.post(body, without_token) == 401

    # Refused after verification, or before it.
    assert session.post(*event("big", body=b'{"pad": "' + b"x" * 5000 + b'"}')) == 413
    assert session.post(*event("plain", content_type="text/plain")) == 415
    assert session.post(*event("broken", body=b'{"eventId": ')) == 400
    assert session.post(*event("elsewhere"), source="nope") == 404
    body, good = event("slow")
    head = "".join(f"{k}: {v}\r\n" for k, v in (good | {"Content-Length": "1000"}).items())
    request = f"POST /webhooks/etl HTTP/1.1\r\n{head}\r\n".encode() + body[:20]
    slow = exchange(receiver.port, request, [b" "] * 100, pause=0.1)  # a byte at a time
    assert slow.startswith(b"HTTP/1.1 408 ")
    session.replies.append(slow)

    # A GET delivery, and the pages an operator reads.
    get_headers = sign(steps, b"", time.time()) | {"X-Etl-Webhook-Event-Id": "get-1"}
    assert session.get("/webhooks/etl", get_headers) == 202
    assert [session.get(page) for page in ("/healthz", "/readyz", "/metrics")] == [200] * 3

    worker = subprocess.run(
        [*FLOWHOOKS, "worker", "--burst"],
        env=receiver_env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr.decode()
    cli = [
        CliRunner().invoke(main, args, env={"FLOWHOOKS_REDIS_URL": redis_url})
        for args in (
            ["events", "list"],
            ["events", "show", "first", "-o", "json"],
            ["events", "show", "nope"],
        )
    ]
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
    assert receiver.stop() in (0, -signal.SIGTERM)
    receiver_log = receiver.log.read_bytes()
    stored = dump(Redis.from_url(redis_url))

    # The session did what it set out to: every outcome, logged, stored and routed.
    records = [json.loads(line) for line in receiver_log.splitlines()]  # all of it is JSON
    worker_records = [json.loads(line) for line in worker.stderr.splitlines()]
    reasons = {r["reason"] for r in records if r["msg"] == "webhook rejected"}
    assert reasons == {
        "signature_mismatch",
        "malformed_header",
        "stale_timestamp",
        "future_timestamp",
        "bad_credentials",
        "missing_header",
    }
    assert "Application shutdown complete." in {r["msg"] for r in records}
    assert {"first", "get-1"} <= {r.get("event_id") for r in records} | {
        ref.split(":", 1)[1] for r in records for ref in r.get("events", [])
    }
    assert sum(r["msg"].startswith("event picked up") for r in worker_records) == 2
    assert sorted(set(session.statuses)) == [200, 202, 400, 401, 404, 413, 415, 503]
    assert keys.event("etl:first").encode() in stored
    assert b'"stage": "picked_up"' in stored
    assert '"id": "first"' in cli[1].output

    # And none of it gives a secret away.
    assert leaks(receiver_log) == []
    assert leaks(worker.stdout + worker.stderr) == []
    assert [leaks(reply) for reply in session.replies] == [[]] * len(session.replies)
    assert leaks(stored) == []
    assert [leaks(result.output.encode()) for result in cli] == [[]] * len(cli)
    assert leaks(repr(config).encode() + str(config).encode()) == []


def test_the_leak_check_finds_what_it_looks_for() -> None:
    """Guards the guard: the headers a sender puts on the wire hold secrets in these forms."""
    basic = base64.b64encode(f"etlworks:{SECRETS['LEAK_BASIC_PASSWORD']}".encode())
    assert "basic credentials" in leaks(b"Authorization: Basic " + basic)
    assert leaks(f"X-Flowhooks-Token: {FILE_TOKEN}".encode()) == ["token file"]
    assert leaks(WHSEC_KEY.hex().encode()) == ["whsec key"]
    assert leaks(b"redis://flowhooks:" + REDIS_PASSWORD.encode() + b"@host") == ["redis password"]


def test_settings_keep_the_redis_password_out_of_their_text() -> None:
    url = f"redis://{REDIS_USER}:{REDIS_PASSWORD}@redis.internal:6380/2"
    settings = Settings.model_validate({"redis_url": url})
    shown = [repr(settings), str(settings), settings.model_dump_json(), settings.redis_location]
    assert [leaks(text.encode()) for text in shown] == [[]] * len(shown)
    assert settings.redis_location == "redis.internal:6380/2"
    assert settings.redis_url == SecretStr(url)
