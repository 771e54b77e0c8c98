"""``flowhooks serve`` reloads its config on SIGHUP and when the file changes, as the worker does:
a new source is served without a restart, a broken config is logged, counted and ignored, and
SIGHUP never ends the process. A real ``flowhooks serve``, a real Redis."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from redis import Redis

from config import eventlog, keys
from tests.support import (
    ENV,
    FLOWHOOKS,
    child_env,
    free_port,
    make_config,
    signed_event,
    wait_until,
)

pytestmark = pytest.mark.slow

ONE_SOURCE = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
"""
TWO_SOURCES = (
    ONE_SOURCE
    + """
  partner:
    verify:
      - hmac: {secrets: ["${OLD_SECRET}"]}
"""
)
BROKEN = ONE_SOURCE.replace("hmac:", "hamc:")


class Served:
    def __init__(self, process: "subprocess.Popen[bytes]", port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def post(self, source: str, event_id: str, config_text: str) -> httpx.Response:
        steps = make_config(config_text).sources[source].verify
        body, headers = signed_event(steps, event_id, time.time())
        url = f"http://127.0.0.1:{self.port}/webhooks/{source}"
        return httpx.post(url, content=body, headers=headers, timeout=10)

    def reloads(self, outcome: str) -> float:
        page = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        line = f'flowhooks_config_reloads_total{{outcome="{outcome}"}} '
        found = [row for row in page.splitlines() if row.startswith(line)]
        return float(found[0].removeprefix(line)) if found else 0.0

    def logged(self, message: str) -> list[dict[str, object]]:
        rows = [json.loads(row) for row in self.log.read_text().splitlines() if row.startswith("{")]
        return [row for row in rows if row.get("msg") == message]


@contextmanager
def serving(redis_url: str, config: Path) -> Iterator[Served]:
    port = free_port()
    log = config.parent / "serve.log"
    environ = child_env(FLOWHOOKS_REDIS_URL=redis_url, FLOWHOOKS_CONFIG=str(config), **ENV)
    argv = [*FLOWHOOKS, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
    served = Served(process, port, log)
    try:
        ready = wait_until(lambda: _ready(port) or process.poll() is not None, 30)
        assert ready and process.poll() is None, log.read_text()
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def rewrite(path: Path, text: str, *, keep_stamp: bool = False) -> None:
    """Write ``text`` to ``path``; with ``keep_stamp``, leave its time and size as they were,
    so that only a SIGHUP can tell the receiver (``text`` must be of the same size)."""
    before = path.stat()
    path.write_text(text)
    if keep_stamp:
        assert path.stat().st_size == before.st_size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_changed_file_is_served_without_a_restart(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "flowhooks.yaml"
    config.write_text(ONE_SOURCE)
    with serving(redis_url, config) as served:
        assert served.post("partner", "p-1", TWO_SOURCES).status_code == 404

        rewrite(config, TWO_SOURCES)
        assert wait_until(lambda: served.reloads("ok") == 1, 10), served.log.read_text()
        response = served.post("partner", "p-2", TWO_SOURCES)
        assert (response.status_code, response.json()) == (202, {"id": "p-2"})
        assert eventlog.load(redis, keys.ref("partner", "p-2")) is not None
        [reloaded] = served.logged("config reloaded")
        assert reloaded["sources"] == ["etl", "partner"]

        # A broken file: logged with its errors, counted, ignored; the old config serves on.
        rewrite(config, BROKEN)
        assert wait_until(lambda: served.reloads("invalid") == 1, 10), served.log.read_text()
        [ignored] = served.logged("new config ignored, the old one stays in force")
        assert ignored["errors"] == [
            f"{config}:5: sources.etl.verify[0].hamc: unknown key"
            " (known: basic, header_token, hmac, standard_webhooks)"
        ]
        assert served.post("partner", "p-3", TWO_SOURCES).status_code == 202
        assert served.process.poll() is None


def test_sighup_reloads_and_never_ends_the_receiver(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "flowhooks.yaml"
    config.write_text(TWO_SOURCES)
    with serving(redis_url, config) as served:
        # A config of the same size and time: nothing tells the receiver but the signal.
        renamed = TWO_SOURCES.replace("partner", "vendors")
        rewrite(config, renamed, keep_stamp=True)
        time.sleep(2.5)  # a watch that could see the change has looked twice by now
        assert served.post("vendors", "v-1", renamed).status_code == 404

        served.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: served.reloads("ok") == 1, 10), served.log.read_text()
        assert served.post("vendors", "v-2", renamed).status_code == 202
        assert served.post("partner", "p-1", TWO_SOURCES).status_code == 404

        # A SIGHUP with a broken file: ignored, the receiver answers on.
        rewrite(config, BROKEN)
        served.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: served.reloads("invalid") == 1, 10), served.log.read_text()
        for _ in range(3):
            served.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: served.reloads("invalid") >= 2, 10), served.log.read_text()
        assert served.post("vendors", "v-3", renamed).status_code == 202
        assert served.process.poll() is None

        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(30) == 0
