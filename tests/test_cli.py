"""The ``flowhooks`` command: reading stored events, and refusing to start on a bad config."""

import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from redis import Redis

from flowhooks.cli import main
from tests.support import (
    FLOWHOOKS,
    SECRET,
    ServedApp,
    child_env,
    free_port,
    make_config,
    run_process,
    settings,
)

TWO_SOURCES = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
  etl-eu:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
"""


def post(app: ServedApp, source: str, event_id: str, flow_id: int | None = 7) -> None:
    payload: dict[str, object] = {"eventId": event_id, "eventType": "FLOW_FAILED"}
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
def stored(redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three events received by a real receiver; ``shared`` is an id both sources used."""
    with ServedApp(settings(redis_url), make_config(TWO_SOURCES)) as app:
        post(app, "etl", "shared")
        post(app, "etl-eu", "shared", flow_id=8)
        post(app, "etl", "only-here", flow_id=None)
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", redis_url)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.usefixtures("stored")
def test_events_list_shows_the_newest_first() -> None:
    result = run("events", "list")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert [(row[2], row[3], row[4]) for row in rows] == [
        ("etl", "flow.failed", "only-here"),
        ("etl-eu", "flow.failed", "shared"),
        ("etl", "flow.failed", "shared"),
    ]
    assert rows[1][5:] == ["flow", "8", "orders"]
    assert len(rows[0]) == 5  # no flow to name


@pytest.mark.usefixtures("stored")
def test_events_list_as_json_with_a_limit() -> None:
    result = run("events", "list", "--json", "--limit", "2")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["source"], e["id"]) for e in events] == [("etl", "only-here"), ("etl-eu", "shared")]


@pytest.mark.usefixtures("stored")
def test_events_show_prints_the_event_and_its_timeline() -> None:
    result = run("events", "show", "only-here")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["event"]["id"], shown["event"]["source"]) == ("only-here", "etl")
    assert [entry["stage"] for entry in shown["timeline"]] == ["received"]


@pytest.mark.usefixtures("stored")
def test_events_show_asks_for_the_source_when_two_have_the_id() -> None:
    ambiguous = run("events", "show", "shared")
    assert ambiguous.exit_code == 1
    assert "2 sources have an event 'shared': name one with --source" in ambiguous.output

    for source, flow_id in [("etl", "7"), ("etl-eu", "8")]:
        result = run("events", "show", "shared", "--source", source)
        assert result.exit_code == 0, result.output
        event = json.loads(result.output)["event"]
        assert (event["source"], event["flow_id"]) == (source, flow_id)

    by_ref = run("events", "show", "etl-eu:shared")
    assert by_ref.exit_code == 0, by_ref.output
    assert json.loads(by_ref.output)["event"]["source"] == "etl-eu"


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    "args", [["nope"], ["shared", "--source", "nope"], ["only-here", "--source", "etl-eu"]]
)
def test_events_show_of_an_unknown_event_fails(args: list[str]) -> None:
    result = run("events", "show", *args)
    assert result.exit_code == 1
    assert f"no stored event with id {args[0]!r}" in result.output


@pytest.mark.parametrize("wanted", ["a*", "b", "a:b"])
def test_events_show_finds_an_id_as_written(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch, wanted: str
) -> None:
    """An id is not a pattern: ``a*`` is not ``abc``, and ``b`` is not ``a:b`` (ids may hold
    colons; source names may not)."""
    with ServedApp(settings(redis_url), make_config(TWO_SOURCES)) as app:
        for event_id in ("a*", "abc", "b", "a:b"):
            post(app, "etl", event_id)
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", redis_url)
    result = run("events", "show", wanted)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["event"]["id"] == wanted


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_events_list_refuses_a_limit_below_one(limit: str) -> None:
    result = run("events", "list", "--limit", limit)
    assert result.exit_code == 2
    assert "Invalid value for '--limit'" in result.output


@pytest.mark.parametrize("command", [["events", "list"], ["events", "show", "x"]])
def test_events_without_redis_fail_with_a_message(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    result = run(*command)
    assert result.exit_code == 1
    assert result.output.startswith("cannot read events: ConnectionError: ")


# A process that cannot start must say why and stop, not serve a half-read config.

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
    [["serve", "--host", "127.0.0.1", "--port", "{port}"], ["worker", "--burst"]],
    ids=["serve", "worker"],
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
