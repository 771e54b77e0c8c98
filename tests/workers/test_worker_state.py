"""The worker's own state: config reloads, pacing across workers, the dead-letter gauge."""

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis import Redis
from rq.registry import FailedJobRegistry

from config import keys
from config.loader import load
from tests.support import settings
from workers.context import WorkerContext
from workers.lanes import PACE, pace
from workers.metrics import DeadLetters, WorkerMetrics

GOOD = """
sources: {etl: {allow_unsigned: true}}
actions: {console: {log: {}}}
routes: {actions: [console]}
"""


def context_for(path: Path, redis_url: str) -> tuple[WorkerContext, CollectorRegistry]:
    registry = CollectorRegistry()
    ctx = WorkerContext(settings(redis_url, config=str(path)), load(path), WorkerMetrics(registry))
    return ctx, registry


def reloads(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("flowhooks_config_reloads_total", {"outcome": outcome})
    return value or 0.0


def test_a_changed_config_file_is_used_by_the_next_task(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(GOOD)
    ctx, registry = context_for(path, redis_url)
    assert list(ctx.config.actions) == ["console"]
    path.write_text(GOOD.replace("console", "screen"))
    assert list(ctx.config.actions) == ["screen"]
    assert reloads(registry, "ok") == 1


def test_a_broken_config_is_counted_and_the_old_one_stays(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(GOOD)
    ctx, registry = context_for(path, redis_url)
    path.write_text(GOOD + "routes: {actions: [nope]}\n")  # a duplicate key, and a bad name
    assert list(ctx.config.actions) == ["console"]
    assert reloads(registry, "invalid") == 1
    assert list(ctx.config.actions) == ["console"]  # not retried until the file changes again
    assert reloads(registry, "invalid") == 1


def test_sighup_reloads_even_an_unchanged_file(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(GOOD)
    ctx, registry = context_for(path, redis_url)
    ctx.request_reload()
    assert list(ctx.config.actions) == ["console"]
    assert reloads(registry, "ok") == 1


def test_slack_is_paced_to_one_message_a_second_across_workers(redis: Redis) -> None:
    now = time.time()
    waits = [pace(redis, "ops-slack", "slack", now) for _ in range(3)]
    assert waits == pytest.approx([0.0, PACE["slack"], 2 * PACE["slack"]], abs=0.001)
    assert pace(redis, "other-slack", "slack", now) == 0.0  # per action
    assert pace(redis, "audit", "webhook", now) == 0.0  # unpaced sinks
    later = now + 10
    assert pace(redis, "ops-slack", "slack", later) == 0.0  # the slots were used up


def test_the_dead_letter_gauge_reads_the_registry(redis: Redis) -> None:
    registry = CollectorRegistry()
    registry.register(DeadLetters(redis))
    assert registry.get_sample_value("flowhooks_dead_letters") == 0
    redis.zadd(FailedJobRegistry(keys.QUEUE, connection=redis).key, {"job-1": 1, "job-2": 2})
    assert registry.get_sample_value("flowhooks_dead_letters") == 2
