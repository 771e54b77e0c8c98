"""The operator's commands, each run as a child process against a real Redis: ``routes show``,
``routes test``, ``silence`` and ``dlq``."""

import json
import os
import pty
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from redis import Redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry
from rq.results import Result as JobResult
from rq.serializers import JSONSerializer

from config import keys
from config.loader import load
from flowhooks.routestest import load_event
from flowhooks.sendtest import sample
from tests.cli_support import Run, columns, flowhooks, json_lines, ok, refused
from tests.receiver.admin.support import store
from tests.support import FLOWHOOKS, child_env, free_port
from workers.delivery import Deliverer, Spec, delivery_id, note_incident
from workers.metrics import WorkerMetrics
from workers.routing import match

SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/s3cr3t-slack-path"
PD_KEY = "pd-routing-key-s3cr3t-0123456789"
SECRETS = {"SLACK_URL": SLACK_URL, "PD_KEY": PD_KEY}
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
      routes:
        - matchers: ['flow_name=~"staging-.*"']
          group_by: [flow_id]
"""
DAY = "2026-05-09T12:00:00Z"  # 14:00 in Berlin
NIGHT = "2026-05-09T21:30:00Z"  # 23:30 in Berlin

Cli = Callable[..., Run]


@pytest.fixture
def cli(redis: Redis, redis_url: str, tmp_path: Path) -> Cli:
    """``flowhooks ARGS`` in a folder of the test's own, on the test Redis (flushed), with the
    config's secrets set; ``env`` adds to its environment."""

    def run(*args: str, env: dict[str, str] | None = None, **options: Any) -> Run:
        values = {**SECRETS, **(env or {})}
        return flowhooks(*args, cwd=tmp_path, redis_url=redis_url, env=values, **options)

    return run


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


def stored_failure(cli: Cli, conn: Redis, tmp_path: Path, kind: str = "flow.failed") -> Path:
    """An event stored as the receiver stores it, shown by ``events show -o json`` into a
    file."""
    body, _ = sample("FLOW_FAILED", 12345, time.time())
    event = load_event(body.decode(), "etl", datetime.now(UTC)) | {
        "id": "ev-1",
        "kind": kind,
        "flow_name": "orders",
    }
    ref = keys.ref("etl", "ev-1")
    conn.set(keys.event(ref), json.dumps(event))
    conn.rpush(keys.timeline(ref), json.dumps({"at": event["received_at"], "stage": "received"}))
    path = tmp_path / "shown.json"
    path.write_text(ok(cli("events", "show", "ev-1", "-o", "json")))
    return path


# routes show ------------------------------------------------------------------------------------


def test_routes_show_draws_the_tree_with_what_each_route_inherits(
    cli: Cli, config_file: Path
) -> None:
    assert ok(cli("routes", "show", "--config", str(config_file))).splitlines() == [
        "routes  actions: ops  repeat_interval: 4h",
        '├── routes.routes[0]  {kind="flow.failed"}  continue  actions: chat, pager  '
        "repeat_interval: 1h  resolve",
        '└── routes.routes[1]  {kind="flow.failed"}  actions: ops  repeat_interval: 4h  '
        "mute_time_intervals: nights",
        '    └── routes.routes[1].routes[0]  {flow_name=~"staging-.*"}  actions: ops  '
        "repeat_interval: 4h  group_by: flow_id  group_wait: 30s  group_interval: 5m  "
        "mute_time_intervals: nights",
    ]


def test_the_rules_are_read_without_the_secrets(tmp_path: Path, redis_url: str) -> None:
    """routes show and routes test read the rules only: a config whose secrets are not set
    (an example, a colleague's) works as it is; the rendered page holds no routing key."""
    example = Path(__file__).parent.parent / "config" / "examples" / "pagerduty-incidents.yaml"
    shown = flowhooks("routes", "show", "--config", str(example), cwd=tmp_path)
    assert "oncall, ops-slack" in ok(shown)
    labels = ["kind=flow.failed", "flow_id=7", "flow_name=warehouse-load", "--no-state"]
    tested = flowhooks("routes", "test", *labels, "--config", str(example), cwd=tmp_path)
    assert '"dedup_key": "flowhooks::7"' in ok(tested)
    assert "routing_key" not in tested.stdout
    signing = ["--source", "etlworks-prod", "--url", "http://127.0.0.1:9", "--config", str(example)]
    sent = flowhooks("send-test", *signing, cwd=tmp_path)  # it signs: it needs its secret
    assert sent.returncode == 2 and "ETLWORKS_WEBHOOK_SECRET is not set" in sent.stderr


