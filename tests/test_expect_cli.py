"""``flowhooks expect status``: how each expectation stands, as text and as JSON, read from the
state the workers keep; no secret needed, an unreachable Redis one line."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis

from tests.cli_support import columns, flowhooks, json_lines, ok, refused
from tests.support import free_port, make_config
from workers import expectations

CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET_NOT_SET_HERE}"]}
actions:
  page: {pagerduty: {routing_key: "${PD_KEY_NOT_SET_HERE}"}}
expect:
  orders:
    matchers: ['flow_id="7"']
    succeed_by: {cron: "0 6 * * *", timezone: Europe/Berlin}
  crm:
    matchers: ['flow_name="crm"']
    every: 26h
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(CONFIG)
    return path


def test_status_as_text_and_json(redis: Redis, redis_url: str, config_file: Path) -> None:
    config = make_config(CONFIG, {"SECRET_NOT_SET_HERE": "x", "PD_KEY_NOT_SET_HERE": "y"})
    start = datetime.now(UTC) - timedelta(days=2)
    expectations.evaluate(redis, config, start, retention=3600)  # watching since two days ago
    success = {
        "id": "c1",
        "source": "etl",
        "kind": "flow.succeeded",
        "flow_name": "crm",
        "received_at": (start + timedelta(days=1, hours=12)).isoformat(),
    }
    expectations.observe(redis, config, success)
    [missed] = expectations.evaluate(redis, config, datetime.now(UTC), retention=3600)
    assert missed.startswith("etl:expect-orders-")
    args = ("expect", "status", "--config", str(config_file))

    rows = columns(ok(flowhooks(*args, cwd=config_file.parent, redis_url=redis_url)))
    assert [(r["NAME"], r["EXPECTS"]) for r in rows] == [
        ("orders", "by 0 6 * * * (Europe/Berlin)"),
        ("crm", "every 26h"),
    ]
    assert rows[0]["LAST SUCCESS"] == "never seen"
    assert rows[0]["MISSED"] != "no"
    assert rows[1]["MISSED"] == "no"

    found = json_lines(
        ok(flowhooks(*args, "-o", "json", cwd=config_file.parent, redis_url=redis_url))
    )
    orders, crm = found
    assert orders["missed_event"] == missed
    assert crm["last_success_event"] == "etl:c1"
    assert datetime.fromisoformat(crm["next_deadline"]) > datetime.now(UTC)


def test_an_unreachable_redis_is_one_line(config_file: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    refused(
        flowhooks(
            "expect", "status", "--config", str(config_file), cwd=config_file.parent, redis_url=url
        ),
        1,
        "cannot reach Redis at 127.0.0.1",
    )


def test_a_config_without_expectations_says_so(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text("sources: {etl: {allow_unsigned: true}}\n")
    said = ok(
        flowhooks("expect", "status", "--config", str(path), cwd=tmp_path, redis_url=redis_url)
    )
    assert said.startswith("no expectations in ")
