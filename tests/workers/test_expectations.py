"""workers.expectations against a real Redis: successes noted, deadlines judged once each
whatever the repeats and races, a missed one stored as an event with its route job, and the
state ``flowhooks expect status`` reads. The clock is a parameter: no test waits."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from redis import Redis

from config import keys
from config.schema import Config
from tests.support import make_config
from workers import expectations
from workers.metrics import WorkerMetrics

CONFIG = """
sources: {etl: {allow_unsigned: true}, prod: {allow_unsigned: true}}
expect:
  orders:
    matchers: ['flow_id="7"', 'source="prod"']
    succeed_by: {cron: "0 6 * * *", timezone: Europe/Berlin}
    grace: 10m
  crm:
    matchers: ['flow_name=~"crm-.*"']
    every: 26h
"""
START = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
RETENTION = 3600.0


def config() -> Config:
    return make_config(CONFIG)


def success(event_id: str, finished: datetime, **labels: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": labels.pop("source", "prod"),
        "event": "FLOW_SUCCESS",
        "kind": "flow.succeeded",
        "flow_id": "7",
        "finished_at": finished.isoformat(),
        "received_at": (finished + timedelta(seconds=5)).isoformat(),
        **labels,
    }


def watch(redis: Redis, cfg: Config) -> None:
    assert expectations.evaluate(redis, cfg, START, retention=RETENTION) == []


def test_a_missed_deadline_is_stored_once_with_its_route_job(redis: Redis) -> None:
    cfg = config()
    watch(redis, cfg)
    later = datetime(2026, 5, 12, 4, 11, tzinfo=UTC)  # 06:11 Berlin: grace over
    metrics = WorkerMetrics(CollectorRegistry())
    [ref] = expectations.evaluate(redis, cfg, later, retention=RETENTION, metrics=metrics)
    assert ref == "prod:expect-orders-20260512T040000Z"
    assert expectations.evaluate(redis, cfg, later, retention=RETENTION, metrics=metrics) == []
    counted = metrics.registry.get_sample_value(
        "flowhooks_expectations_missed_total", {"expectation": "orders"}
    )
    assert counted == 1
    stored = json.loads(redis.get(keys.event(ref)) or b"{}")
    assert (stored["kind"], stored["source"], stored["entity_id"], stored["flow_id"]) == (
        "expectation.missed",
        "prod",
        "orders",
        "7",
    )
    assert "no success seen yet" in stored["error"]
    assert redis.exists(f"rq:job:{keys.route_job_id(ref)}")
    # the next day's deadline is a deadline of its own
    made = expectations.evaluate(redis, cfg, later + timedelta(days=1), retention=RETENTION)
    assert made == ["prod:expect-orders-20260513T040000Z", "etl:expect-crm-20260512T140000Z"]


def test_a_success_after_the_previous_deadline_meets_it(redis: Redis) -> None:
    cfg = config()
    watch(redis, cfg)
    assert expectations.observe(redis, cfg, success("s1", START + timedelta(hours=10))) == [
        "orders"
    ]
    later = datetime(2026, 5, 12, 4, 11, tzinfo=UTC)
    assert expectations.evaluate(redis, cfg, later, retention=RETENTION) == []
    # judged: a second look changes nothing
    assert expectations.evaluate(redis, cfg, later, retention=RETENTION) == []


def test_successes_the_matchers_do_not_take_do_not_count(redis: Redis) -> None:
    cfg = config()
    watch(redis, cfg)
    finished = START + timedelta(hours=10)
    assert expectations.observe(redis, cfg, success("s1", finished, source="etl")) == []
    failed = {**success("f1", finished), "kind": "flow.failed"}
    assert expectations.observe(redis, cfg, failed) == []
    later = datetime(2026, 5, 12, 4, 11, tzinfo=UTC)
    assert len(expectations.evaluate(redis, cfg, later, retention=RETENTION)) == 1


def test_judges_racing_make_one_event(redis: Redis, redis_url: str) -> None:
    cfg = config()
    watch(redis, cfg)
    later = datetime(2026, 5, 12, 4, 11, tzinfo=UTC)

    def judge(_: int) -> list[str]:
        client = Redis.from_url(redis_url)
        try:
            return expectations.evaluate(client, cfg, later, retention=RETENTION)
        finally:
            client.close()

    with ThreadPoolExecutor(8) as pool:
        made = [ref for refs in pool.map(judge, range(8)) for ref in refs]
    assert made == ["prod:expect-orders-20260512T040000Z"]


def test_status_tells_the_last_success_the_next_deadline_and_the_miss(redis: Redis) -> None:
    cfg = config()
    watch(redis, cfg)
    crm = success("c1", START + timedelta(hours=1), flow_name="crm-sync", source="etl")
    expectations.observe(redis, cfg, crm)
    later = datetime(2026, 5, 12, 4, 11, tzinfo=UTC)
    expectations.evaluate(redis, cfg, later, retention=RETENTION)
    rows = {row["name"]: row for row in expectations.status(redis, cfg, later)}
    assert rows["orders"]["missed"] == "2026-05-12T04:00:00+00:00"
    assert rows["orders"]["missed_event"] == "prod:expect-orders-20260512T040000Z"
    assert rows["orders"]["next_deadline"] == "2026-05-13T04:00:00+00:00"
    assert rows["orders"]["last_success"] is None
    assert rows["crm"]["last_success"] == (START + timedelta(hours=1)).isoformat()
    assert rows["crm"]["last_success_event"] == "etl:c1"
    assert rows["crm"]["next_deadline"] == (START + timedelta(hours=27)).isoformat()
    assert rows["crm"]["missed"] is None
    # a success ends the miss
    expectations.observe(redis, cfg, success("s2", later + timedelta(minutes=5)))
    rows = {row["name"]: row for row in expectations.status(redis, cfg, later)}
    assert rows["orders"]["missed"] is None
