"""The ``flowhooks`` command as an operator runs it, in a child process: ``-h`` and
``--version``, the exit codes, which Redis it reads, the ``events`` commands, and refusing to
start on a bad config."""

import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from queue import Empty, Queue
from typing import IO
from zoneinfo import ZoneInfo

import click
import httpx
import pytest
from click.testing import CliRunner
from redis import Redis

from config import keys
from flowhooks import devstate
from flowhooks.cli import main
from flowhooks.common import resolve
from flowhooks.devstate import DevState
from tests.cli_support import Run, columns, flowhooks, json_lines, ok, refused
from tests.support import (
    FLOWHOOKS,
    SECRET,
    ServedApp,
    child_env,
    free_port,
    make_config,
    run_process,
    settings,
    wait_until,
)

TWO_SOURCES = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
  etl-eu:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
actions:
  console: {log: {}}
routes:
  actions: [console]
"""


def post(
    app: ServedApp,
    source: str,
    event_id: str,
    flow_id: int | None = 7,
    event_type: str = "FLOW_FAILED",
) -> None:
    payload: dict[str, object] = {"eventId": event_id, "eventType": event_type}
    if flow_id is not None:
        payload |= {"flowId": flow_id, "flowName": "orders"}
    body = json.dumps(payload).encode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Etl-Webhook-Signature": mac, "Content-Type": "application/json"}
    response = httpx.post(f"{app.url}/webhooks/{source}", content=body, headers=headers)
    assert response.status_code == 202
    # The time index has millisecond scores: the next event gets a later one, so the order
    # `events list` shows is the order of the posts.
    time.sleep(0.002)


@pytest.fixture
def receiver(redis: Redis, redis_url: str) -> Iterator[ServedApp]:
    """A real receiver on the test Redis (flushed), with :data:`TWO_SOURCES`."""
    with ServedApp(settings(redis_url), make_config(TWO_SOURCES)) as app:
        yield app


@pytest.fixture
def stored(receiver: ServedApp) -> None:
    """Three events received by a real receiver; ``shared`` is an id both sources used."""
    post(receiver, "etl", "shared")
    post(receiver, "etl-eu", "shared", flow_id=8, event_type="FLOW_SUCCESS")
    post(receiver, "etl", "only-here", flow_id=None)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(TWO_SOURCES)
    return path


# -h, --version and exit codes -----------------------------------------------------------------


def every_command(
    command: click.Command = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from every_command(sub, (*path, name))


def test_every_command_has_h_and_version() -> None:
    """Checked over the whole tree in this process; one command of each depth runs below."""
    paths = list(every_command())
    assert ("events", "tail") in paths
    assert ("routes", "show") in paths
    for path in paths:
        helped = CliRunner().invoke(main, [*path, "-h"], prog_name="flowhooks")
        assert helped.exit_code == 0, (path, helped.output)
        assert helped.output.startswith(f"Usage: flowhooks {' '.join(path)}".rstrip()), path
        version = CliRunner().invoke(main, [*path, "--version"])
        assert (version.exit_code, version.output) == (0, "flowhooks 0.1.0\n"), path


def test_version_and_help_in_a_process(tmp_path: Path) -> None:
    assert ok(flowhooks("--version", cwd=tmp_path)) == "flowhooks 0.1.0\n"
    assert ok(flowhooks("dlq", "purge", "--version", cwd=tmp_path)) == "flowhooks 0.1.0\n"
    helped = ok(flowhooks("events", "list", "-h", cwd=tmp_path))
    assert helped.startswith("Usage: python -m flowhooks events list [OPTIONS]")
    for shown in ("--redis-url URL", "[env var: FLOWHOOKS_REDIS_URL]", "-o, --output [text|json]"):
        assert shown in " ".join(helped.split())
    assert "Exit codes: 0 done; 1 " in ok(flowhooks("-h", cwd=tmp_path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events", "list", "--nope"], "No such option '--nope'"),
        (["events", "lst"], "No such command 'lst'"),
        (["events", "list", "-o", "yaml"], "'yaml' is not one of 'text', 'json'"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    refused(flowhooks(*args, cwd=tmp_path), 2, message)


# Which Redis --------------------------------------------------------------------------------------


def write_dev(folder: Path, redis_url: str | None, receiver: str = "http://127.0.0.1:9") -> int:
    """A state file of a `flowhooks dev` running in ``folder``: this test's own process, alive
    as long as the test."""
    devstate.write(folder / ".flowhooks", DevState(os.getpid(), redis_url, receiver))
    return os.getpid()


@pytest.mark.usefixtures("stored")
def test_the_redis_of_a_dev_running_here_is_found(tmp_path: Path, redis_url: str) -> None:
    write_dev(tmp_path, redis_url)
    listed = columns(ok(flowhooks("events", "list", cwd=tmp_path)))
    assert [row["ID"] for row in listed] == ["only-here", "shared", "shared"]


def test_an_empty_list_says_so_and_which_redis_it_read(
    tmp_path: Path, redis: Redis, redis_url: str
) -> None:
    pid = write_dev(tmp_path, redis_url)
    location = redis_url.removeprefix("redis://")
    empty = flowhooks("events", "list", cwd=tmp_path)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == (
        f"no events in Redis at {location} (the flowhooks dev running here, pid {pid})\n"
    )
    filtered = flowhooks(
        "events", "list", "--kind", "flow.failed", cwd=tmp_path, redis_url=redis_url
    )
    assert (filtered.returncode, filtered.stdout) == (0, "")
    assert filtered.stderr == f"no events match in Redis at {location} (FLOWHOOKS_REDIS_URL)\n"


def test_the_variable_wins_over_a_dev_and_the_option_over_both(
    tmp_path: Path, redis: Redis, redis_url: str
) -> None:
    write_dev(tmp_path, redis_url)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    refused(
        flowhooks("events", "list", cwd=tmp_path, redis_url=closed),
        1,
        f"cannot reach Redis at {closed.removeprefix('redis://')} (FLOWHOOKS_REDIS_URL): ",
    )
    chosen = flowhooks("events", "list", "--redis-url", redis_url, cwd=tmp_path, redis_url=closed)
    assert chosen.returncode == 0, chosen.stderr
    assert "(--redis-url)" in chosen.stderr


def test_resolution_order(tmp_path: Path) -> None:
    """The pure part: option, variable, a live dev, the default; a dev that is gone is not."""
    env = {"FLOWHOOKS_REDIS_URL": "redis://env:1/0"}
    assert resolve("redis://flag:1/0", env, tmp_path) == (
        {"redis_url": "redis://flag:1/0"},
        "--redis-url",
    )
    assert resolve(None, env, tmp_path) == ({}, "FLOWHOOKS_REDIS_URL")
    assert resolve(None, {}, tmp_path) == ({}, "the default")
    pid = write_dev(tmp_path, "redis://127.0.0.1:7/0")
    dev = ({"redis_url": "redis://127.0.0.1:7/0"}, f"the flowhooks dev running here, pid {pid}")
    assert resolve(None, {}, tmp_path) == dev
    assert resolve(None, {"FLOWHOOKS_REDIS_URL": ""}, tmp_path) == dev
    devstate.write(tmp_path / ".flowhooks", DevState(ended_pid(), "redis://127.0.0.1:7/0", ""))
    assert resolve(None, {}, tmp_path) == ({}, "the default")
    write_dev(tmp_path, None)  # a dev on the user's own Redis: nothing to take from it
    assert resolve(None, {}, tmp_path) == ({}, "the default")


def ended_pid() -> int:
    done = run_process(["sh", "-c", "echo $$"])
    return int(done.stdout)


def test_a_password_in_the_url_is_never_shown(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:s3cret-pass@127.0.0.1:{port}/0"
    result = flowhooks("events", "list", "--redis-url", url, cwd=tmp_path)
    refused(result, 1, f"cannot reach Redis at 127.0.0.1:{port}/0 (--redis-url): ")
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize("where", ["option", "variable"])
def test_a_bad_url_is_a_usage_error(tmp_path: Path, where: str) -> None:
    url = "redis://:pass/word@127.0.0.1:6379/0"
    if where == "option":
        result = flowhooks("events", "list", "--redis-url", url, cwd=tmp_path)
        name = "--redis-url"
    else:
        result = flowhooks("events", "list", cwd=tmp_path, redis_url=url)
        name = "FLOWHOOKS_REDIS_URL"
    refused(result, 2, f"{name}: not a valid Redis URL (percent-encode / ? # @ in the password)")
    assert "pass" not in result.stderr.replace("password", "")
    assert "word" not in result.stderr.replace("password", "")


def test_without_redis_every_reading_command_says_so(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["events", "show", "x"], ["silence", "list"], ["dlq", "purge", "--yes"]):
        result = flowhooks(*args, cwd=tmp_path, redis_url=url)
        refused(
            result,
            1,
            f"cannot reach Redis at {url.removeprefix('redis://')} (FLOWHOOKS_REDIS_URL): ",
        )
        assert "Connection refused" in result.stderr


# events list ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("stored")
def test_events_list_is_a_table_newest_first(tmp_path: Path, redis_url: str) -> None:
    text = ok(flowhooks("events", "list", cwd=tmp_path, redis_url=redis_url))
    assert text.splitlines()[0].split("  ")[0] == "RECEIVED"
    rows = columns(text)
    assert [
        (r["SOURCE"], r["ID"], r["KIND"], r["STATUS"], r["FLOW"], r["FLOW NAME"]) for r in rows
    ] == [
        ("etl", "only-here", "flow.failed", "error", "", ""),
        ("etl-eu", "shared", "flow.succeeded", "success", "8", "orders"),
        ("etl", "shared", "flow.failed", "error", "7", "orders"),
    ]


def test_what_an_event_carries_cannot_break_the_table(
    tmp_path: Path, receiver: ServedApp, redis_url: str
) -> None:
    body = json.dumps(
        {"eventId": "odd", "eventType": "FLOW_FAILED", "flowId": 9, "flowName": "a\x1b[2J\nb"}
    ).encode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Etl-Webhook-Signature": mac, "Content-Type": "application/json"}
    assert httpx.post(f"{receiver.url}/webhooks/etl", content=body, headers=headers).is_success
    text = ok(flowhooks("events", "list", cwd=tmp_path, redis_url=redis_url))
    assert "\x1b" not in text
    [row] = columns(text)
    assert row["FLOW NAME"] == "a\\x1b[2J\\nb"


@pytest.mark.usefixtures("stored")
def test_times_are_shown_in_the_local_zone_with_their_offset(
    tmp_path: Path, redis_url: str
) -> None:
    zone = {"TZ": "Asia/Kolkata"}
    text = ok(flowhooks("events", "list", cwd=tmp_path, redis_url=redis_url, env=zone))
    stored = json_lines(
        ok(flowhooks("events", "list", "-o", "json", cwd=tmp_path, redis_url=redis_url))
    )
    expected = [
        datetime.fromisoformat(e["received_at"])
        .astimezone(ZoneInfo("Asia/Kolkata"))
        .isoformat(timespec="seconds")
        for e in stored
    ]
    assert [r["RECEIVED"] for r in columns(text)] == expected
    assert all(t.endswith("+05:30") for t in expected)


@pytest.mark.usefixtures("stored")
def test_events_list_as_json_lines_with_a_limit(tmp_path: Path, redis_url: str) -> None:
    result = flowhooks(
        "events", "list", "-o", "json", "--limit", "2", cwd=tmp_path, redis_url=redis_url
    )
    events = json_lines(ok(result))
    assert [(e["source"], e["id"]) for e in events] == [("etl", "only-here"), ("etl-eu", "shared")]
    assert events[0]["raw"] == {"eventId": "only-here", "eventType": "FLOW_FAILED"}
    assert result.stderr == "(2 of 3: --limit shows more)\n"


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--source", "etl"], [("etl", "only-here"), ("etl", "shared")]),
        (["--kind", "flow.succeeded"], [("etl-eu", "shared")]),
        (["--status", "error", "--flow-id", "7"], [("etl", "shared")]),
        (["--since", "1h", "--until", "now", "--source", "etl-eu"], [("etl-eu", "shared")]),
        (["--text", "ONLY"], [("etl", "only-here")]),
        (["--text", "shar", "--source", "etl-eu"], [("etl-eu", "shared")]),
        (["--text", "shared", "--limit", "1"], [("etl-eu", "shared")]),
    ],
)
def test_events_list_filters(
    tmp_path: Path, redis_url: str, filters: list[str], expected: list[tuple[str, str]]
) -> None:
    rows = columns(ok(flowhooks("events", "list", *filters, cwd=tmp_path, redis_url=redis_url)))
    assert [(r["SOURCE"], r["ID"]) for r in rows] == expected


@pytest.mark.usefixtures("stored")
def test_events_list_by_time(tmp_path: Path, redis: Redis, redis_url: str) -> None:
    newest = float(redis.zrevrange(keys.EVENT_INDEX, 0, 0, withscores=True)[0][1])
    at = datetime.fromtimestamp(newest / 1000).astimezone()
    local = at.replace(tzinfo=None).isoformat()  # no offset: the local zone's time
    since = flowhooks("events", "list", "--since", local, cwd=tmp_path, redis_url=redis_url)
    assert [r["ID"] for r in columns(ok(since))] == ["only-here"]
    before = (at - timedelta(milliseconds=1)).isoformat()
    until = flowhooks("events", "list", "--until", before, cwd=tmp_path, redis_url=redis_url)
    assert [r["ID"] for r in columns(ok(until))] == ["shared", "shared"]
    future = flowhooks(
        "events", "list", "--since", "2999-01-01T00:00:00Z", cwd=tmp_path, redis_url=redis_url
    )
    assert (future.stdout, future.stderr.startswith("no events match in Redis at ")) == ("", True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "flow.fail"], "Invalid value for '--kind': 'flow.fail' is not one of"),
        (
            ["--since", "yesterday"],
            "'yesterday' is neither a time (2026-05-09T14:00:00+02:00) nor a duration ago",
        ),
        (["--since", "1h", "--until", "2h"], "--since is after --until"),
        (["--limit", "0"], "Invalid value for '--limit'"),
    ],
)
def test_events_list_refuses_bad_filters(
    tmp_path: Path, redis_url: str, args: list[str], message: str
) -> None:
    refused(flowhooks("events", "list", *args, cwd=tmp_path, redis_url=redis_url), 2, message)


# events show ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("stored")
def test_events_show_tells_the_story(tmp_path: Path, redis_url: str) -> None:
    text = ok(flowhooks("events", "show", "only-here", cwd=tmp_path, redis_url=redis_url))
    head, timeline = text.split("\n\n")
    fields = dict(
        line.split(maxsplit=1) for line in head.splitlines() if not line.startswith("received")
    )
    assert (fields["source"], fields["id"], fields["kind"], fields["status"]) == (
        "etl",
        "only-here",
        "flow.failed",
        "error",
    )
    [entry] = columns(timeline)
    assert entry["STAGE"] == "received"
    assert entry["DETAIL"] == 'verified=["hmac: secret #1"] remote=127.0.0.1'


@pytest.mark.usefixtures("stored")
def test_events_show_as_json(tmp_path: Path, redis_url: str) -> None:
    shown = json.loads(
        ok(
            flowhooks(
                "events", "show", "only-here", "-o", "json", cwd=tmp_path, redis_url=redis_url
            )
        )
    )
    assert (shown["event"]["id"], shown["event"]["source"]) == ("only-here", "etl")
    assert [entry["stage"] for entry in shown["timeline"]] == ["received"]


@pytest.mark.usefixtures("stored")
def test_events_show_asks_for_the_source_when_two_have_the_id(
    tmp_path: Path, redis_url: str
) -> None:
    ambiguous = flowhooks("events", "show", "shared", cwd=tmp_path, redis_url=redis_url)
    refused(ambiguous, 2, "2 sources have an event 'shared': name one with --source")
    by_source = flowhooks(
        "events",
        "show",
        "shared",
        "--source",
        "etl-eu",
        "-o",
        "json",
        cwd=tmp_path,
        redis_url=redis_url,
    )
    assert json.loads(ok(by_source))["event"]["flow_id"] == "8"
    by_ref = flowhooks(
        "events", "show", "etl:shared", "-o", "json", cwd=tmp_path, redis_url=redis_url
    )
    assert json.loads(ok(by_ref))["event"]["flow_id"] == "7"


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("args", [["nope"], ["only-here", "--source", "etl-eu"]])
def test_events_show_of_an_unknown_event_exits_1(
    tmp_path: Path, redis_url: str, args: list[str]
) -> None:
    result = flowhooks("events", "show", *args, cwd=tmp_path, redis_url=redis_url)
    refused(result, 1, f"no stored event with id {args[0]!r}")


def test_events_show_finds_an_id_as_written(
    tmp_path: Path, receiver: ServedApp, redis_url: str
) -> None:
    """An id is not a pattern: ``a*`` is not ``abc``, and ``b`` is not ``a:b`` (ids may hold
    colons; source names may not)."""
    for event_id in ("a*", "abc", "b", "a:b"):
        post(receiver, "etl", event_id)
    for wanted in ("a*", "b", "a:b"):
        result = flowhooks(
            "events", "show", wanted, "-o", "json", cwd=tmp_path, redis_url=redis_url
        )
        assert json.loads(ok(result))["event"]["id"] == wanted


# events replay ----------------------------------------------------------------------------------


def run_worker(tmp_path: Path, config_file: Path, redis_url: str) -> None:
    """A worker that routes what is queued, then stops."""
    env = {"SECRET": SECRET, "FLOWHOOKS_LOG_FORMAT": "text"}
    done = flowhooks(
        "worker",
        "--burst",
        "--config",
        str(config_file),
        cwd=tmp_path,
        redis_url=redis_url,
        env=env,
    )
    assert done.returncode == 0, done.stderr


def last(redis: Redis, ref: str, count: int) -> list[tuple[str, str | None]]:
    """The stage and outcome of the last ``count`` entries of an event's timeline."""
    entries = [json.loads(e) for e in redis.lrange(keys.timeline(ref), -count, -1)]
    return [(e["stage"], e.get("outcome")) for e in entries]