def test_routes_show_as_json(cli: Cli, config_file: Path) -> None:
    tree = json.loads(ok(cli("routes", "show", "--config", str(config_file), "-o", "json")))
    leaf = tree["routes"][1]["routes"][0]
    assert leaf == {
        "route": "routes.routes[1].routes[0]",
        "path": "routes.routes[1].routes[0]",
        "matchers": ['flow_name=~"staging-.*"'],
        "continue": False,
        "actions": ["ops"],
        "resolve": False,
        "repeat_interval": 14400.0,
        "group_by": ["flow_id"],
        "group_wait": 30.0,
        "group_interval": 300.0,
        "mute_time_intervals": ["nights"],
        "active_time_intervals": [],
        "confirm": False,
        "routes": [],
    }
    assert [r["route"] for r in tree["routes"]] == ["routes.routes[0]", "routes.routes[1]"]


def test_routes_show_of_a_broken_config_exits_2(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(CONFIG.replace("actions: [ops]\n  routes:", "actions: [opps]\n  routes:"))
    refused(
        cli("routes", "show", "--config", str(path)),
        2,
        f"{path}:13: routes.actions[0]: unknown action 'opps' (known: chat, ops, pager)",
    )


# routes test ------------------------------------------------------------------------------------


def test_labels_on_the_command_line(cli: Cli, config_file: Path) -> None:
    args = ("routes", "test", "--config", str(config_file), "--at", DAY)
    out = ok(cli(*args, "kind=flow.failed", "flow_id=7", 'flow_name="staging-orders"'))
    assert out.startswith(
        "matched routes:\n  routes.routes[0]\n  routes.routes[1].routes[0]\ndeliveries:\n"
        "  routes.routes[0] -> chat\n  routes.routes[0] -> pager\n"
        "  routes.routes[1].routes[0] -> ops (grouped into a digest)\n"
    )
    succeeded = ok(cli(*args, "kind=flow.succeeded", "--source", "etl", "--expect", "ops"))
    assert succeeded.startswith("matched routes:\n  routes\n")
    as_json = json.loads(ok(cli(*args, "kind=flow.failed", "tags=a", "tags=b", "-o", "json")))
    assert as_json["routes"] == ["routes.routes[0]", "routes.routes[1]"]
    assert as_json["firing"] == ["chat", "ops", "pager"]
    assert [(d["route"], d["action"], d["suppressed"]) for d in as_json["deliveries"]] == [
        ("routes.routes[0]", "chat", None),
        ("routes.routes[0]", "pager", None),
        ("routes.routes[1]", "ops", None),
    ]
    assert as_json["rendered"]["routes.routes[1] -> ops"].startswith("flow.failed: ")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["flow_id=7"], "an event needs its kind, e.g. kind=flow.failed"),
        (["kind=flow_failed"], "kind: Input should be 'flow.succeeded', 'flow.warning', "),
        (["kind=flow.failed", "flow=7"], "unknown label 'flow' (known: id, source, event, kind"),
        (["kind"], "'kind' is not a label: write name=value"),
    ],
)
def test_bad_labels_are_usage_errors(
    cli: Cli, config_file: Path, labels: list[str], message: str
) -> None:
    refused(cli("routes", "test", "--config", str(config_file), *labels), 2, message)


def test_a_raw_body_shows_routes_deliveries_and_rendered_payloads(
    cli: Cli, config_file: Path, raw: Path
) -> None:
    result = cli(
        "routes", "test", "--config", str(config_file), "--event", str(raw), "--source", "etl",
        "--at", DAY,
    )  # fmt: skip
    out = ok(result)
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
    assert SLACK_URL not in out + result.stderr
    assert PD_KEY not in out + result.stderr


