"""The operator's commands, through click against a real Redis: ``routes test``, ``silence``
and ``dlq``."""

import json
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry
from redis import Redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry
from rq.results import Result as JobResult
from rq.serializers import JSONSerializer

from config import keys
from config.loader import load
from flowhooks.cli import main
from flowhooks.routestest import load_event
from flowhooks.sendtest import sample
from tests.support import free_port
from workers.delivery import Deliverer, Spec, delivery_id, note_incident
from workers.metrics import WorkerMetrics
from workers.routing import match

SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/s3cr3t-slack-path"
PD_KEY = "pd-routing-key-s3cr3t-0123456789"
CONFIG = """
sources:
  etl: {allow_unsigned: true}
actions:
  ops: {log: {}}
  chat: {slack: {webhook_url: "${SLACK_URL}"}}
  pager: {pagerduty: {routing_key: "${PD_KEY}"}}
time_intervals:
  nights:
    - times: [{start_time: "22:00", end_time: "24:00"}, {start_time: "00:00", end_time: "06:00"}]
      location: Europe/Berlin
routes:
  actions: [ops]
  routes:
    - matchers: ['kind="flow.failed"']
      actions: [chat, pager]
      resolve: true
      repeat_interval: 1h
      continue: true
    - matchers: ['kind="flow.failed"']
      actions: [ops]
      mute_time_intervals: [nights]
"""
DAY = "2026-05-09T12:00:00Z"  # 14:00 in Berlin
NIGHT = "2026-05-09T21:30:00Z"  # 23:30 in Berlin