def test_events_replay(
    tmp_path: Path, receiver: ServedApp, redis: Redis, redis_url: str, config_file: Path
) -> None:
    # a success: no incident opens, so no repeat interval holds a replay back
    post(receiver, "etl", "ev-1", event_type="FLOW_SUCCESS")
    busy = flowhooks("events", "replay", "ev-1", cwd=tmp_path, redis_url=redis_url)
    refused(busy, 1, "etl:ev-1 is waiting for a worker already: its route job is queued or running")

    run_worker(tmp_path, config_file, redis_url)
    assert last(redis, "etl:ev-1", 1) == [("delivery", "delivered")]
    job = keys.route_job_id("etl:ev-1")
    replayed = flowhooks("events", "replay", "ev-1", cwd=tmp_path, redis_url=redis_url)
    assert ok(replayed) == f"replaying etl:ev-1: route job {job} queued\n"
    run_worker(tmp_path, config_file, redis_url)
    assert last(redis, "etl:ev-1", 4) == [
        ("replayed", None),
        ("picked_up", None),
        ("routed", None),
        ("delivery", "skipped"),  # delivered already
    ]

    forced = flowhooks("events", "replay", "etl:ev-1", "--force", cwd=tmp_path, redis_url=redis_url)
    assert ok(forced).splitlines() == [
        f"replaying etl:ev-1: route job {job} queued",
        "forgot that 1 delivery(ies) succeeded: they are sent again unless a silence, a time "
        "interval or a repeat interval holds them back",
    ]
    run_worker(tmp_path, config_file, redis_url)
    assert last(redis, "etl:ev-1", 2) == [("routed", None), ("delivery", "delivered")]
    refused(
        flowhooks("events", "replay", "nope", cwd=tmp_path, redis_url=redis_url),
        1,
        "no stored event with id 'nope'",
    )


