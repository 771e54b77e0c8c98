"""The worker's Prometheus metrics, on a registry of the worker's own, served by
``flowhooks worker --metrics-port``. Jobs run in the worker process (RQ's SimpleWorker), so
what they count is what the endpoint shows."""

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry

from config import keys, lanestate
from config.lanestate import CIRCUIT_STATES

"""The circuit's states as ``flowhooks_circuit_state`` shows them."""


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "flowhooks_deliveries",
            "Delivery attempts by sink and outcome (delivered, retry, dead).",
            ["sink", "outcome"],
            registry=registry,
        )
        self.delivered_after = Histogram(
            "flowhooks_received_to_delivered_seconds",
            "From an event's arrival to a successful delivery.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
            registry=registry,
        )
        self.suppressions = Counter(
            "flowhooks_suppressed_notifications",
            "Notifications not sent, by reason (silenced, muted, inactive, inhibited,"
            " repeat_interval).",
            ["reason"],
            registry=registry,
        )
        self.redis_reconnects = Counter(
            "flowhooks_redis_reconnects",
            "Times the worker lost Redis and waited for it to come back.",
            registry=registry,
        )
        self.reconciled = Counter(
            "flowhooks_reconciled_events",
            "Runs routed from Etlworks' execution history because no webhook had routed them.",
            ["source"],
            registry=registry,
        )
        self.digests = Counter(
            "flowhooks_digests",
            "Storm digests sent, by action: waiting notifications sent as one message.",
            ["action"],
            registry=registry,
        )
        self.digest_deliveries = Counter(
            "flowhooks_digest_deliveries",
            "Notifications carried by a storm digest rather than sent on their own, by action.",
            ["action"],
            registry=registry,
        )
        self.expectations_missed = Counter(
            "flowhooks_expectations_missed",
            "Deadlines of an expectation (expect:) that passed without a success.",
            ["expectation"],
            registry=registry,
        )
        self.config_reloads = Counter(
            "flowhooks_config_reloads",
            "Config reloads by outcome (ok, invalid: the old config stays in force).",
            ["outcome"],
            registry=registry,
        )


class DeadLetters(Collector):
    """``flowhooks_dead_letters``: jobs in the dead-letter registry, read from Redis at scrape."""

    def __init__(self, conn: Redis) -> None:
        self.conn = conn
        self.key = FailedJobRegistry(keys.QUEUE, connection=conn).key

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "flowhooks_dead_letters", "Deliveries and route jobs in the dead-letter registry."
        )
        try:
            gauge.add_metric([], float(self.conn.zcard(self.key)))
        except RedisError:
            return []  # no figure rather than a wrong one; the worker's logs say why
        return [gauge]


class Lanes(Collector):
    """Per action, read from Redis at scrape (:mod:`workers.lanes`):
    ``flowhooks_lane_backlog`` (deliveries waiting), ``flowhooks_lane_oldest_seconds`` (how
    long the oldest has waited) and ``flowhooks_circuit_state`` (0 closed, 1 half open,
    2 open). ``actions`` names the actions that have lanes (the notifiers of the config)."""

    def __init__(self, conn: Redis, actions: Callable[[], Iterable[str]]) -> None:
        self.conn = conn
        self.actions = actions

    def collect(self) -> Iterable[Metric]:
        try:
            lanes = lanestate.read(self.conn, self.actions(), time.time())
        except RedisError:
            return []  # no figure rather than a wrong one; the worker's logs say why
        backlog = GaugeMetricFamily(
            "flowhooks_lane_backlog", "Deliveries waiting in the action's lane.", labels=["action"]
        )
        oldest = GaugeMetricFamily(
            "flowhooks_lane_oldest_seconds",
            "How long the oldest delivery in the action's lane has waited (0 when none).",
            labels=["action"],
        )
        circuit = GaugeMetricFamily(
            "flowhooks_circuit_state",
            "The action's circuit breaker: 0 closed, 1 half open, 2 open.",
            labels=["action"],
        )
        for lane in lanes:
            backlog.add_metric([lane.action], float(lane.backlog))
            oldest.add_metric([lane.action], lane.oldest_seconds)
            circuit.add_metric([lane.action], float(CIRCUIT_STATES[lane.circuit]))
        return [backlog, oldest, circuit]
