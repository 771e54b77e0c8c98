"""``make demo``: flowhooks and a simulated Etlworks, wired together, telling one story.

``flowhooks dev`` runs with ``config/examples/chain.yaml`` (its own Redis, in a folder of its
own that goes at the end), the Etlworks simulator (:mod:`tests.etlworks.simulator`) serves on
the port that config calls and sends its webhooks to the receiver, signed with the secret the
receiver checks. The demo then runs flow 101 once, as a user would from Etlworks: it fails,
flowhooks retries it, the retry succeeds, and flowhooks runs the dependent flow 12346 and
follows it to its end. Once that end is routed, the demo prints the story as
``flowhooks events show`` tells it, event by event, and stops everything.

The simulator serves on port 8900, which the chain config calls; when that port is taken, on
another, with a copy of the config calling it. Its exit code: 0 when the story was told, 1 when
it did not happen in time, 2 when it could not start (the port asked for taken, say).
"""

import argparse
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from redis import Redis

from config import eventlog
from tests.etlworks.simulator import Flow, Simulator, serve_simulator
from tests.etlworks.simulator import log as simulator_log

ROOT = Path(__file__).resolve().parents[2]
CHAIN = Path("config/examples/chain.yaml")
SIMULATOR_PORT = 8900
"""The port of ``etlworks.main.url`` in the chain config."""
SOURCE = "etlworks"
FAILING, DEPENDENT = 101, 12346
EVENTS = ["FLOW_FAILED", "FLOW_SUCCESS", "FLOW_WARNING", "FLOW_CANCELED"]
SPEED = 60.0
"""Simulated seconds per second: the minute-and-a-half load takes 1.5 s."""
STORY_TIMEOUT = 120.0
"""The whole story takes about 20 s (the retry waits 10 s); past this, something is wrong."""


class Failed(Exception):
    """The demo cannot go on; the message says why. ``code`` is its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(text: str) -> None:
    print(f"\ndemo: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--simulator-port",
        type=int,
        default=SIMULATOR_PORT,
        help=f"where the simulator serves (default {SIMULATOR_PORT}, as {CHAIN} says; 0: any)",
    )
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    shown = logging.StreamHandler(sys.stdout)
    shown.setFormatter(logging.Formatter("  etlworks | %(message)s"))
    simulator_log.addHandler(shown)
    simulator_log.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory(prefix="flowhooks-demo-") as folder:
            told = tell(Path(folder), _simulator_port(args.simulator_port))
    except Failed as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return exc.code
    print(told, flush=True)
    return 0


def _simulator_port(asked: int) -> int:
    """``asked`` if free; 0, or the default taken, is any free port."""
    if asked == 0 or (asked == SIMULATOR_PORT and not _free(asked)):
        return _port()
    if not _free(asked):
        raise Failed(f"port {asked} is in use: choose another with --simulator-port", code=2)
    return asked


def _config(folder: Path, port: int) -> Path:
    """The chain config, its Etlworks URL pointed at the simulator: the file itself when the
    simulator serves where it says, else a copy in ``folder``."""
    if port == SIMULATOR_PORT:
        return CHAIN
    text = CHAIN.read_text(encoding="utf-8")
    shipped = f"http://127.0.0.1:{SIMULATOR_PORT}/rest"
    if shipped not in text:
        raise Failed(f"{CHAIN} no longer calls {shipped}: the demo cannot point it elsewhere")
    copy = folder / CHAIN.name
    copy.write_text(text.replace(shipped, f"http://127.0.0.1:{port}/rest"), encoding="utf-8")
    return copy


def tell(folder: Path, port: int) -> str:
    """Run the story in ``folder``, the simulator on ``port``; the ``events show`` of each of
    its events, and a recap."""
    key, secret = secrets.token_urlsafe(24), secrets.token_hex(32)
    flows = [
        Flow(FAILING, "warehouse-load-orders", duration=90, outcomes=["error", "success"]),
        Flow(DEPENDENT, "load-marts", duration=120, tags=["marts"]),
    ]
    config = _config(folder, port)
    with serve_simulator(*flows, port=port, api_key=key, speed=SPEED) as simulator:
        if config != CHAIN:
            say(f"{config} is {CHAIN} calling the simulator at {simulator.url}")
        say(f"the Etlworks simulator serves {simulator.url}; starting flowhooks dev with {config}")
        env = _env(config, ETLWORKS_API_KEY=key, ETLWORKS_WEBHOOK_SECRET=secret)
        with _dev(folder / "data", env) as (state, echo):
            receiver = f"{state['receiver']}/webhooks/{SOURCE}"
            hook = {"url": receiver, "secret": secret, "events": EVENTS}
            _api(simulator, key, "/v1/webhooks", hook)
            say(f"Etlworks sends {', '.join(EVENTS)} of every flow to {receiver}")
            run = _api(simulator, key, f"/v1/flows/{FAILING}/run", {"runDate": "2026-01-01"})
            say(
                f"ran flow {FAILING} (warehouse-load-orders), audit id {run['auditId']}: it will"
                " fail, flowhooks retries it 10 s later, and once it succeeds runs flow"
                f" {DEPENDENT} (load-marts); each run is followed to its end"
            )
            redis_url = str(state["redis_url"])
            story = _wait_for_story(Redis.from_url(redis_url))
            echo.quiet()
            say("the story, as `flowhooks events show` tells it:")
            shown = [_show(ref, redis_url) for ref in story.refs]
            return "\n".join([*shown, "", "demo: in short", *story.recap, ""])


def _env(config: Path = CHAIN, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWHOOKS_")}
    return {**env, "FLOWHOOKS_CONFIG": str(config), "PYTHONUNBUFFERED": "1", **values}


@contextmanager
def _dev(folder: Path, env: dict[str, str]) -> Iterator[tuple[dict[str, Any], "_Echo"]]:
    """``flowhooks dev`` on a free port with its data in ``folder``, its output shown until
    :meth:`_Echo.quiet`; its ``dev.json`` once it is up. Stopped as Ctrl-C stops it."""
    argv = [sys.executable, "-m", "flowhooks", "dev", "--port", str(_port()), "--data", str(folder)]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    echo = _Echo(process.stdout)
    try:
        state_file = folder / "dev.json"
        if not _wait(lambda: state_file.exists() or process.poll() is not None, 60):
            raise Failed("flowhooks dev did not start within a minute")
        if process.poll() is not None:
            raise Failed(f"flowhooks dev stopped ({process.returncode}); see its output above")
        yield json.loads(state_file.read_text()), echo
    finally:
        echo.quiet()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        echo.join()


class _Echo:
    """Shows a child's output, line by line, until told to be quiet (then drops it)."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.stream = stream
        self.showing = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for line in self.stream:
            if self.showing:
                print(f"  dev | {line.rstrip()}", flush=True)

    def quiet(self) -> None:
        self.showing = False

    def join(self) -> None:
        self.thread.join(10)
        self.stream.close()


