"""``flowhooks etlworks subscribe`` and ``status`` as an operator runs them, against the Etlworks
simulator over loopback and a real Redis."""

import json
from pathlib import Path

import pytest
from redis import Redis

from config import keys
from tests.cli_support import flowhooks, json_lines, ok, refused
from tests.etlworks.simulator import API_KEY, Simulator
from tests.support import SECRET
from workers import synthetic

PUBLIC = "https://hooks.example.com"
ENV = {"ETLWORKS_API_KEY": API_KEY, "SECRET": SECRET, "OLD_SECRET": "previous-secret"}


@pytest.fixture
def folder(tmp_path: Path, etlworks_sim: Simulator) -> Path:
    etlworks_sim.add_flow(101, "warehouse-load")
    (tmp_path / "flowhooks.yaml").write_text(f"""
etlworks:
  prod: {{url: "{etlworks_sim.url}", api_key: "${{ETLWORKS_API_KEY}}"}}
sources:
  etl:
    verify: [{{hmac: {{secrets: ["${{SECRET}}", "${{OLD_SECRET}}"]}}}}]
    etlworks: prod
  other:
    verify: [{{hmac: {{secrets: ["${{OTHER_SECRET}}"]}}}}]
""")
    return tmp_path


def test_subscribe_twice_is_one_webhook_updated_in_place(
    folder: Path, etlworks_sim: Simulator
) -> None:
    first = ok(flowhooks("etlworks", "subscribe", "etl", "--url", PUBLIC, cwd=folder, env=ENV))
    assert first.splitlines()[0] == "created webhook flowhooks-etl in Etlworks instance prod (id 1)"
    assert SECRET not in first
    again = flowhooks(
        *("etlworks", "subscribe", "etl", "--url", PUBLIC + "/", "--flows", "101,warehouse-*"),
        *("--events", "FLOW_FAILED", "-o", "json"),
        cwd=folder,
        env=ENV,
    )
    [answer] = json_lines(ok(again))
    assert (answer["done"], answer["id"], answer["webhook"]["secret"]) == ("updated", 1, "***")
    [hook] = etlworks_sim.webhooks
    assert (hook.id, hook.name, hook.url) == (1, "flowhooks-etl", f"{PUBLIC}/webhooks/etl")
    assert (hook.secret, hook.enabled, hook.method) == (SECRET, True, "POST")
    assert (hook.events, hook.includes) == (frozenset({"FLOW_FAILED"}), ("101", "warehouse-*"))
    [create, update] = [
        c
        for c in etlworks_sim.calls
        if c.path.startswith("/v1/webhooks/") or (c.method == "POST" and c.path == "/v1/webhooks")
    ]
    assert (create.method, update.method, update.path) == ("POST", "PUT", "/v1/webhooks/1")
    assert json.loads(update.body)["name"] == "flowhooks-etl"


def test_a_dry_run_shows_the_request_with_its_secret_masked_and_sends_none(
    folder: Path, etlworks_sim: Simulator
) -> None:
    args = ("etlworks", "subscribe", "etl", "--url", PUBLIC, "--exclude-flows", "56", "--dry-run")
    out = ok(flowhooks(*args, cwd=folder, env=ENV))
    assert SECRET not in out
    assert "would create webhook flowhooks-etl in Etlworks instance prod" in out
    assert "  request: POST /v1/webhooks" in out and "  secret: ***" in out
    assert "  flowExcludes: 56" in out
    assert etlworks_sim.webhooks == []


def test_subscribe_refuses_what_it_cannot_do_with_the_exit_codes_of_every_command(
    folder: Path, etlworks_sim: Simulator
) -> None:
    both = ("--flows", "1", "--exclude-flows", "2")
    run = flowhooks("etlworks", "subscribe", "etl", "--url", PUBLIC, *both, cwd=folder, env=ENV)
    refused(run, 2, "give --flows or --exclude-flows, not both")
    other = {**ENV, "OTHER_SECRET": "other-secret"}
    run = flowhooks("etlworks", "subscribe", "other", "--url", PUBLIC, cwd=folder, env=other)
    refused(run, 2, "source 'other' names no Etlworks instance")
    run = flowhooks(
        "etlworks",
        "subscribe",
        "etl",
        "--url",
        PUBLIC,
        cwd=folder,
        env={**ENV, "ETLWORKS_API_KEY": ""},
    )
    refused(run, 2, "etlworks.prod.api_key: environment variable ETLWORKS_API_KEY is empty")
    wrong = {**ENV, "ETLWORKS_API_KEY": "not-the-key"}
    run = flowhooks("etlworks", "subscribe", "etl", "--url", PUBLIC, cwd=folder, env=wrong)
    refused(run, 1, "Etlworks rejected the API key")
    assert "not-the-key" not in run.stderr and etlworks_sim.webhooks == []


def test_status_says_a_deleted_webhook_is_absent_and_what_reconciling_routed(
    folder: Path, etlworks_sim: Simulator, redis: Redis, redis_url: str
) -> None:
    ok(flowhooks("etlworks", "subscribe", "etl", "--url", PUBLIC, cwd=folder, env=ENV))
    there = flowhooks(
        "etlworks", "status", "--url", PUBLIC, cwd=folder, env=ENV, redis_url=redis_url
    )
    out = ok(there)
    assert "  registration:      enabled (id 1)" in out
    assert f"  url:               {PUBLIC}/webhooks/etl" in out
    assert "  reconcile:         every 300s" in out and "  problem:           -" in out

    elsewhere = flowhooks(
        "etlworks",
        "status",
        "etl",
        "--url",
        "https://old.example.com",
        cwd=folder,
        env=ENV,
        redis_url=redis_url,
    )
    assert elsewhere.returncode == 1
    assert (
        f"  problem:           webhook calls {PUBLIC}/webhooks/etl,"
        " not https://old.example.com/webhooks/etl" in elsewhere.stdout
    )

    webhook = {"source": "etl", "id": "etlworks-event-1", "event": "FLOW_SUCCESS"}
    synthetic.store(redis, {**webhook, "kind": "flow.succeeded"}, retention=3600)
    redis.hset(keys.webhooks("etl"), mapping={"reconciled": 4, "missing": "etl:webhook-missing-1"})
    etlworks_sim.remove_webhook(1)
    gone = flowhooks("etlworks", "status", "-o", "json", cwd=folder, env=ENV, redis_url=redis_url)
    assert gone.returncode == 1
    [report] = json_lines(gone.stdout)
    assert (
        report["registration"] == "absent"
        and report["problem"] == "webhook flowhooks-etl is absent"
    )
    assert (report["reconciled"], report["missing"], report["runs_ended_since"]) == (4, True, 0)
    assert report["last_webhook_at"] is not None


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("webhook.missing", "oncall,ops-slack"), ("webhook.resumed", "ops-slack")],
)
def test_routes_test_knows_the_kinds_reconciling_raises(
    tmp_path: Path, kind: str, expected: str
) -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "examples" / "reconcile.yaml"
    env = {
        "ETLWORKS_WEBHOOK_SECRET": SECRET,
        "ETLWORKS_API_KEY": API_KEY,
        "PAGERDUTY_ROUTING_KEY": "routing-key",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    }
    args = ("routes", "test", f"kind={kind}", "source=etlworks-prod", "--expect", expected)
    out = ok(flowhooks(*args, "--config", str(example), cwd=tmp_path, env=env))
    assert "matched routes:" in out
