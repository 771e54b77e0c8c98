"""The receiver's Prometheus metrics, registered on a registry of the app's own."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "flowhooks_webhook_requests",
            "Webhook requests by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.verification_failures = Counter(
            "flowhooks_verification_failures",
            "Webhook requests that failed verification, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "flowhooks_duplicate_events",
            "Events received again within the dedup window, by source.",
            ["source"],
            registry=registry,
        )
        self.enqueue_seconds = Histogram(
            "flowhooks_enqueue_seconds",
            "Time from a verified event to its durable write (dedupe, store, enqueue).",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.commit_batch = Histogram(
            "flowhooks_commit_batch_events",
            "Events written per Redis round trip (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=registry,
        )
        self.config_reloads = Counter(
            "flowhooks_config_reloads",
            "Config reloads by outcome (ok, invalid: the old config stays in force).",
            ["outcome"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "flowhooks_queue_depth",
            "Jobs waiting in the flowhooks queue, read at scrape time.",
            registry=registry,
        )