@pytest.fixture
def cli(redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Redis:
    """The environment a command runs in: the test Redis (flushed) and the config's secrets."""
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", redis_url)
    monkeypatch.setenv("SLACK_URL", SLACK_URL)
    monkeypatch.setenv("PD_KEY", PD_KEY)
    return redis


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """A raw Etlworks FLOW_FAILED body, as the receiver gets it."""
    body, _ = sample("FLOW_FAILED", 12345, time.time())
    path = tmp_path / "failed.json"
    path.write_bytes(body)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def routes_test(config: Path, *args: str) -> Result:
    return run("routes", "test", "--config", str(config), *args)


def refused(result: Result, message: str) -> None:
    """The command exited 1 saying ``message``, without a traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert message in result.stderr
    assert "Traceback" not in result.output


def stored_failure(conn: Redis, tmp_path: Path, kind: str = "flow.failed") -> Path:
    """An event stored as the receiver stores it, shown by ``events show`` into a file."""
    body, _ = sample("FLOW_FAILED", 12345, time.time())
    event = load_event(body.decode(), "etl", datetime.now(UTC)) | {
        "id": "ev-1",
        "kind": kind,
        "flow_name": "orders",
    }
    ref = keys.ref("etl", "ev-1")
    conn.set(keys.event(ref), json.dumps(event))
    conn.rpush(keys.timeline(ref), json.dumps({"at": event["received_at"], "stage": "received"}))
    shown = run("events", "show", "ev-1")
    assert shown.exit_code == 0, shown.output
    path = tmp_path / "shown.json"
    path.write_text(shown.stdout)
    return path


# routes test ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("cli")
def test_a_raw_body_shows_routes_deliveries_and_rendered_payloads(
    config_file: Path, raw: Path
) -> None:
    result = routes_test(config_file, "--event", str(raw), "--source", "etl", "--at", DAY)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("matched routes:\n  routes.routes[0]\n  routes.routes[1]\ndeliveries:\n")
    assert (
        "  routes.routes[0] -> chat\n  routes.routes[0] -> pager\n  routes.routes[1] -> ops\n"
        in out
    )
    assert "SUPPRESSED" not in out
    rendered = out.split("rendered:\n", 1)[1]
    assert "  routes.routes[0] -> chat:\n" in rendered
    assert '"blocks": [' in rendered  # Slack's Block Kit
    assert '"event_action": "trigger"' in rendered  # PagerDuty Events v2
    assert "flow.failed: warehouse-load-12345 (flow 12345)" in rendered  # the log line
    assert SLACK_URL not in result.output
    assert PD_KEY not in result.output


@pytest.mark.usefixtures("cli")
def test_a_canonical_event_as_events_show_prints_it(
    cli: Redis, config_file: Path, tmp_path: Path
) -> None:
    shown = stored_failure(cli, tmp_path)
    result = routes_test(config_file, "--event", str(shown), "--at", DAY)
    assert result.exit_code == 0, result.output
    assert "  routes.routes[0] -> chat\n" in result.stdout
    # its event part alone will do as well, and needs no --source
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps(json.loads(shown.read_text())["event"]))
    again = routes_test(
        config_file, "--event", str(alone), "--at", DAY, "--expect", "chat,ops,pager"
    )
    assert again.exit_code == 0, again.output
    assert "flow.failed: orders (flow 12345)" in again.stdout


@pytest.mark.usefixtures("cli")
def test_expect_exits_1_on_a_mismatch(config_file: Path, raw: Path) -> None:
    args = ("--event", str(raw), "--source", "etl", "--at", DAY)
    assert routes_test(config_file, *args, "--expect", "pager,ops,chat").exit_code == 0
    assert routes_test(config_file, *args, "--expect", "pager, ops, chat").exit_code == 0
    result = routes_test(config_file, *args, "--expect", "chat,pager")
    assert result.exit_code == 1
    assert "MISMATCH: expected ['chat', 'pager'], would fire ['chat', 'ops', 'pager']" in (
        result.stderr
    )
    assert "matched routes:" in result.stdout  # the report is shown all the same


@pytest.mark.usefixtures("cli")
def test_at_routes_at_that_instant(config_file: Path, raw: Path) -> None:
    result = routes_test(
        config_file, "--event", str(raw), "--source", "etl", "--at", NIGHT, "--expect", "chat,pager"
    )
    assert result.exit_code == 0, result.output
    assert "  routes.routes[1] -> ops  SUPPRESSED: muted (nights)\n" in result.stdout
    # without a zone, an instant is UTC
    naive = routes_test(config_file, "--event", str(raw), "--source", "etl", "--at", NIGHT[:-1])
    assert "SUPPRESSED: muted (nights)" in naive.stdout


def test_a_silence_added_is_shown_as_suppressed(cli: Redis, config_file: Path, raw: Path) -> None:
    added = run(
        "silence", "add", "--matcher", 'flow_name=~"warehouse-.*"', "--duration", "2h",
        "--comment", "migration", "--author", "ana",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    sid = added.stdout.split()[0]
    result = routes_test(config_file, "--event", str(raw), "--source", "etl", "--expect", "")
    assert result.exit_code == 0, result.output
    for line in (
        "routes.routes[0] -> chat",
        "routes.routes[0] -> pager",
        "routes.routes[1] -> ops",
    ):
        assert f"  {line}  SUPPRESSED: silenced ({sid})\n" in result.stdout
    # --no-state leaves Redis out of it
    ignored = routes_test(
        config_file,
        "--event",
        str(raw),
        "--source",
        "etl",
        "--no-state",
        "--expect",
        "chat,ops,pager",
    )
    assert ignored.exit_code == 0, ignored.output


def test_open_incidents_hold_back_repeats_and_are_resolved(
    cli: Redis, config_file: Path, tmp_path: Path
) -> None:
    config = load(config_file)
    event = {"id": "ev-0", "source": "etl", "flow_id": "12345", "kind": "flow.failed"}
    route = next(m for m in match(config.routes, {"kind": "flow.failed"}) if "chat" in m.actions)
    note_incident(cli, event, route, "pager", time.time() - 600)

    failed = stored_failure(cli, tmp_path)
    result = routes_test(config_file, "--event", str(failed), "--expect", "chat,ops")
    assert result.exit_code == 0, result.output
    held = r"routes.routes\[0\] -> pager  SUPPRESSED: repeat_interval \(notified 6\d\ds ago, "
    assert re.search(held + r"repeat_interval 3600s\)\n", result.stdout)

    succeeded = stored_failure(cli, tmp_path, kind="flow.succeeded")
    result = routes_test(config_file, "--event", str(succeeded), "--expect", "ops,pager")
    assert result.exit_code == 0, result.output
    assert "  routes.routes[0] -> pager (resolves the open incident)\n" in result.stdout
    assert '"event_action": "resolve"' in result.stdout


def test_without_redis_routes_test_still_answers(
    config_file: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("SLACK_URL", SLACK_URL)
    monkeypatch.setenv("PD_KEY", PD_KEY)
    result = routes_test(config_file, "--event", str(raw), "--source", "etl", "--at", DAY)
    assert result.exit_code == 0, result.output
    assert "Redis unreachable: silences and open incidents not considered" in result.stderr


def write_cases(tmp_path: Path, cases: Sequence[object]) -> Path:
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(cases))
    return path


CASES: list[dict[str, object]] = [
    {"name": "a failure by day", "event": "failed.json", "source": "etl", "at": DAY,
     "expect": ["chat", "ops", "pager"]},
    {"name": "a failure at night", "event": "failed.json", "source": "etl", "at": NIGHT,
     "expect": ["chat", "pager"]},
    {"name": "a success", "source": "etl", "expect": "ops",
     "event": {"eventType": "FLOW_SUCCESS", "eventId": "s-1", "flowId": 7}},
    {"name": "a canonical warning", "at": NIGHT, "expect": ["ops"],
     "event": {"id": "w-1", "source": "etl", "kind": "flow.warning",
               "event": "FLOW_WARNING", "received_at": "2026-05-09T21:30:00Z"}},
]  # fmt: skip


@pytest.mark.usefixtures("cli", "raw")  # the cases' failed.json
def test_cases_run_together_and_pass(config_file: Path, tmp_path: Path) -> None:
    cases = write_cases(tmp_path, CASES)
    result = routes_test(config_file, "--cases", str(cases))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ok   a failure by day: fires ['chat', 'ops', 'pager']",
        "ok   a failure at night: fires ['chat', 'pager']",
        "ok   a success: fires ['ops']",
        "ok   a canonical warning: fires ['ops']",
        "4 of 4 case(s) passed",
    ]


@pytest.mark.usefixtures("cli", "raw")
def test_a_failing_case_is_named_and_fails_the_run(config_file: Path, tmp_path: Path) -> None:
    wrong = {**CASES[1], "name": "wrong at night", "expect": ["chat", "ops", "pager"]}
    cases = write_cases(tmp_path, [CASES[0], wrong, CASES[2]])
    result = routes_test(config_file, "--cases", str(cases))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "ok   a failure by day: fires ['chat', 'ops', 'pager']",
        "FAIL wrong at night: fires ['chat', 'pager'], expected ['chat', 'ops', 'pager']",
        "ok   a success: fires ['ops']",
        "2 of 3 case(s) passed",
    ]


@pytest.mark.usefixtures("cli", "raw")
def test_a_case_that_cannot_run_is_named_and_the_rest_still_run(
    config_file: Path, tmp_path: Path
) -> None:
    broken: list[object] = [
        {"name": "no such file", "event": "missing.json", "source": "etl"},
        {"name": "no source", "event": "failed.json"},
        {"name": "unknown source", "event": "failed.json", "source": "etl-eu"},
        {"name": "bad instant", "event": "failed.json", "source": "etl", "at": "tomorrow"},
        {"name": "no event"},
        "just a string",
        CASES[0],
    ]
    result = routes_test(config_file, "--cases", str(write_cases(tmp_path, broken)))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL no such file: cannot run: ")
    assert "missing.json" in lines[0]
    assert lines[1:] == [
        "FAIL no source: cannot run: a raw Etlworks body needs --source, the source it would "
        "arrive on",
        "FAIL unknown source: cannot run: no source 'etl-eu' in the config (known: etl)",
        "FAIL bad instant: cannot run: at 'tomorrow' is not an ISO 8601 instant",
        "FAIL no event: cannot run: missing 'event'",
        "FAIL case 6: cannot run: a case is a mapping {name, event, source, at, expect}",
        "ok   a failure by day: fires ['chat', 'ops', 'pager']",
        "1 of 7 case(s) passed",
    ]
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli")
def test_a_cases_file_that_is_not_a_list_is_refused(config_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("name: one case\n")
    refused(routes_test(config_file, "--cases", str(path)), "not a YAML list of cases")
    path.write_text("- [unclosed\n")
    refused(routes_test(config_file, "--cases", str(path)), "not a YAML list of cases")


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --event FILE.json or --cases FILE.yaml"),
        (("--event", "{raw}"), "a raw Etlworks body needs --source"),
        (("--event", "{raw}", "--source", "nope"), "no source 'nope' in the config (known: etl)"),
        (("--event", "{raw}", "--source", "etl", "--at", "soon"), "--at 'soon' is not an ISO"),
        (("--event", "{text}", "--source", "etl"), "the event file is not JSON"),
        (("--event", "{binary}", "--source", "etl"), "not UTF-8 text"),
        (("--event", "{surrogate}", "--source", "etl"), "the receiver would refuse this body"),
    ],
)
def test_routes_test_refuses_what_it_cannot_read(
    config_file: Path, raw: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    files = {
        "raw": raw,
        "text": tmp_path / "notes.txt",
        "binary": tmp_path / "body.bin",
        "surrogate": tmp_path / "surrogate.json",
    }
    files["text"].write_text("not json")
    files["binary"].write_bytes(b'{"eventId": "\xff"}')
    files["surrogate"].write_text('{"eventType": "FLOW_FAILED", "flowName": "\\ud800"}')
    given = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    refused(routes_test(config_file, *given), message)


# silence ---------------------------------------------------------------------------------------


def test_silence_add_list_and_expire(cli: Redis) -> None:
    added = run(
        "silence", "add", "--matcher", 'flow_name=~"staging-.*"', "--matcher", 'kind="flow.failed"',
        "--duration", "2h", "--comment", "load test", "--author", "ana",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    sid, state, until, _, author, *rest = added.stdout.split()
    assert (state, until, author) == ("active", "until", "ana:")
    assert " ".join(rest) == 'load test [flow_name=~"staging-.*", kind="flow.failed"]'
    assert cli.hexists(keys.SILENCES, sid)

    listed = run("silence", "list")
    assert listed.exit_code == 0
    assert listed.stdout == added.stdout

    expired = run("silence", "expire", sid)
    assert expired.exit_code == 0, expired.output
    assert expired.stdout.startswith(f"{sid}  expired until ")
    assert run("silence", "list").stdout == ""
    assert run("silence", "list", "--all").stdout == expired.stdout


@pytest.mark.usefixtures("cli")
def test_silence_author_defaults_to_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "bob")
    add = ("silence", "add", "--matcher", 'flow_id="7"', "--duration", "1h", "--comment", "x")
    added = run(*add)
    assert added.exit_code == 0, added.output
    assert " bob: x " in added.stdout


@pytest.mark.usefixtures("cli")
def test_silence_author_of_a_user_without_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image runs as a numeric user without a passwd entry, where getuser() raises."""

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 10001")

    monkeypatch.setattr("getpass.getuser", nameless)
    add = ("silence", "add", "--matcher", 'flow_id="7"', "--duration", "1h", "--comment", "x")
    added = run(*add)
    assert added.exit_code == 0, added.output
    assert f" uid {os.getuid()}: x " in added.stdout


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("expire", "nosuchsilence"), "no silence 'nosuchsilence'"),
        (("add", "--matcher", 'flow="x"', "--duration", "1h", "--comment", "c"),
         "unknown label 'flow' (known: "),
        (("add", "--matcher", 'flow_name=~"("', "--duration", "1h", "--comment", "c"),
         "bad regex '('"),
        (("add", "--matcher", 'flow_id="7"', "--duration", "soon", "--comment", "c"),
         "must be a duration such as 30s, 5m, 2h or 7d"),
        (("add", "--matcher", 'flow_id="7"', "--duration", "0s", "--comment", "c"),
         "a silence must last longer than zero"),
        (("add", "--matcher", 'flow_id="7"', "--duration", "999999999999w", "--comment", "c"),
         "a silence cannot last that long"),
    ],
)  # fmt: skip
def test_silence_refuses_with_a_message(args: tuple[str, ...], message: str) -> None:
    refused(run("silence", *args), message)