# events tail ------------------------------------------------------------------------------------


class Tail:
    """``flowhooks events tail ARGS`` running, its output lines read as they come."""

    def __init__(self, tmp_path: Path, redis_url: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [*FLOWHOOKS, "events", "tail", *args],
            cwd=tmp_path,
            env=child_env(FLOWHOOKS_REDIS_URL=redis_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: Queue[str] = Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        assert self.process.stderr is not None
        started = self.process.stderr.readline()
        assert started.startswith("following events in Redis at "), started

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def until(self, predicate: Callable[[str], bool], timeout: float = 20) -> list[str]:
        """The lines up to the first for which ``predicate`` holds."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                raise AssertionError(f"not seen in {timeout}s; got {seen}") from None
            seen.append(line)
            if predicate(line):
                return seen

    def interrupt(self) -> Run:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=20)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)


def test_events_tail_follows_new_events_and_their_deliveries(
    tmp_path: Path, receiver: ServedApp, redis_url: str, config_file: Path
) -> None:
    post(receiver, "etl", "before", flow_id=5)  # received before the tail started: not shown
    tail = Tail(tmp_path, redis_url, "--source", "etl")
    try:
        post(receiver, "etl-eu", "elsewhere")  # another source: not shown
        post(receiver, "etl", "new-one")
        first = tail.until(lambda line: " received " in line)
        assert [line.split()[1:3] for line in first] == [
            ["etl:new-one", "event"],
            ["etl:new-one", "received"],
        ]
        assert first[0].split()[3:] == ["flow.failed", "error", "flow", "7", "orders"]
        run_worker(tmp_path, config_file, redis_url)
        later = tail.until(lambda line: " delivery " in line)
        assert [line.split()[2] for line in later] == ["picked_up", "routed", "delivery"]
        assert "routes -> console" in later[-1]
        assert all(line.split()[1] == "etl:new-one" for line in later)
    finally:
        stopped = tail.interrupt()
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr


def test_events_tail_as_json_lines_from_a_time(
    tmp_path: Path, receiver: ServedApp, redis_url: str
) -> None:
    post(receiver, "etl", "earlier", event_type="FLOW_SUCCESS")
    tail = Tail(tmp_path, redis_url, "-o", "json", "--since", "10m", "--kind", "flow.succeeded")
    try:
        post(receiver, "etl", "failed")  # another kind: not shown
        post(receiver, "etl-eu", "later", event_type="FLOW_SUCCESS")
        seen = [
            json.loads(line)
            for line in tail.until(lambda line: '"etl-eu:later"' in line and '"entry"' in line)
        ]
    finally:
        stopped = tail.interrupt()
    assert stopped.returncode == 0, stopped.stderr
    assert [(s["ref"], "event" if "event" in s else s["entry"]["stage"]) for s in seen] == [
        ("etl:earlier", "event"),
        ("etl:earlier", "received"),
        ("etl-eu:later", "event"),
        ("etl-eu:later", "received"),
    ]
    assert seen[0]["event"]["kind"] == "flow.succeeded"


# check-config, send-test --------------------------------------------------------------------------


def test_check_config(tmp_path: Path, config_file: Path) -> None:
    env = {"SECRET": SECRET}
    assert ok(flowhooks("check-config", str(config_file), cwd=tmp_path, env=env)) == (
        f"{config_file}: ok (2 source(s): etl, etl-eu)\n"
    )
    by_option = flowhooks("check-config", "--config", str(config_file), cwd=tmp_path, env=env)
    assert ok(by_option) == f"{config_file}: ok (2 source(s): etl, etl-eu)\n"
    unset = flowhooks("check-config", str(config_file), cwd=tmp_path)
    refused(
        unset,
        2,
        f"{config_file}:5: sources.etl.verify[0].hmac.secrets[0]: "
        "environment variable SECRET is not set",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = flowhooks("check-config", cwd=elsewhere)
    refused(missing, 2, "flowhooks.yaml: cannot read: No such file or directory")


def test_send_test_posts_to_the_dev_running_here(
    tmp_path: Path, receiver: ServedApp, config_file: Path, redis: Redis
) -> None:
    env = {"SECRET": SECRET}
    args = ("send-test", "--source", "etl", "--config", str(config_file))
    refused(
        flowhooks(*args, cwd=tmp_path, env=env),
        2,
        "give --url (no `flowhooks dev` is running in this folder)",
    )
    write_dev(tmp_path, None, receiver=receiver.url)
    sent = ok(flowhooks(*args, cwd=tmp_path, env=env))
    assert sent.startswith(f"POST {receiver.url}/webhooks/etl -> 202 ")
    assert redis.zcard(keys.EVENT_INDEX) == 1
    wrong = flowhooks(*args, "--url", receiver.url, cwd=tmp_path, env={"SECRET": "not-the-secret"})
    assert wrong.returncode == 1
    assert wrong.stdout.startswith(f"POST {receiver.url}/webhooks/etl -> 401 ")
    unknown = flowhooks(
        "send-test", "--source", "nope", "--config", str(config_file), cwd=tmp_path, env=env
    )
    refused(unknown, 2, "no source 'nope' in the config (known: etl, etl-eu)")


# A process that cannot start says why and stops, not serve a half-read config. -----------------

BAD_CONFIG = """\
sources:
  prod:
    verify:
      - hmac: {secrets: ["${FLOWHOOKS_TEST_UNSET_VARIABLE}"], algorithm: md5}
      - basic: {username: etl, password: written-in-clear}
  other:
    allow_unsigned: true
    extra_key: 1
"""


def start(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_process([*FLOWHOOKS, *args], child_env(**env))


def start_configured(
    tmp_path: Path, args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    """:func:`start` with a valid config file (:data:`TWO_SOURCES`, its secret set) and ``env``."""
    path = tmp_path / "flowhooks.yaml"
    path.write_text(TWO_SOURCES)
    return start(args, {"FLOWHOOKS_CONFIG": str(path), "SECRET": SECRET, **env})


@pytest.mark.parametrize(
    "command",
    [["serve", "--host", "127.0.0.1", "--port", "{port}"], ["worker", "--burst"], ["check-config"]],
    ids=["serve", "worker", "check-config"],
)
def test_an_invalid_config_is_reported_and_nothing_starts(
    tmp_path: Path, redis_url: str, command: list[str]
) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(BAD_CONFIG)
    port = str(free_port())
    args = [arg.replace("{port}", port) for arg in command]
    env = {"FLOWHOOKS_CONFIG": str(path), "FLOWHOOKS_REDIS_URL": redis_url}
    result = start(args, env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:4: sources.prod.verify[0].hmac.algorithm: must be one of sha1, sha256, sha512",
        f"{path}:4: sources.prod.verify[0].hmac.secrets[0]: "
        "environment variable FLOWHOOKS_TEST_UNSET_VARIABLE is not set",
        f"{path}:5: sources.prod.verify[1].basic.password: "
        'must be a secret reference: "${VAR}" or {file: PATH}, not a literal value',
        f"{path}:8: sources.other.extra_key: unknown key (known: allow_unsigned, etlworks, verify)",
    ]
    assert "written-in-clear" not in result.stderr
    assert result.stdout == ""


def test_a_missing_config_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    result = start(["serve", "--port", str(free_port())], {"FLOWHOOKS_CONFIG": str(path)})
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: cannot read: No such file or directory"


def test_an_invalid_setting_is_reported_by_its_variable(tmp_path: Path) -> None:
    serve = ["serve", "--port", str(free_port())]
    result = start_configured(tmp_path, serve, FLOWHOOKS_MAX_BODY_BYTES="lots")
    assert result.returncode == 2
    assert result.stderr.startswith("FLOWHOOKS_MAX_BODY_BYTES: ")
    assert "lots" not in result.stderr


def test_an_unknown_log_level_is_reported_by_its_variable(tmp_path: Path) -> None:
    serve = ["serve", "--port", str(free_port())]
    result = start_configured(tmp_path, serve, FLOWHOOKS_LOG_LEVEL="verbose")
    assert result.returncode == 2
    assert result.stderr == (
        "FLOWHOOKS_LOG_LEVEL: unknown level 'verbose' "
        "(use one of DEBUG, INFO, WARNING, ERROR, CRITICAL)\n"
    )


def test_a_worker_without_redis_stops_with_one_log_line(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = start_configured(tmp_path, ["worker", "--burst"], FLOWHOOKS_REDIS_URL=url)
    assert result.returncode == 1
    (line,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert (line["level"], line["msg"]) == ("error", "worker stopped: Redis failed")
    assert line["reason"].startswith("ConnectionError: ")


def test_serve_takes_its_config_and_redis_as_options(
    tmp_path: Path, config_file: Path, redis_url: str
) -> None:
    port = free_port()
    argv = [
        *FLOWHOOKS,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config_file),
        "--redis-url",
        redis_url,
    ]
    server = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=child_env(SECRET=SECRET),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: _ready(port), 30)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    ready = [json.loads(line) for line in err.splitlines() if '"receiver ready"' in line]
    assert ready[0]["redis"] == redis_url.removeprefix("redis://")


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