def test_a_canonical_event_as_events_show_prints_it(
    cli: Cli, redis: Redis, config_file: Path, tmp_path: Path
) -> None:
    shown = stored_failure(cli, redis, tmp_path)
    args = ("routes", "test", "--config", str(config_file), "--at", DAY)
    assert "  routes.routes[0] -> chat\n" in ok(cli(*args, "--event", str(shown)))
    # its event part alone will do as well, and needs no --source
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps(json.loads(shown.read_text())["event"]))
    again = ok(cli(*args, "--event", str(alone), "--expect", "chat,ops,pager"))
    assert "flow.failed: orders (flow 12345)" in again


def test_expect_exits_1_on_a_mismatch(cli: Cli, config_file: Path, raw: Path) -> None:
    args = ("routes", "test", "--config", str(config_file), "--event", str(raw), "--source", "etl")
    ok(cli(*args, "--at", DAY, "--expect", "pager, ops,chat"))
    result = cli(*args, "--at", DAY, "--expect", "chat,pager")
    assert result.returncode == 1
    assert result.stderr == (
        "MISMATCH: expected ['chat', 'pager'], would fire ['chat', 'ops', 'pager']\n"
    )
    assert "matched routes:" in result.stdout  # the report is shown all the same


def test_at_routes_at_that_time(cli: Cli, config_file: Path, raw: Path) -> None:
    args = ("routes", "test", "--config", str(config_file), "--event", str(raw), "--source", "etl")
    night = ok(cli(*args, "--at", NIGHT, "--expect", "chat,pager"))
    assert "  routes.routes[1] -> ops  SUPPRESSED: muted (nights)\n" in night
    # without an offset, a time is the local zone's
    berlin = {"TZ": "Europe/Berlin"}
    ok(cli(*args, "--at", "2026-05-09T23:30:00", "--expect", "chat,pager", env=berlin))
    ok(cli(*args, "--at", "2026-05-09T21:30:00", "--expect", "chat,ops,pager", env=berlin))


def test_a_silence_added_is_shown_as_suppressed(cli: Cli, config_file: Path, raw: Path) -> None:
    added = cli(
        "silence", "add", 'flow_name=~"warehouse-.*"', "--duration", "2h", "--comment",
        "migration", "--author", "ana",
    )  # fmt: skip
    sid = columns(ok(added))[0]["ID"]
    args = ("routes", "test", "--config", str(config_file), "--event", str(raw), "--source", "etl")
    out = ok(cli(*args, "--expect", ""))
    for line in (
        "routes.routes[0] -> chat",
        "routes.routes[0] -> pager",
        "routes.routes[1] -> ops",
    ):
        assert f"  {line}  SUPPRESSED: silenced ({sid})\n" in out
    # --no-state leaves Redis out of it (by day: the ops route is muted at night)
    ok(cli(*args, "--no-state", "--at", DAY, "--expect", "chat,ops,pager"))


def test_open_incidents_hold_back_repeats_and_are_resolved(
    cli: Cli, redis: Redis, config_file: Path, tmp_path: Path
) -> None:
    config = load(config_file, {**os.environ, **SECRETS})
    event = {"id": "ev-0", "source": "etl", "flow_id": "12345", "kind": "flow.failed"}
    route = next(m for m in match(config.routes, {"kind": "flow.failed"}) if "chat" in m.actions)
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    note_incident(redis, event, route, "pager", noon.timestamp() - 600)
    args = ("routes", "test", "--config", str(config_file), "--at", noon.isoformat())

    failed = stored_failure(cli, redis, tmp_path)
    out = ok(cli(*args, "--event", str(failed), "--expect", "chat,ops"))
    held = r"routes.routes\[0\] -> pager  SUPPRESSED: repeat_interval \(notified 6\d\ds ago, "
    assert re.search(held + r"repeat_interval 3600s\)\n", out)

    succeeded = stored_failure(cli, redis, tmp_path, kind="flow.succeeded")
    out = ok(cli(*args, "--event", str(succeeded), "--expect", "ops,pager"))
    assert "  routes.routes[0] -> pager (resolves the open incident)\n" in out
    assert '"event_action": "resolve"' in out