def test_silence_commands_without_redis_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    refused(run("silence", "list"), "cannot read silences: ConnectionError")
    refused(run("silence", "expire", "x"), "cannot expire the silence: ConnectionError")
    refused(
        run("silence", "add", "--matcher", 'flow_id="7"', "--duration", "1h", "--comment", "c"),
        "cannot store the silence: ConnectionError",
    )


# dlq -----------------------------------------------------------------------------------------


@pytest.fixture
def dead(cli: Redis, config_file: Path) -> list[str]:
    """Two deliveries dead-lettered the way the worker does it; their job ids."""
    deliverer = Deliverer(
        cli,
        load(config_file),
        WorkerMetrics(CollectorRegistry()),
        dedup_ttl=3600,
        retention=3600,
        job_timeout=60,
    )
    ids = []
    for n, action in enumerate(("pager", "chat"), start=1):
        did = delivery_id("etl:ev-1", "routes.routes[0]", action, "notify")
        spec = Spec("etl:ev-1", "routes.routes[0]", action, "notify", did, attempt=n)
        outcome = deliverer.dead_letter(spec, f"permanent failure: {action} answered 400")
        assert outcome.result == "dead"
        ids.append(f"{did}-{n}-dead")
    return ids


def registry(conn: Redis) -> FailedJobRegistry:
    return FailedJobRegistry(queue=Queue(keys.QUEUE, connection=conn, serializer=JSONSerializer))


