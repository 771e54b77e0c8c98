"""The chart's Grafana dashboard and Prometheus alerts, against the metrics the code defines and
by Prometheus' own ``promtool``: every expression parses, names only metrics the receivers and
the workers serve (read from the code), and each alert fires on the series it is about, and not
on the healthy ones (``promtool test rules``).

``promtool`` comes with Debian's ``prometheus`` package, which ``make test`` installs when it is
missing (``make promtool``)."""

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from redis import Redis

from receiver.metrics import ReceiverMetrics
from tests.deploy.charts import CHART, ROOT, documents, of_kind, run_helm
from workers.metrics import DeadLetters, Lanes, WorkerMetrics

DASHBOARD = CHART / "dashboards" / "flowhooks.json"
RECEIVER = 'job="flowhooks-receiver", namespace="flowhooks"'
WORKER = 'job="flowhooks-worker-metrics", namespace="flowhooks"'

# Metrics the dashboard and the alerts read that other work brings, by the names it gives them
# (both sides tolerate their absence: a panel shows no data, an alert does not fire).
ARRIVING: dict[str, str] = {}
PROMETHEUS = {"up"}
"""Series Prometheus makes itself, for each target it scrapes."""

KINDS = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
}
SAMPLES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
"""The series prometheus_client exposes for a family of each kind."""

RENDERS: dict[str, dict[str, Any]] = {
    "all-alerts": {
        "prometheusRule": {"enabled": True, "alerts": {"webhooksMissing": {"enabled": True}}},
        "dashboard": {"enabled": True},
    },
    "defaults": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}},
    "thresholds": {
        "prometheusRule": {
            "enabled": True,
            "alerts": {
                "queueBacklog": {"depth": 250, "for": "3m"},
                "laneBacklogAge": {"seconds": 120},
                "deadLettersGrowing": {"window": "1h", "increase": 5},
                "circuitOpen": {"enabled": False},
            },
        }
    },
    "elsewhere": {
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True, "namespace": "grafana", "labelValue": "flowhooks"},
        "metricsSelectors": {"receiver": 'app="receiver"', "worker": 'app="worker"'},
    },
}