@dataclass(frozen=True)
class Story:
    refs: list[str]
    """Flow 101's failure, its success, flow 12346's success."""
    recap: list[str]
    """One line a step, from the timelines."""


def _wait_for_story(conn: Redis) -> Story:
    """The story, once both runs flowhooks started are followed to their routed ends."""
    found: list[Story] = []

    def told() -> bool:
        story = _story(conn)
        if story is not None:
            found.append(story)
        return story is not None

    if not _wait(told, STORY_TIMEOUT):
        raise Failed(f"the story did not end within {STORY_TIMEOUT:.0f} s; see the output above")
    return found[-1]


def _story(conn: Redis) -> Story | None:
    """The story so far, when it is complete: the failure's rerun and the dependent's run
    both ended, their outcomes noted on their causes' timelines, the last one routed."""
    events = list(reversed(eventlog.recent(conn, 50)))  # oldest first
    failed = _first(events, FAILING, "flow.failed")
    if failed is None:
        return None
    retried = _ended_run(conn, failed)
    if retried is None or (succeeded := _routed(conn, retried["outcome"])) is None:
        return None
    marts = _ended_run(conn, succeeded.event)
    if marts is None or (loaded := _routed(conn, marts["outcome"])) is None:
        return None
    steps = [(failed, retried), (succeeded.event, marts), (loaded.event, None)]
    return Story([_ref(e) for e, _ in steps], [_recap(e, run) for e, run in steps])


def _first(events: list[dict[str, Any]], flow_id: int, kind: str) -> dict[str, Any] | None:
    return next((e for e in events if (e["flow_id"], e["kind"]) == (str(flow_id), kind)), None)


def _ended_run(conn: Redis, event: dict[str, Any]) -> dict[str, Any] | None:
    """The timeline entry of the run ``event`` caused, once that run ended."""
    stored = _load(conn, _ref(event))
    runs = [e for e in stored.timeline if e.get("stage") == "run"] if stored else []
    return next((e for e in runs if e.get("outcome")), None)


def _load(conn: Redis, ref: str) -> "eventlog.StoredEvent | None":
    return eventlog.load(conn, ref)


def _routed(conn: Redis, outcome: str) -> "eventlog.StoredEvent | None":
    """The event that was routed for a run's ``outcome``, once it was: the outcome itself, or
    the webhook Etlworks sent for the same run when that came first (the outcome's timeline
    then names it as what it duplicates)."""
    stored = _load(conn, outcome)
    for entry in stored.timeline if stored else []:
        if entry.get("stage") == "duplicate":
            return _routed(conn, str(entry["of"]))
        if entry.get("stage") == "routed":
            return stored
    return None


def _ref(event: dict[str, Any]) -> str:
    return f"{event['source']}:{event['id']}"


def _recap(event: dict[str, Any], run: dict[str, Any] | None) -> str:
    at = str(event["received_at"])[11:19] + " UTC"
    line = f"  {at}  flow {event['flow_id']} {event['flow_name']}: {event['kind']}"
    if run is not None:
        line += (
            f"; {run['action']} ran flow {run['flow_id']} (audit id {run['audit_id']}),"
            f" which ended {run['status']}"
        )
    return line


def _show(ref: str, redis_url: str) -> str:
    """``flowhooks events show`` of the event ``ref``, run as a user would, with the command."""
    source, event_id = ref.split(":", 1)
    argv = [sys.executable, "-m", "flowhooks", "events", "show", event_id, "--source", source]
    shown = subprocess.run(
        argv,
        env={**_env(), "FLOWHOOKS_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if shown.returncode != 0:
        raise Failed(f"flowhooks events show {event_id}: {shown.stderr.strip()}")
    command = shlex.join(["flowhooks", "events", "show", event_id, "--source", source])
    return f"\n$ {command}\n{shown.stdout.rstrip()}"


def _api(simulator: Simulator, key: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(
        simulator.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    if not response.is_success:
        raise Failed(f"the simulator answered POST {path} with {response.status_code}")
    return response.json()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


if __name__ == "__main__":
    sys.exit(main())