def queued(conn: Redis) -> list[str]:
    return [
        j.decode() if isinstance(j, bytes) else j
        for j in conn.lrange(f"rq:queue:{keys.QUEUE}", 0, -1)
    ]


def test_dlq_list_shows_each_dead_job(dead: list[str]) -> None:
    result = run("dlq", "list")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["job"] for r in rows) == sorted(dead)
    pager = next(r for r in rows if r["action"] == "pager")
    assert {k: v for k, v in pager.items() if k not in ("failed_at", "reason")} == {
        "job": dead[0],
        "task": "workers.tasks.deliver",
        "ref": "etl:ev-1",
        "route": "routes.routes[0]",
        "action": "pager",
        "kind": "notify",
        "attempt": 1,
    }
    assert datetime.fromisoformat(pager["failed_at"]) > datetime.now(UTC) - timedelta(minutes=1)


def test_dlq_says_why_a_delivery_was_dead_lettered(dead: list[str]) -> None:
    rows = [json.loads(line) for line in run("dlq", "list").stdout.splitlines()]
    assert {r["action"]: r["reason"] for r in rows} == {
        "pager": "permanent failure: pager answered 400",
        "chat": "permanent failure: chat answered 400",
    }


def test_dlq_shows_a_route_job_that_failed_in_the_worker(cli: Redis) -> None:
    """What RQ records when a job raises: the job in the registry and a failed Result."""
    ref = keys.ref("etl", "ev-9")
    job = Job.create(
        keys.ROUTE_TASK, args=[ref], connection=cli, serializer=JSONSerializer,
        id=keys.route_job_id(ref), origin=keys.QUEUE,
    )  # fmt: skip
    error = "Traceback (most recent call last):\n  ...\nRuntimeError: boom"
    with cli.pipeline() as pipe:
        registry(cli).add(job, ttl=600, exc_string=error, pipeline=pipe)
        JobResult.create_failure(job, 600, exc_string=error, pipeline=pipe)
        pipe.execute()
    [row] = [json.loads(line) for line in run("dlq", "list").stdout.splitlines()]
    assert (row["task"], row["ref"], row["reason"]) == (keys.ROUTE_TASK, ref, "RuntimeError: boom")
    shown = json.loads(run("dlq", "show", job.id).stdout)
    assert (shown["args"], shown["exc_info"]) == ([ref], error)