@pytest.fixture(scope="module")
def helm() -> dict[str, Any]:
    _, result = run_helm(CHART, RENDERS)
    return result


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: `make test` installs it (Debian's prometheus package: "
            "apt-get install --no-install-recommends prometheus)",
            pytrace=False,
        )
    return subprocess.run(
        [found, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# The metrics the code defines ----------------------------------------------------------------


def _callee(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def defined_families() -> dict[str, str]:
    """Every metric family the receivers and the workers define, with its kind: the first
    argument of each prometheus_client constructor in receiver/, workers/ and config/."""
    found: dict[str, str] = {}
    for package in ("receiver", "workers", "config"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or _callee(node.func) not in KINDS:
                    continue
                if not node.args or not isinstance(node.args[0], ast.Constant):
                    continue  # collections.Counter() and the like
                name, kind = str(node.args[0].value), KINDS[_callee(node.func)]
                found[name.removesuffix("_total") if kind == "counter" else name] = kind
    return found


def series_names(families: dict[str, str]) -> set[str]:
    return {name + suffix for name, kind in families.items() for suffix in SAMPLES[kind]}


def test_the_code_is_read_for_what_the_processes_serve(redis: Redis) -> None:
    """The scan of the code finds every family the receiver's and the worker's registries
    serve, of the same kind (and more: reconciliation, once it is in)."""
    registry = CollectorRegistry()
    ReceiverMetrics(registry)
    WorkerMetrics(CollectorRegistry())  # its config_reloads is also the receiver's
    workers = CollectorRegistry()
    WorkerMetrics(workers)
    workers.register(DeadLetters(redis))
    workers.register(Lanes(redis, lambda: ["ops-slack"]))
    served = {f.name: f.type for r in (registry, workers) for f in r.collect()}
    defined = defined_families()
    assert served.items() <= defined.items()
    assert {"flowhooks_webhook_requests", "flowhooks_dead_letters"} <= set(served)
    assert {"flowhooks_lane_backlog", "flowhooks_circuit_state"} <= set(served)


def test_arriving_metrics_are_not_mistaken_for_defined_ones() -> None:
    """A name both defined and arriving is allowed, but a kind that differs is a typo."""
    defined = defined_families()
    for name, kind in ARRIVING.items():
        assert defined.get(name, kind) == kind, name


SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{")
FLOWHOOKS = re.compile(r"\bflowhooks_[a-z0-9_]+")


def metric_names(expression: str) -> set[str]:
    """The metrics an expression selects. Every selector of the chart's has label matchers
    (the process's job at least), so each is a name followed by a brace; a flowhooks_ name
    that is not is an error here."""
    names = set(SELECTOR.findall(expression))
    assert set(FLOWHOOKS.findall(expression)) <= names, expression
    return names


def known_series() -> set[str]:
    return series_names({**ARRIVING, **defined_families()}) | PROMETHEUS


# The dashboard -------------------------------------------------------------------------------


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


def test_the_dashboard_is_one_grafana_can_load() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {variables[n]["type"] for n in ("receiver", "worker")} == {"constant"}
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert "$receiver" in target["expr"] or "$worker" in target["expr"], target["expr"]


def test_the_dashboard_shows_what_an_operator_looks_for() -> None:
    read = set().union(*map(metric_names, expressions(json.loads(DASHBOARD.read_text()))))
    wanted = {
        "flowhooks_webhook_requests_total",  # received, accepted, rejected
        "flowhooks_verification_failures_total",
        "flowhooks_deliveries_total",  # delivered, retried, dead, by sink
        "flowhooks_received_to_delivered_seconds_bucket",
        "flowhooks_enqueue_seconds_bucket",
        "flowhooks_queue_depth",
        "flowhooks_dead_letters",
        "flowhooks_lane_backlog",
        "flowhooks_lane_oldest_seconds",
        "flowhooks_circuit_state",
        "flowhooks_redis_reconnects_total",
        "up",
    }
    assert wanted <= read


def test_every_dashboard_expression_names_only_metrics_the_code_defines() -> None:
    known = known_series()
    for expression in expressions(json.loads(DASHBOARD.read_text())):
        unknown = metric_names(expression) - known
        assert not unknown, f"{expression}: no such metric {sorted(unknown)}"


def dashboard_of(helm: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    [config_map] = [
        c for c in of_kind(documents(helm, name), "ConfigMap") if "flowhooks.yaml" not in c["data"]
    ]
    [text] = config_map["data"].values()
    board: dict[str, Any] = json.loads(text)
    return config_map, board


def test_the_dashboard_config_map_is_for_grafanas_sidecar(helm: dict[str, Any]) -> None:
    config_map, board = dashboard_of(helm, "defaults")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "namespace" not in config_map["metadata"]  # the release's
    assert list(config_map["data"]) == ["flowhooks-flowhooks-flowhooks.json"]
    assert len(board["uid"]) <= 40  # Grafana's limit
    assert board["title"] == "flowhooks flowhooks/flowhooks"
    constants = {v["name"]: v["query"] for v in board["templating"]["list"]}
    assert constants["receiver"] == RECEIVER
    assert constants["worker"] == WORKER
    original = json.loads(DASHBOARD.read_text())
    assert expressions(board) == expressions(original)

    config_map, board = dashboard_of(helm, "elsewhere")
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "flowhooks"
    constants = {v["name"]: v["query"] for v in board["templating"]["list"]}
    assert (constants["receiver"], constants["worker"]) == ('app="receiver"', 'app="worker"')


def as_grafana_sends(expression: str, board: dict[str, Any]) -> str:
    """The expression as Grafana sends it to Prometheus: the constants and the rate interval
    put in."""
    for variable in board["templating"]["list"]:
        if variable["type"] == "constant":
            expression = expression.replace(f"${variable['name']}", variable["query"])
    return expression.replace("$__rate_interval", "2m")


def test_promtool_parses_every_dashboard_expression(helm: dict[str, Any], tmp_path: Path) -> None:
    """As recording rules, which `promtool check rules` parses."""
    _, board = dashboard_of(helm, "defaults")
    rules = [
        {"record": f"dashboard:expression_{i}", "expr": as_grafana_sends(e, board)}
        for i, e in enumerate(expressions(board))
    ]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    checked = promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


# The alerts ---------------------------------------------------------------------------------


def rule_spec(helm: dict[str, Any], name: str) -> dict[str, Any]:
    [rule] = of_kind(documents(helm, name), "PrometheusRule")
    spec: dict[str, Any] = rule["spec"]
    return spec


def alerts(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in spec["groups"] for r in group["rules"]}


ALERTS = {
    "FlowhooksDeadLettersGrowing",
    "FlowhooksQueueBacklog",
    "FlowhooksLaneBacklogOld",
    "FlowhooksCircuitOpen",
    "FlowhooksWorkersDown",
    "FlowhooksWorkerDown",
    "FlowhooksReceiversDown",
    "FlowhooksVerificationFailures",
    "FlowhooksRedisUnreachable",
    "FlowhooksRedisReconnecting",
    "FlowhooksConfigReloadRejected",
    "FlowhooksWebhooksMissing",
}


def test_the_alerts_on_by_default(helm: dict[str, Any]) -> None:
    assert set(alerts(rule_spec(helm, "defaults"))) == ALERTS
    assert set(alerts(rule_spec(helm, "all-alerts"))) == ALERTS


@pytest.mark.parametrize("name", list(RENDERS))
def test_every_alert_names_only_metrics_the_code_defines(helm: dict[str, Any], name: str) -> None:
    if "prometheusRule" not in RENDERS[name]:
        return
    known = known_series()
    for alert, rule in alerts(rule_spec(helm, name)).items():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{alert}: no such metric {sorted(unknown)}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("name", list(RENDERS))
def test_promtool_checks_the_rules(helm: dict[str, Any], name: str, tmp_path: Path) -> None:
    """Expressions, durations, label names and annotation templates, as Prometheus loads them."""
    spec = rule_spec(helm, name)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts(spec))} rules found" in checked.stdout


def test_thresholds_and_waits_are_values(helm: dict[str, Any]) -> None:
    rules = alerts(rule_spec(helm, "thresholds"))
    assert rules["FlowhooksQueueBacklog"]["expr"].endswith(" > 250")
    assert rules["FlowhooksQueueBacklog"]["for"] == "3m"
    assert rules["FlowhooksLaneBacklogOld"]["expr"].endswith(" > 120")
    growing = rules["FlowhooksDeadLettersGrowing"]["expr"]
    assert "[1h]" in growing and growing.endswith(" > 5")
    assert "FlowhooksCircuitOpen" not in rules
    elsewhere = alerts(rule_spec(helm, "elsewhere"))
    assert 'flowhooks_queue_depth{app="receiver"}' in elsewhere["FlowhooksQueueBacklog"]["expr"]
    assert 'up{app="worker"}' in elsewhere["FlowhooksWorkerDown"]["expr"]


def series(metric: str, selector: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f', {k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{selector}{extra}}}", "values": values}


def expect(alert: str, at: str, *fired: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": f} for f in fired]}


WARNING = {"severity": "warning"}
CRITICAL = {"severity": "critical"}
WORKER_LABELS = {"job": "flowhooks-worker-metrics", "namespace": "flowhooks"}

# Each: the series Prometheus would have scraped (one sample a minute), and what the alerts
# say of them at the times given (an empty list: the alert does not fire).
CASES: list[dict[str, Any]] = [
    {  # dead letters: 2 for ten minutes, then 3; a quarter of an hour later that is the norm
        "input_series": [series("flowhooks_dead_letters", WORKER, "2x10 3x40", instance="w1")],
        "alert_rule_test": [
            expect("FlowhooksDeadLettersGrowing", "5m"),
            expect("FlowhooksDeadLettersGrowing", "12m", WARNING),
            expect("FlowhooksDeadLettersGrowing", "40m"),
        ],
    },
    {  # the queue: deep for longer than 15 minutes; a lane's oldest delivery ages a minute a
        # minute; a circuit open, another closed
        "input_series": [
            series("flowhooks_queue_depth", RECEIVER, "5000x40", instance="r1"),
            series("flowhooks_lane_oldest_seconds", WORKER, "0+60x40", action="ops-slack"),
            series("flowhooks_lane_oldest_seconds", WORKER, "30x40", action="oncall"),
            series("flowhooks_circuit_state", WORKER, "2x40", action="ops-slack"),
            series("flowhooks_circuit_state", WORKER, "0x40", action="oncall"),
        ],
        "alert_rule_test": [
            expect("FlowhooksQueueBacklog", "10m"),
            expect("FlowhooksQueueBacklog", "20m", WARNING),
            expect("FlowhooksLaneBacklogOld", "12m"),
            expect("FlowhooksLaneBacklogOld", "25m", {**WARNING, "action": "ops-slack"}),
            expect("FlowhooksCircuitOpen", "10m"),
            expect("FlowhooksCircuitOpen", "20m", {**WARNING, "action": "ops-slack"}),
        ],
    },
    {  # one worker of two down; Redis answers the one that is up; the receivers too
        "input_series": [
            series("up", WORKER, "1x20", instance="w1", pod="worker-1"),
            series("up", WORKER, "0x20", instance="w2", pod="worker-2"),
            series("flowhooks_dead_letters", WORKER, "0x20", instance="w1"),
            series("up", RECEIVER, "1x20", instance="r1", pod="receiver-1"),
            series("flowhooks_webhook_requests_total", RECEIVER, "0+10x20", outcome="accepted"),
        ],
        "alert_rule_test": [
            expect(
                "FlowhooksWorkerDown",
                "10m",
                {**WARNING, **WORKER_LABELS, "instance": "w2", "pod": "worker-2"},
            ),
            expect("FlowhooksWorkersDown", "10m"),
            expect("FlowhooksReceiversDown", "10m"),
            expect("FlowhooksRedisUnreachable", "10m"),
        ],
    },
    {  # no worker and no receiver scraped at all
        "input_series": [series("flowhooks_queue_depth", RECEIVER, "0x20", instance="r1")],
        "alert_rule_test": [
            expect("FlowhooksWorkersDown", "3m"),
            expect("FlowhooksWorkersDown", "10m", CRITICAL),
            expect("FlowhooksReceiversDown", "10m", CRITICAL),
        ],
    },
    {  # a worker that answers scrapes but cannot read Redis (no dead-letter figure)
        "input_series": [series("up", WORKER, "1x20", instance="w1", pod="worker-1")],
        "alert_rule_test": [
            expect("FlowhooksRedisUnreachable", "1m"),
            expect("FlowhooksRedisUnreachable", "5m", CRITICAL),
        ],
    },
    {  # receivers answering 503 for want of Redis
        "input_series": [
            series("up", WORKER, "1x20", instance="w1"),
            series("flowhooks_dead_letters", WORKER, "0x20", instance="w1"),
            series("flowhooks_webhook_requests_total", RECEIVER, "0+5x20", outcome="unavailable"),
        ],
        "alert_rule_test": [expect("FlowhooksRedisUnreachable", "10m", CRITICAL)],
    },
    {  # a worker that loses Redis once a minute, and one that lost it once
        "input_series": [
            series("flowhooks_redis_reconnects_total", WORKER, "0+1x60", instance="w1"),
        ],
        "alert_rule_test": [
            expect("FlowhooksRedisReconnecting", "2m"),
            expect("FlowhooksRedisReconnecting", "30m", WARNING),
        ],
    },
    {
        "input_series": [
            series("flowhooks_redis_reconnects_total", WORKER, "0 1x60", instance="w1"),
        ],
        "alert_rule_test": [expect("FlowhooksRedisReconnecting", "30m")],
    },
    {  # a source whose requests mostly fail verification; another with a rare failure
        "input_series": [
            series(
                "flowhooks_verification_failures_total",
                RECEIVER,
                "0+20x30",
                source="etlworks",
                reason="signature",
            ),
            series(
                "flowhooks_webhook_requests_total",
                RECEIVER,
                "0+20x30",
                source="etlworks",
                outcome="rejected",
            ),
            series(
                "flowhooks_webhook_requests_total",
                RECEIVER,
                "0+30x30",
                source="etlworks",
                outcome="accepted",
            ),
            series(
                "flowhooks_verification_failures_total",
                RECEIVER,
                "0+1x30",
                source="staging",
                reason="signature",
            ),
            series(
                "flowhooks_webhook_requests_total",
                RECEIVER,
                "0+100x30",
                source="staging",
                outcome="accepted",
            ),
        ],
        "alert_rule_test": [
            expect("FlowhooksVerificationFailures", "3m"),
            expect("FlowhooksVerificationFailures", "20m", {**WARNING, "source": "etlworks"}),
        ],
    },
    {  # a config the receiver reloaded and rejected; executions whose webhooks never came
        "input_series": [
            series("flowhooks_config_reloads_total", RECEIVER, "0 0 1x20", outcome="invalid"),
            series("flowhooks_config_reloads_total", WORKER, "0 1 2x20", outcome="ok"),
            series("flowhooks_reconciled_events_total", WORKER, "0 0 0 1x20", source="etlworks"),
        ],
        "alert_rule_test": [
            expect("FlowhooksConfigReloadRejected", "1m"),
            expect("FlowhooksConfigReloadRejected", "4m", WARNING),
            expect("FlowhooksConfigReloadRejected", "30m"),
            expect("FlowhooksWebhooksMissing", "2m"),
            expect("FlowhooksWebhooksMissing", "5m", {**WARNING, "source": "etlworks"}),
        ],
    },
]


def test_each_alert_fires_on_what_it_is_about(helm: dict[str, Any], tmp_path: Path) -> None:
    """`promtool test rules` over the rendered rules (their annotations left out: the checks
    above parse them; here only when an alert fires, and with which labels, is compared)."""
    spec = rule_spec(helm, "all-alerts")
    for rule in alerts(spec).values():
        rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    tests = [{"interval": "1m", **case} for case in CASES]
    unit = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(unit))
    tested = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    covered = {t["alertname"] for case in CASES for t in case["alert_rule_test"]}
    assert covered == set(alerts(spec))
