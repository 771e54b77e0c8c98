"""The Helm chart, linted and rendered by Helm's own Go library (helm-sdkpy, in ``.venv-helm``:
``make test`` builds it with Python 3.12+), then read here as YAML.

Nothing is skipped: without ``.venv-helm`` these tests fail and say how to get it."""

import base64
import json
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from config.loader import parse
from config.settings import Settings
from tests.deploy.charts import CHART, ROOT, documents, hooks, of_kind, run_helm

CONFIG_PATH = "/etc/flowhooks/flowhooks.yaml"

SECRET_ENV = {
    "ETLWORKS_WEBHOOK_SECRET": "whsec-v4lue-Pp3Nm9",
    "SLACK_WEBHOOK_URL": "s3cret-slack-Uu1",
}
REDIS_URL = "redis://:r3dis-pa55-Zq8@redis.example.internal:6379/0"
ADMIN_TOKEN = "admin-t0ken-Yx7Lk2"
SECRETS = {"redisUrl": REDIS_URL, "adminToken": ADMIN_TOKEN, "env": SECRET_ENV}
INGRESS_CONTROLLERS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
EVERYTHING: dict[str, Any] = {
    "secrets": SECRETS,
    "secretFiles": {"secretName": "flowhooks-files", "keys": ["pagerduty-key"]},
    "env": {"FLOWHOOKS_LOG_LEVEL": "DEBUG"},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": [
            {"host": "hooks.example.com", "paths": [{"path": "/webhooks/", "pathType": "Prefix"}]}
        ],
        "tls": [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}],
    },
    "receiver": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}},
    "worker": {
        "keda": {
            "enabled": True,
            "redis": {
                "address": "redis.example.internal:6379",
                "passwordSecret": {"name": "redis-auth", "key": "password"},
            },
        }
    },
    "serviceMonitor": {"enabled": True},
    "adminIngress": {
        "enabled": True,
        "className": "nginx",
        "host": "flowhooks-admin.example.com",
        "annotations": {"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"},
        "tls": [{"secretName": "admin-tls", "hosts": ["flowhooks-admin.example.com"]}],
    },
    "networkPolicy": {
        "enabled": True,
        "receiverFrom": [INGRESS_CONTROLLERS],
        "metricsFrom": [MONITORING],
        "redis": {"ports": [6379], "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
        "destinations": {"ports": [443, 587]},
    },
    "dashboard": {"enabled": True, "annotations": {"grafana_folder": "flowhooks"}},
    "prometheusRule": {
        "enabled": True,
        "labels": {"release": "kube-prometheus-stack"},
        "alertLabels": {"team": "data"},
        "alerts": {"webhooksMissing": {"enabled": True}},
    },
}
DIGEST = "sha256:" + "0123456789abcdef" * 4
SENTINELS = "sentinel-0.redis:26379,sentinel-1.redis:26379,sentinel-2.redis:26379"
SENTINEL_URL = f"redis+sentinel://:r3dis-pa55-Zq8@{SENTINELS}/mymaster/0"
SENTINEL: dict[str, Any] = {
    "secrets": {"redisUrl": SENTINEL_URL},
    "redis": {"minReplicas": 1, "waitTimeout": "500ms"},
    "worker": {
        "keda": {
            "enabled": True,
            "redis": {
                "sentinelAddresses": SENTINELS,
                "sentinelMaster": "mymaster",
                "passwordSecret": {"name": "redis-auth", "key": "password"},
                "sentinelPasswordSecret": {"name": "redis-auth", "key": "password"},
            },
        }
    },
}
WEBHOOKS = [{"path": "/webhooks/", "pathType": "Prefix"}]
OTHER_CONFIG = """
sources:
  etlworks:
    verify:
      - hmac: {secrets: ["${ETLWORKS_WEBHOOK_SECRET}"]}
actions:
  console: {log: {}}
routes:
  actions: [console]
  routes:
    - matchers: ['kind="flow.failed"']
      actions: [console]
"""
RENDERS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": EVERYTHING,
    "existing-secret": {"existingSecret": "flowhooks-prod"},
    "other-config": {"config": OTHER_CONFIG},
    "config-as-mapping": {"config": yaml.safe_load(OTHER_CONFIG)},
    "other-image": {"image": {"repository": "registry.example/flowhooks", "tag": "9.9.9"}},
    "long-jobs": {"jobTimeoutSeconds": 1800},
    "worker-hpa": {"worker": {"autoscaling": {"enabled": True}}},
    "sentinel": SENTINEL,
    "digest": {
        "image": {"repository": "registry.example/flowhooks", "tag": "9.9.9", "digest": DIGEST}
    },
    "monitoring-elsewhere": {
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True, "namespace": "grafana"},
        "metricsSelectors": {
            "receiver": 'job="kubernetes-pods", app="flowhooks-receiver"',
            "worker": 'job="kubernetes-pods", app="flowhooks-worker"',
        },
    },
    "no-helm-test": {"helmTest": {"enabled": False}},
    # Refused:
    "typo": {"recevier": {"replicas": 3}},
    "nested-typo": {"worker": {"replica": 3}},
    "two-autoscalers": {
        "worker": {
            "autoscaling": {"enabled": True},
            "keda": {"enabled": True, "redis": {"address": "redis:6379"}},
        }
    },
    "keda-without-redis": {"worker": {"keda": {"enabled": True}}},
    "keda-sentinels-without-master": {
        "worker": {"keda": {"enabled": True, "redis": {"sentinelAddresses": "s:26379"}}}
    },
    "keda-two-redis": {
        "worker": {
            "keda": {
                "enabled": True,
                "redis": {"address": "redis:6379", "sentinelAddresses": "s:26379"},
            }
        }
    },
    "not-a-redis-url": {"secrets": {"redisUrl": "sentinel://s:26379/mymaster"}},
    "negative-replicas": {"redis": {"minReplicas": -1}},
    "admin-without-token": {"adminIngress": {"enabled": True, "host": "admin.example.com"}},
    "admin-without-host": {"adminIngress": {"enabled": True}, "secrets": {"adminToken": "t"}},
    "admin-on-the-webhook-host": {
        "secrets": {"adminToken": "t"},
        "ingress": {"enabled": True, "hosts": [{"host": "hooks.example.com", "paths": WEBHOOKS}]},
        "adminIngress": {"enabled": True, "host": "hooks.example.com"},
    },
    "webhooks-routing-the-admin": {
        "secrets": {"adminToken": "t"},
        "ingress": {
            "enabled": True,
            "hosts": [
                {"host": "hooks.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
        },
        "adminIngress": {"enabled": True, "host": "admin.example.com"},
    },
    "tag-as-digest": {"image": {"digest": "9.9.9"}},
    "unknown-alert": {"prometheusRule": {"alerts": {"deadLetters": {"enabled": False}}}},
    "open-egress-by-mistake": {"networkPolicy": {"redis": {"ports": []}}},
}
REFUSED = {
    "admin-without-token",
    "admin-without-host",
    "admin-on-the-webhook-host",
    "webhooks-routing-the-admin",
    "tag-as-digest",
    "unknown-alert",
    "open-egress-by-mistake",
    "typo",
    "nested-typo",
    "two-autoscalers",
    "keda-without-redis",
    "keda-sentinels-without-master",
    "keda-two-redis",
    "not-a-redis-url",
    "negative-replicas",
}
RENDERED = [name for name in RENDERS if name not in REFUSED]


@pytest.fixture(scope="module")
def helm() -> dict[str, Any]:
    _, result = run_helm(CHART, RENDERS)
    return result


def deployment(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    found: dict[str, Any]
    [found] = [
        doc
        for doc in of_kind(docs, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def pod(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(docs, component)["spec"]["template"]
    return spec


def containers(pod_template: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_template["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def main_container(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    container: dict[str, Any]
    [container] = pod(docs, component)["spec"]["containers"]
    return container


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def config_map(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The config's ConfigMap (a dashboard's is another)."""
    [found] = [c for c in of_kind(docs, "ConfigMap") if "flowhooks.yaml" in c["data"]]
    return found


# Lint and the renders themselves -----------------------------------------------------------


def test_the_chart_lints_clean_in_strict_mode(helm: dict[str, Any]) -> None:
    lint = helm["lint"]
    assert lint["ok"], lint["messages"]
    assert not [m for m in lint["messages"] if m["severity"] in ("warning", "error")]


@pytest.mark.parametrize("name", RENDERED)
def test_each_value_set_renders(helm: dict[str, Any], name: str) -> None:
    kinds = {doc["kind"] for doc in documents(helm, name)}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_schema_and_the_templates_refuse_mistakes(helm: dict[str, Any], name: str) -> None:
    render = helm["renders"][name]
    assert not render["ok"]
    expected = {
        "typo": "recevier",
        "nested-typo": "replica",
        "two-autoscalers": "enable one of them",
        "keda-without-redis": "worker.keda.redis.address is required",
        "keda-sentinels-without-master": "worker.keda.redis.sentinelMaster is required",
        "keda-two-redis": "not both",
        "not-a-redis-url": "redisUrl",
        "negative-replicas": "minReplicas",
        "admin-without-token": "set secrets.adminToken",
        "admin-without-host": "adminIngress.host is required",
        "admin-on-the-webhook-host": "needs a host of its own",
        "webhooks-routing-the-admin": "would route /api or /ui",
        "tag-as-digest": "digest",
        "unknown-alert": "deadLetters",
        "open-egress-by-mistake": "ports",
    }[name]
    assert expected in render["error"]


def test_a_broken_template_fails_the_run(tmp_path: Path) -> None:
    """A template error is reported, not swallowed: by the exit status, the lint and the
    render, with the template's name."""
    chart = tmp_path / "flowhooks"
    shutil.copytree(CHART, chart)
    service = chart / "templates" / "receiver-service.yaml"
    service.write_text(
        service.read_text().replace(
            "{{ .Values.receiver.service.type }}", "{{ .Values.receiver.nosuch.type }}"
        )
    )
    status, result = run_helm(chart, {"defaults": {}})
    assert status != 0
    assert not result["lint"]["ok"]
    assert {"severity": "error", "path": "templates/"} in result["lint"]["messages"]
    render = result["renders"]["defaults"]
    assert not render["ok"]
    assert "receiver-service.yaml" in render["error"] and "nil pointer" in render["error"]


# What every render must hold ---------------------------------------------------------------

STRICT_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize("name", RENDERED)
def test_every_container_runs_locked_down(helm: dict[str, Any], name: str) -> None:
    docs = documents(helm, name)
    for component in ("receiver", "worker"):
        template = pod(docs, component)
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for container in containers(template):
            context = container["securityContext"]
            for key, value in STRICT_CONTAINER.items():
                assert context[key] == value, (component, container["name"], key)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] == "tmp"  # the only writable place
            assert mounts["/etc/flowhooks"] == "config"
            assert env_of(container)["FLOWHOOKS_CONFIG"] == CONFIG_PATH
            assert "limits" in container["resources"] and "requests" in container["resources"]


@pytest.mark.parametrize("name", RENDERED)
def test_both_deployments_check_the_config_before_they_start(
    helm: dict[str, Any], name: str
) -> None:
    docs = documents(helm, name)
    for component in ("receiver", "worker"):
        template = pod(docs, component)
        [check] = template["spec"]["initContainers"]
        assert check["args"] == ["check-config", CONFIG_PATH]
        [main] = template["spec"]["containers"]
        # The same image, environment and secrets as the process it guards.
        assert check["image"] == main["image"]
        assert check["env"] == main["env"] and check["envFrom"] == main["envFrom"]
        assert check["volumeMounts"] == main["volumeMounts"]
        # A new pod that fails its check must not take an old one's place.
        rolling = deployment(docs, component)["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0


@pytest.mark.parametrize("name", RENDERED)
def test_a_worker_outlives_its_longest_job(helm: dict[str, Any], name: str) -> None:
    docs = documents(helm, name)
    timeout = RENDERS[name].get("jobTimeoutSeconds", 300)
    worker = pod(docs, "worker")["spec"]
    assert worker["terminationGracePeriodSeconds"] > timeout
    for component in ("receiver", "worker"):
        assert env_of(main_container(docs, component))["FLOWHOOKS_JOB_TIMEOUT"] == str(timeout)


def test_long_jobs_lengthen_the_grace_period(helm: dict[str, Any]) -> None:
    worker = pod(documents(helm, "long-jobs"), "worker")["spec"]
    assert worker["terminationGracePeriodSeconds"] == 1800 + 30


@pytest.mark.parametrize("name", RENDERED)
def test_probes(helm: dict[str, Any], name: str) -> None:
    docs = documents(helm, name)
    receiver = main_container(docs, "receiver")
    assert receiver["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert receiver["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    [port] = receiver["ports"]
    assert receiver["args"] == ["serve", "--host", "0.0.0.0", "--port", str(port["containerPort"])]
    assert receiver["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    receiver_grace = pod(docs, "receiver")["spec"]["terminationGracePeriodSeconds"]
    assert receiver_grace > 5 + 30  # the preStop pause and uvicorn's graceful shutdown

    worker = main_container(docs, "worker")
    [metrics] = worker["ports"]
    assert worker["args"] == ["worker", "--metrics-port", str(metrics["containerPort"])]
    # /healthz fails once the liveness thread stops beating (tests/workers/test_health.py)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert worker[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_the_image_tag_is_the_app_version_unless_set(helm: dict[str, Any]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]
    for component in ("receiver", "worker"):
        for container in containers(pod(documents(helm, "defaults"), component)):
            assert container["image"] == f"flowhooks:{project['version']}"
        for container in containers(pod(documents(helm, "other-image"), component)):
            assert container["image"] == "registry.example/flowhooks:9.9.9"


def test_a_digest_wins_over_the_tag(helm: dict[str, Any]) -> None:
    docs = documents(helm, "digest")
    images = {c["image"] for comp in ("receiver", "worker") for c in containers(pod(docs, comp))}
    images |= {c["image"] for c in hooks(helm, "digest")[0]["spec"]["containers"]}
    assert images == {f"registry.example/flowhooks@{DIGEST}"}


# The config and the secrets ----------------------------------------------------------------


def checksums(docs: list[dict[str, Any]]) -> set[str]:
    found = {
        pod(docs, c)["metadata"]["annotations"]["checksum/config"] for c in ("receiver", "worker")
    }
    assert len(found) == 1  # one config, one checksum on both
    return found


def test_a_config_change_rolls_both_deployments(helm: dict[str, Any]) -> None:
    default = checksums(documents(helm, "defaults"))
    assert checksums(documents(helm, "other-config")) != default
    assert checksums(documents(helm, "other-image")) == default  # not every change rolls


@pytest.mark.parametrize("name", RENDERED)
def test_the_config_is_mounted_from_the_config_map(helm: dict[str, Any], name: str) -> None:
    docs = documents(helm, name)
    config = config_map(docs)
    for component in ("receiver", "worker"):
        [volume] = [v for v in pod(docs, component)["spec"]["volumes"] if v["name"] == "config"]
        sources = volume["projected"]["sources"]
        assert sources[0]["configMap"] == {
            "name": config["metadata"]["name"],
            "items": [{"key": "flowhooks.yaml", "path": "flowhooks.yaml"}],
        }


@pytest.mark.parametrize("name", ["defaults", "other-config", "config-as-mapping"])
def test_the_rendered_config_loads_with_its_secrets(
    helm: dict[str, Any], name: str, tmp_path: Path
) -> None:
    """What check-config will say in the pod: the mounted file loads, given the secrets."""
    text = config_map(documents(helm, name))["data"]["flowhooks.yaml"]
    config = parse(text, CONFIG_PATH, SECRET_ENV, tmp_path)
    assert list(config.sources) == ["etlworks"]


def test_the_config_as_a_mapping_is_the_same_config(helm: dict[str, Any]) -> None:
    as_text = config_map(documents(helm, "other-config"))["data"]["flowhooks.yaml"]
    as_mapping = config_map(documents(helm, "config-as-mapping"))["data"]["flowhooks.yaml"]
    assert yaml.safe_load(as_text) == yaml.safe_load(as_mapping)


def secret_forms() -> set[str]:
    values = [REDIS_URL, ADMIN_TOKEN, *SECRET_ENV.values()]
    return {form for v in values for form in (v, base64.b64encode(v.encode()).decode())}


def test_secrets_live_in_the_secret_only(helm: dict[str, Any]) -> None:
    docs = documents(helm, "everything")
    [secret] = of_kind(docs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "FLOWHOOKS_REDIS_URL": REDIS_URL,
        "FLOWHOOKS_ADMIN_TOKEN": ADMIN_TOKEN,
        **SECRET_ENV,
    }
    for doc in docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            for form in secret_forms():
                assert form not in text, f"a secret in the {doc['kind']} {doc['metadata']['name']}"
    for component in ("receiver", "worker"):
        for container in containers(pod(docs, component)):
            assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def test_an_existing_secret_replaces_the_chart_made_one(helm: dict[str, Any]) -> None:
    docs = documents(helm, "existing-secret")
    assert of_kind(docs, "Secret") == []
    for component in ("receiver", "worker"):
        template = pod(docs, component)
        assert "checksum/secret" not in template["metadata"]["annotations"]
        for container in containers(template):
            assert container["envFrom"] == [{"secretRef": {"name": "flowhooks-prod"}}]


def test_secret_files_are_mounted_beside_the_config(helm: dict[str, Any]) -> None:
    docs = documents(helm, "everything")
    for component in ("receiver", "worker"):
        [volume] = [v for v in pod(docs, component)["spec"]["volumes"] if v["name"] == "config"]
        assert volume["projected"]["sources"][1]["secret"] == {
            "name": "flowhooks-files",
            "items": [{"key": "pagerduty-key", "path": "secrets/pagerduty-key"}],
        }
        env = env_of(main_container(docs, component))
        assert env["FLOWHOOKS_LOG_LEVEL"] == "DEBUG"


# The optional parts ------------------------------------------------------------------------


def test_the_defaults_leave_the_optional_parts_out(helm: dict[str, Any]) -> None:
    kinds = [doc["kind"] for doc in documents(helm, "defaults")]
    optional = ["Ingress", "HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor"]
    optional += ["NetworkPolicy", "PrometheusRule"]
    for kind in optional:
        assert kind not in kinds
    assert kinds.count("ConfigMap") == 1  # the config; no dashboard
    budgets = {
        d["metadata"]["name"] for d in of_kind(documents(helm, "defaults"), "PodDisruptionBudget")
    }
    assert budgets == {"flowhooks-receiver", "flowhooks-worker"}
    assert deployment(documents(helm, "defaults"), "receiver")["spec"]["replicas"] == 2


def test_everything_on(helm: dict[str, Any]) -> None:
    docs = documents(helm, "everything")
    [ingress] = [
        i for i in of_kind(docs, "Ingress") if i["metadata"]["name"] == "flowhooks-receiver"
    ]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "hooks.example.com"
    [path] = rule["http"]["paths"]
    assert path["path"] == "/webhooks/"
    assert path["backend"]["service"]["port"] == {"name": "http"}
    assert ingress["spec"]["tls"] == [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}]

    [hpa] = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment(docs, "receiver")["metadata"]["name"]
    assert "replicas" not in deployment(docs, "receiver")["spec"]  # the HPA owns it

    [scaled] = of_kind(docs, "ScaledObject")
    assert (
        scaled["spec"]["scaleTargetRef"]["name"] == deployment(docs, "worker")["metadata"]["name"]
    )
    assert scaled["spec"]["minReplicaCount"] >= 1  # the scheduler lives in the workers
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == "rq:queue:flowhooks"
    assert trigger["metadata"]["address"] == "redis.example.internal:6379"
    [auth] = of_kind(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert "replicas" not in deployment(docs, "worker")["spec"]

    monitors = {m["metadata"]["name"]: m for m in of_kind(docs, "ServiceMonitor")}
    assert len(monitors) == 2
    services = of_kind(docs, "Service")
    for monitor in monitors.values():
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        selected = [
            s
            for s in services
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        [service] = selected
        assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]


def test_the_worker_hpa_when_asked(helm: dict[str, Any]) -> None:
    docs = documents(helm, "worker-hpa")
    [hpa] = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment(docs, "worker")["metadata"]["name"]
    assert of_kind(docs, "ScaledObject") == []


def test_the_notes_say_how_to_reach_and_test_it(helm: dict[str, Any]) -> None:
    everything = helm["renders"]["everything"]["notes"]
    assert "https://flowhooks-admin.example.com/ui/" in everything
    assert "helm test flowhooks -n flowhooks --logs" in everything
    assert "helm test" not in helm["renders"]["no-helm-test"]["notes"]
    unscraped = helm["renders"]["monitoring-elsewhere"]["notes"]
    assert "WARNING: the alerts and the dashboard" not in unscraped  # metricsSelectors set
    _, result = run_helm(CHART, {"rules": {"prometheusRule": {"enabled": True}}})
    assert "WARNING: the alerts and the dashboard" in result["renders"]["rules"]["notes"]


def test_the_readme_documents_every_value() -> None:
    """Every value of the chart's own (free-form maps aside) has its row in the README."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()

    def paths(value: Any, node: dict[str, Any], path: str) -> Iterator[str]:
        if path.endswith("resources") or not (
            isinstance(value, dict) and node.get("additionalProperties") is False
        ):
            yield path
            return
        for key, sub in value.items():
            yield from paths(sub, node["properties"][key], f"{path}.{key}".lstrip("."))

    missing = [p for p in paths(values, schema, "") if f"| `{p}` |" not in readme]
    assert not missing, missing


def test_the_notes_say_what_is_missing(helm: dict[str, Any]) -> None:
    defaults = helm["renders"]["defaults"]["notes"]
    assert "WARNING: no Redis is set" in defaults
    assert "kubectl -n flowhooks port-forward svc/flowhooks-receiver 8000:80" in defaults
    assert "-c check-config" in defaults
    everything = helm["renders"]["everything"]["notes"]
    assert "WARNING" not in everything
    assert "https://hooks.example.com/webhooks/<source>" in everything
    assert "the Secret flowhooks-prod" in helm["renders"]["existing-secret"]["notes"]


def test_the_only_hook_is_helm_test(helm: dict[str, Any]) -> None:
    """The config check is an init container, not a hook (see the chart README); `helm test`
    is the one hook, and only when asked."""
    for name in RENDERED:
        paths = [h["path"] for h in helm["renders"][name]["hooks"]]
        expected = [] if name == "no-helm-test" else ["flowhooks/templates/tests/test-event.yaml"]
        assert paths == expected, name


# A Sentinel-managed Redis ----------------------------------------------------------------


def test_a_sentinel_url_and_replicated_acknowledgements(helm: dict[str, Any]) -> None:
    docs = documents(helm, "sentinel")
    [secret] = of_kind(docs, "Secret")
    url = base64.b64decode(secret["data"]["FLOWHOOKS_REDIS_URL"]).decode()
    assert url == SENTINEL_URL
    assert Settings(redis_url=url).redis_location == f"sentinel {SENTINELS}/mymaster/0"
    for component in ("receiver", "worker"):
        for container in containers(pod(docs, component)):
            env = env_of(container)
            assert env["FLOWHOOKS_REDIS_MIN_REPLICAS"] == "1"
            assert env["FLOWHOOKS_REDIS_WAIT_TIMEOUT"] == "500ms"
    for container in containers(pod(documents(helm, "defaults"), "receiver")):
        assert "FLOWHOOKS_REDIS_MIN_REPLICAS" not in env_of(container)
        assert "FLOWHOOKS_REDIS_WAIT_TIMEOUT" not in env_of(container)


def test_keda_asks_the_sentinels_for_the_primary(helm: dict[str, Any]) -> None:
    docs = documents(helm, "sentinel")
    [scaled] = of_kind(docs, "ScaledObject")
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis-sentinel"
    assert trigger["metadata"] == {
        "addresses": SENTINELS,
        "sentinelMaster": "mymaster",
        "databaseIndex": "0",
        "enableTLS": "false",
        "listName": "rq:queue:flowhooks",
        "listLength": "50",
        "activationListLength": "0",
    }
    [auth] = of_kind(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "redis-auth", "key": "password"},
        {"parameter": "sentinelPassword", "name": "redis-auth", "key": "password"},
    ]


# The admin Ingress and the NetworkPolicies --------------------------------------------------


def test_the_admin_pages_have_an_ingress_of_their_own(helm: dict[str, Any]) -> None:
    docs = documents(helm, "everything")
    ingresses = {i["metadata"]["name"]: i for i in of_kind(docs, "Ingress")}
    admin = ingresses["flowhooks-admin"]
    assert admin["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"
    }
    [rule] = admin["spec"]["rules"]
    assert rule["host"] == "flowhooks-admin.example.com"
    routed = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert routed == {("/api", "Prefix"), ("/ui", "Prefix")}
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {
            "name": "flowhooks-receiver",
            "port": {"name": "http"},
        }
    assert admin["spec"]["tls"] == [
        {"secretName": "admin-tls", "hosts": ["flowhooks-admin.example.com"]}
    ]
    # the webhook Ingress keeps its own annotations (none) and routes /webhooks/ only
    webhooks = ingresses["flowhooks-receiver"]
    assert "annotations" not in webhooks["metadata"]
    paths = [p["path"] for r in webhooks["spec"]["rules"] for p in r["http"]["paths"]]
    assert paths == ["/webhooks/"]


def policies(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = of_kind(docs, "NetworkPolicy")
    return {p["metadata"]["labels"]["app.kubernetes.io/component"]: p["spec"] for p in found}


def test_network_policies(helm: dict[str, Any]) -> None:
    docs = documents(helm, "everything")
    by_component = policies(docs)
    assert set(by_component) == {"receiver", "worker"}
    for component, spec in by_component.items():
        template = pod(docs, component)
        assert spec["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        assert spec["policyTypes"] == ["Ingress", "Egress"]
    test_pod = hooks(helm, "everything")[0]
    [receiver_in] = by_component["receiver"]["ingress"]
    assert receiver_in["ports"] == [{"port": "http", "protocol": "TCP"}]
    ingress_controllers, helm_test = receiver_in["from"]
    assert ingress_controllers == INGRESS_CONTROLLERS
    assert helm_test["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items()
    [worker_in] = by_component["worker"]["ingress"]
    assert worker_in == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [MONITORING]}

    def egress(component: str) -> list[tuple[list[int], list[Any]]]:
        rules = by_component[component]["egress"]
        return [([p["port"] for p in r["ports"]], r.get("to", [])) for r in rules]

    dns: tuple[list[int], list[Any]] = ([53, 53], [])
    redis: tuple[list[int], list[Any]] = ([6379], [{"ipBlock": {"cidr": "10.20.0.0/16"}}])
    assert egress("receiver") == [dns, redis]  # the receiver talks to Redis only
    assert egress("worker") == [dns, redis, ([443, 587], [])]


def test_network_policies_leave_egress_open_to_443_only_by_default() -> None:
    values = {"networkPolicy": {"enabled": True}}
    _, result = run_helm(CHART, {"policies": values})
    by_component = policies(documents(result, "policies"))
    assert "from" not in by_component["receiver"]["ingress"][0]  # webhooks from anywhere
    ports = [[p["port"] for p in r["ports"]] for r in by_component["worker"]["egress"]]
    assert ports == [[53, 53], [6379, 26379], [443]]
    assert all("to" not in r for r in by_component["worker"]["egress"])


# helm test ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["defaults", "everything", "existing-secret", "other-config"])
def test_helm_test_runs_as_the_processes_do(helm: dict[str, Any], name: str) -> None:
    [test_pod] = hooks(helm, name)
    assert test_pod["kind"] == "Pod"
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = test_pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    receiver = main_container(documents(helm, name), "receiver")
    assert container["image"] == receiver["image"]
    assert container["envFrom"] == receiver["envFrom"]
    assert container["volumeMounts"] == receiver["volumeMounts"]
    for key, value in STRICT_CONTAINER.items():
        assert container["securityContext"][key] == value
    env = env_of(container)
    assert env["FLOWHOOKS_CONFIG"] == CONFIG_PATH
    assert env["RECEIVER"] == "http://flowhooks-receiver.flowhooks.svc:80"
    assert env["SOURCE"] == "etlworks"  # the config's only source
    assert env["EVENT"] == "FLOW_SUCCESS"
    assert env["FLOW_ID"] == "999999999"
    assert spec["activeDeadlineSeconds"] > int(env["TIMEOUT"])


# The Kubernetes schemas ---------------------------------------------------------------------

# Custom resources, whose schemas come with their operators: what they hold is checked above
# (ServiceMonitor, ScaledObject, TriggerAuthentication) and in test_monitoring.py
# (PrometheusRule, by Prometheus' promtool).
CUSTOM = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}
KUBERNETES = ["1.25", kubernetes_validate.utils.latest_version()]
"""The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest whose
schemas kubernetes-validate has."""


@pytest.mark.parametrize("name", RENDERED)
def test_every_object_passes_the_kubernetes_schemas(helm: dict[str, Any], name: str) -> None:
    """Strict: a field the schema does not know is an error, as `kubectl apply` would say."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBERNETES[0]}.0-0"
    checked = 0
    for doc in [*documents(helm, name), *hooks(helm, name)]:
        if doc["kind"] in CUSTOM:
            continue
        for version in KUBERNETES:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(
                    f"{doc['kind']} {doc['metadata']['name']} ({version}): {where}: {exc.message}"
                )
        checked += 1
    assert checked >= 6