def test_dlq_show_gives_the_job_in_full(dead: list[str]) -> None:
    result = run("dlq", "show", dead[1])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["job"] == dead[1]
    [spec] = shown["args"]
    assert Spec.from_json(spec) == Spec(
        "etl:ev-1",
        "routes.routes[0]",
        "chat",
        "notify",
        delivery_id("etl:ev-1", "routes.routes[0]", "chat", "notify"),
        attempt=2,
    )
    assert SLACK_URL not in result.stdout


def test_dlq_replay_moves_the_job_back_to_the_queue(cli: Redis, dead: list[str]) -> None:
    result = run("dlq", "replay", dead[0])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"requeued {dead[0]}\n"
    assert queued(cli) == [dead[0]]
    assert registry(cli).get_job_ids() == [dead[1]]
    job = Job.fetch(dead[0], connection=cli, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.QUEUED
    assert job.args == [Spec.from_json(job.args[0]).to_json()]
    # once replayed it is no longer dead
    refused(run("dlq", "replay", dead[0]), f"no job {dead[0]!r} in the dead-letter registry")


def test_dlq_replay_all(cli: Redis, dead: list[str]) -> None:
    result = run("dlq", "replay", "--all")
    assert result.exit_code == 0, result.output
    assert sorted(queued(cli)) == sorted(dead)
    assert registry(cli).get_job_ids() == []
    empty = run("dlq", "replay", "--all")
    assert (empty.exit_code, empty.stdout) == (0, "the dead-letter registry is empty\n")


def test_dlq_purge_empties_the_registry(cli: Redis, dead: list[str]) -> None:
    result = run("dlq", "purge")
    assert (result.exit_code, result.stdout) == (0, "purged 2 job(s)\n")
    assert registry(cli).get_job_ids() == []
    assert not any(cli.exists(f"rq:job:{job_id}") for job_id in dead)
    assert queued(cli) == []
    assert run("dlq", "list").stdout == ""


def test_dlq_purge_copes_with_a_job_already_gone(cli: Redis, dead: list[str]) -> None:
    cli.delete(f"rq:job:{dead[0]}")
    result = run("dlq", "purge")
    assert (result.exit_code, result.stdout) == (0, "purged 2 job(s)\n")
    assert registry(cli).get_job_ids() == []


@pytest.mark.usefixtures("dead")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nosuchjob"), "no job 'nosuchjob' in the dead-letter registry"),
        (("replay", "nosuchjob"), "no job 'nosuchjob' in the dead-letter registry"),
        (("replay",), "name a JOB or give --all"),
        (("replay", "x", "--all"), "name a JOB or give --all, not both"),
    ],
)
def test_dlq_refuses_with_a_message(args: tuple[str, ...], message: str) -> None:
    refused(run("dlq", *args), message)


def test_dlq_show_refuses_a_job_that_is_not_dead(cli: Redis) -> None:
    """A queued route job is not a dead letter: ``show`` does not pass it off as one."""
    queue = Queue(keys.QUEUE, connection=cli, serializer=JSONSerializer)
    job = queue.enqueue(keys.ROUTE_TASK, "etl:ev-1", job_id="route-live")
    refused(run("dlq", "show", job.id), "no job 'route-live' in the dead-letter registry")


@pytest.mark.parametrize("command", ["list", "show x", "replay --all", "purge"])
def test_dlq_without_redis_says_so(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    refused(run("dlq", *command.split()), "cannot reach Redis: ConnectionError")