def test_without_redis_routes_test_still_answers(cli: Cli, config_file: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    args = ("routes", "test", "--config", str(config_file), "kind=flow.failed", "--at", DAY)
    result = cli(*args, "--redis-url", url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"(Redis at {url.removeprefix('redis://')} (--redis-url) unreachable: "
        "silences and open incidents not considered)\n"
    )


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


@pytest.mark.usefixtures("raw")  # the cases' failed.json
def test_cases_run_together_and_pass(cli: Cli, config_file: Path, tmp_path: Path) -> None:
    cases = write_cases(tmp_path, CASES)
    args = ("routes", "test", "--config", str(config_file), "--cases", str(cases))
    assert ok(cli(*args)).splitlines() == [
        "ok   a failure by day: fires ['chat', 'ops', 'pager']",
        "ok   a failure at night: fires ['chat', 'pager']",
        "ok   a success: fires ['ops']",
        "ok   a canonical warning: fires ['ops']",
        "4 of 4 case(s) passed",
    ]
    as_json = cli(*args, "-o", "json")
    assert json_lines(ok(as_json))[1] == {
        "name": "a failure at night",
        "ok": True,
        "fires": ["chat", "pager"],
        "expected": ["chat", "pager"],
    }
    assert as_json.stderr == "4 of 4 case(s) passed\n"


@pytest.mark.usefixtures("raw")
def test_a_failing_case_is_named_and_fails_the_run(
    cli: Cli, config_file: Path, tmp_path: Path
) -> None:
    wrong = {**CASES[1], "name": "wrong at night", "expect": ["chat", "ops", "pager"]}
    cases = write_cases(tmp_path, [CASES[0], wrong, CASES[2]])
    result = cli("routes", "test", "--config", str(config_file), "--cases", str(cases))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "ok   a failure by day: fires ['chat', 'ops', 'pager']",
        "FAIL wrong at night: fires ['chat', 'pager'], expected ['chat', 'ops', 'pager']",
        "ok   a success: fires ['ops']",
        "2 of 3 case(s) passed",
    ]


@pytest.mark.usefixtures("raw")
def test_a_case_that_cannot_run_is_named_and_the_rest_still_run(
    cli: Cli, config_file: Path, tmp_path: Path
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
    cases = write_cases(tmp_path, broken)
    result = cli("routes", "test", "--config", str(config_file), "--cases", str(cases))
    assert result.returncode == 1
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
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["name: one case\n", "- [unclosed\n"])
def test_a_cases_file_that_is_not_a_list_is_refused(
    cli: Cli, config_file: Path, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(text)
    result = cli("routes", "test", "--config", str(config_file), "--cases", str(path))
    refused(result, 2, "not a YAML list of cases")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the event's labels (kind=flow.failed flow_id=7), --event FILE or --cases FILE"),
        (("kind=flow.failed", "--event", "{raw}"), "give the event's labels"),
        (("--event", "{raw}"), "a raw Etlworks body needs --source"),
        (("--event", "{raw}", "--source", "nope"), "no source 'nope' in the config (known: etl)"),
        (("--event", "{raw}", "--source", "etl", "--at", "soon"), "'soon' is neither a time"),
        (("--event", "{text}", "--source", "etl"), "the event file is not JSON"),
        (("--event", "{binary}", "--source", "etl"), "not UTF-8 text"),
        (("--event", "{surrogate}", "--source", "etl"), "the receiver would refuse this body"),
        (("--event", "{tmp}/absent.json"), "does not exist"),
    ],
)
@pytest.mark.usefixtures("raw")
def test_routes_test_refuses_what_it_cannot_read(
    cli: Cli, config_file: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    files = {
        "raw": tmp_path / "failed.json",
        "text": tmp_path / "notes.txt",
        "binary": tmp_path / "body.bin",
        "surrogate": tmp_path / "surrogate.json",
        "tmp": tmp_path,
    }
    files["text"].write_text("not json")
    files["binary"].write_bytes(b'{"eventId": "\xff"}')
    files["surrogate"].write_text('{"eventType": "FLOW_FAILED", "flowName": "\\ud800"}')
    given = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    refused(cli("routes", "test", "--config", str(config_file), *given), 2, message)


# silence ----------------------------------------------------------------------------------------


def test_silence_add_list_query_and_expire(cli: Cli, redis: Redis) -> None:
    added = cli(
        "silence", "add", 'flow_name=~"staging-.*"', "kind=flow.failed", "--duration", "2h",
        "--comment", "load test", "--author", "ana",
    )  # fmt: skip
    [made] = columns(ok(added))
    assert (made["STATE"], made["AUTHOR"], made["COMMENT"]) == ("active", "ana", "load test")
    assert made["MATCHERS"] == 'flow_name=~"staging-.*", kind="flow.failed"'
    starts, ends = (datetime.fromisoformat(made[k]) for k in ("STARTS", "ENDS"))
    assert ends - starts == timedelta(hours=2)
    assert redis.hexists(keys.SILENCES, made["ID"])
    assert ok(cli("silence", "list")) == ok(added)

    later = columns(ok(cli("silence", "add", "flow_id=7", "--start", "1h", "--comment", "x")))[0]
    assert later["STATE"] == "pending"
    ends_later = datetime.fromisoformat(later["ENDS"]) - datetime.fromisoformat(later["STARTS"])
    assert ends_later == timedelta(hours=1)  # the default duration

    def query(*labels: str) -> list[str]:
        return [row["ID"] for row in columns(ok(cli("silence", "query", *labels)))]

    # matchers on labels not given are not checked: either could hold such an event back
    assert query("flow_name=staging-db", "kind=flow.failed") == [made["ID"], later["ID"]]
    assert query("flow_name=staging-db", "flow_id=8") == [made["ID"]]
    assert query("flow_id=7", "kind=flow.succeeded") == [later["ID"]]
    nothing = cli("silence", "query", "flow_id=8", "flow_name=prod")
    assert (nothing.returncode, nothing.stdout) == (0, "")
    assert nothing.stderr.startswith("no silences match in force in Redis at ")

    preview = cli("silence", "preview", "kind=flow.failed", "-o", "json")
    assert json.loads(ok(preview)) == {
        "matchers": ['kind="flow.failed"'],
        "hours": 24.0,
        "matching": 0,
    }
    store(redis, "pv-failed")  # a flow.failed event received now
    store(redis, "pv-ok", kind="flow.succeeded", event="FLOW_SUCCESS", status="success")
    counted = json.loads(ok(cli("silence", "preview", "kind=flow.failed", "-o", "json")))
    assert counted["matching"] == 1
    refused = cli("silence", "preview", "kind=flow_failed")
    assert refused.returncode == 2 and "unknown kind 'flow_failed'" in refused.stderr

    expired = cli("silence", "expire", made["ID"], later["ID"])
    assert [row["STATE"] for row in columns(ok(expired))] == ["expired", "expired"]
    empty = cli("silence", "list")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.startswith("no silences in force in Redis at ")
    ended = json_lines(ok(cli("silence", "list", "--all", "-o", "json")))
    assert [(s["id"], s["state"]) for s in ended] == [
        (made["ID"], "expired"),
        (later["ID"], "expired"),
    ]
    assert ended[0]["matchers"] == ['flow_name=~"staging-.*"', 'kind="flow.failed"']


def test_silence_author_defaults_to_the_user(cli: Cli) -> None:
    added = cli("silence", "add", "flow_id=7", "--comment", "x", env={"LOGNAME": "bob"})
    assert columns(ok(added))[0]["AUTHOR"] == "bob"


def test_silence_add_takes_the_matcher_option_of_earlier_releases(cli: Cli) -> None:
    added = cli("silence", "add", "--matcher", 'flow_id="7"', "--duration", "1h", "--comment", "x")
    assert columns(ok(added))[0]["MATCHERS"] == 'flow_id="7"'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "--comment", "c"), "give at least one matcher, e.g. kind=flow.failed"),
        (("add", 'flow="x"', "--comment", "c"), "unknown label 'flow' (known: "),
        (("add", 'flow_name=~"("', "--comment", "c"), "bad regex '('"),
        (("add", "flow_id=7", "--duration", "soon", "--comment", "c"),
         "--duration: must be a duration such as 30s, 5m, 2h or 7d"),
        (("add", "flow_id=7", "--duration", "0s", "--comment", "c"),
         "a silence must last longer than zero"),
        (("add", "flow_id=7", "--duration", "1h", "--end", "2h", "--comment", "c"),
         "give --duration or --end, not both"),
        (("add", "flow_id=7", "--start", "2h", "--end", "1h", "--comment", "c"),
         "a silence must end after it starts"),
        (("add", "flow_id=7"), "Missing option '--comment'"),
        (("query", "flow=7"), "unknown label 'flow' (known: "),
    ],
)  # fmt: skip
def test_silence_refuses_bad_input_as_a_usage_error(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    refused(cli("silence", *args), 2, message)


def test_silence_expire_of_an_unknown_id_exits_1(cli: Cli, redis_url: str) -> None:
    location = redis_url.removeprefix("redis://")
    refused(
        cli("silence", "expire", "nosuchsilence"),
        1,
        f"no silence 'nosuchsilence' in Redis at {location} (FLOWHOOKS_REDIS_URL)",
    )


# dlq ------------------------------------------------------------------------------------------


@pytest.fixture
def dead(redis: Redis, config_file: Path) -> list[str]:
    """Two deliveries dead-lettered the way the worker does it; their job ids."""
    deliverer = Deliverer(
        redis,
        load(config_file, {**os.environ, **SECRETS}),
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
    return [keys.text(j) for j in conn.lrange(f"rq:queue:{keys.QUEUE}", 0, -1)]


def test_dlq_list_is_a_table_of_each_dead_job(cli: Cli, dead: list[str]) -> None:
    rows = columns(ok(cli("dlq", "list")))
    found = [(r["JOB"], r["TASK"], r["ACTION"], r["ATTEMPT"], r["REASON"]) for r in rows]
    assert sorted(found) == sorted(
        [
            (dead[0], "deliver", "pager", "1", "permanent failure: pager answered 400"),
            (dead[1], "deliver", "chat", "2", "permanent failure: chat answered 400"),
        ]
    )
    assert {(r["REF"], r["ROUTE"]) for r in rows} == {("etl:ev-1", "routes.routes[0]")}
    failed = datetime.fromisoformat(rows[0]["FAILED"])
    assert failed.tzinfo is not None
    assert failed > datetime.now(UTC) - timedelta(minutes=1)


def test_dlq_list_as_json_lines(cli: Cli, dead: list[str]) -> None:
    rows = json_lines(ok(cli("dlq", "list", "-o", "json")))
    assert sorted(r["job"] for r in rows) == sorted(dead)
    pager = next(r for r in rows if r["job"] == dead[0])
    assert {k: v for k, v in pager.items() if k != "failed_at"} == {
        "job": dead[0],
        "task": "workers.tasks.deliver",
        "ref": "etl:ev-1",
        "route": "routes.routes[0]",
        "action": "pager",
        "kind": "notify",
        "attempt": 1,
        "reason": "permanent failure: pager answered 400",
    }


def test_dlq_shows_a_route_job_that_failed_in_the_worker(cli: Cli, redis: Redis) -> None:
    """What RQ records when a job raises: the job in the registry and a failed Result."""
    ref = keys.ref("etl", "ev-9")
    job = Job.create(
        keys.ROUTE_TASK, args=[ref], connection=redis, serializer=JSONSerializer,
        id=keys.route_job_id(ref), origin=keys.QUEUE,
    )  # fmt: skip
    error = "Traceback (most recent call last):\n  ...\nRuntimeError: boom"
    with redis.pipeline() as pipe:
        registry(redis).add(job, ttl=600, exc_string=error, pipeline=pipe)
        JobResult.create_failure(job, 600, exc_string=error, pipeline=pipe)
        pipe.execute()
    [row] = columns(ok(cli("dlq", "list")))
    assert (row["TASK"], row["REF"], row["REASON"]) == ("route_event", ref, "RuntimeError: boom")
    shown = json.loads(ok(cli("dlq", "show", job.id, "-o", "json")))
    assert (shown["args"], shown["exc_info"]) == ([ref], error)
    text = ok(cli("dlq", "show", job.id))
    assert f"job     {job.id}\n" in text
    assert text.endswith(f"\nerror\n{error}\n")


def test_dlq_show_gives_the_job_in_full(cli: Cli, dead: list[str]) -> None:
    shown = json.loads(ok(cli("dlq", "show", dead[1], "-o", "json")))
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
    text = ok(cli("dlq", "show", dead[1]))
    head, args, *_ = text.split("\n\n")
    assert head.splitlines()[:3] == [
        f"job      {dead[1]}",
        "task     workers.tasks.deliver",
        "ref      etl:ev-1",
    ]
    assert json.loads(args.removeprefix("args\n")) == shown["args"]
    assert SLACK_URL not in text


def test_dlq_replay_moves_the_job_back_to_the_queue(
    cli: Cli, redis: Redis, dead: list[str]
) -> None:
    assert ok(cli("dlq", "replay", dead[0])) == f"requeued {dead[0]}\n"
    assert queued(redis) == [dead[0]]
    assert registry(redis).get_job_ids() == [dead[1]]
    job = Job.fetch(dead[0], connection=redis, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.QUEUED
    # once replayed it is no longer dead
    refused(cli("dlq", "replay", dead[0]), 1, f"no job {dead[0]!r} in the dead-letter registry")


def test_dlq_replay_all(cli: Cli, redis: Redis, dead: list[str]) -> None:
    ok(cli("dlq", "replay", "--all"))
    assert sorted(queued(redis)) == sorted(dead)
    assert registry(redis).get_job_ids() == []
    empty = cli("dlq", "replay", "--all")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.startswith("no dead letters in Redis at ")


def test_dlq_purge_needs_yes_without_a_terminal(cli: Cli, redis: Redis, dead: list[str]) -> None:
    refused(cli("dlq", "purge"), 2, "Not on a terminal to ask: confirm with --yes")
    assert len(registry(redis).get_job_ids()) == 2
    assert ok(cli("dlq", "purge", "--yes")) == "purged 2 job(s)\n"
    assert registry(redis).get_job_ids() == []
    assert not any(redis.exists(f"rq:job:{job_id}") for job_id in dead)
    assert queued(redis) == []
    empty = cli("dlq", "list")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.startswith("no dead letters in Redis at ")


def on_a_terminal(tmp_path: Path, redis_url: str, answer: str, *args: str) -> tuple[int, str]:
    """``flowhooks ARGS`` with a terminal for its input, answering ``answer``; its exit code
    and all it wrote to the terminal or its outputs."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*FLOWHOOKS, *args],
            cwd=tmp_path,
            env=child_env(FLOWHOOKS_REDIS_URL=redis_url),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(controller, answer.encode() + b"\n")
        out, _ = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    return process.returncode, out


def test_dlq_purge_asks_on_a_terminal(
    tmp_path: Path, redis: Redis, redis_url: str, dead: list[str]
) -> None:
    code, out = on_a_terminal(tmp_path, redis_url, "n", "dlq", "purge")
    location = redis_url.removeprefix("redis://")
    question = f"Delete 2 dead letter(s) in Redis at {location} (FLOWHOOKS_REDIS_URL) for good?"
    assert (code, out) == (1, f"{question} [y/N]: nothing deleted\n")
    assert len(registry(redis).get_job_ids()) == 2
    code, out = on_a_terminal(tmp_path, redis_url, "y", "dlq", "purge")
    assert (code, out) == (0, f"{question} [y/N]: purged 2 job(s)\n")
    assert registry(redis).get_job_ids() == []


def test_dlq_purge_copes_with_a_job_already_gone(cli: Cli, redis: Redis, dead: list[str]) -> None:
    redis.delete(f"rq:job:{dead[0]}")
    assert ok(cli("dlq", "purge", "--yes")) == "purged 2 job(s)\n"
    assert registry(redis).get_job_ids() == []


@pytest.mark.usefixtures("dead")
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "nosuchjob"), 1, "no job 'nosuchjob' in the dead-letter registry"),
        (("replay", "nosuchjob"), 1, "no job 'nosuchjob' in the dead-letter registry"),
        (("replay",), 2, "name a JOB or give --all"),
        (("replay", "x", "--all"), 2, "name a JOB or give --all, not both"),
    ],
)
def test_dlq_refuses_with_a_message(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    refused(cli("dlq", *args), code, message)


def test_dlq_show_refuses_a_job_that_is_not_dead(cli: Cli, redis: Redis) -> None:
    """A queued route job is not a dead letter: ``show`` does not pass it off as one."""
    queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
    job = queue.enqueue(keys.ROUTE_TASK, "etl:ev-1", job_id="route-live")
    refused(cli("dlq", "show", job.id), 1, "no job 'route-live' in the dead-letter registry")
