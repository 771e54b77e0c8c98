"""The script of the chart's ``helm test`` Pod, run as the Pod runs it (``/bin/sh -c``, with the
Pod's environment and the rendered config) against a real receiver, a real Redis and a real
``flowhooks worker`` process: it passes once a worker has routed its event, and fails, saying
so, within its time limit when none does."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis

from tests.deploy.charts import CHART, documents, hooks, of_kind, run_helm
from tests.support import FLOWHOOKS, ServedApp, child_env, make_config, settings

SECRET = "whsec-helm-test-Kq2"


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    _, result = run_helm(CHART, {"defaults": {}})
    return result


@pytest.fixture
def config_file(rendered: dict[str, Any], tmp_path: Path) -> Path:
    [config_map] = of_kind(documents(rendered, "defaults"), "ConfigMap")
    path = tmp_path / "flowhooks.yaml"
    path.write_text(config_map["data"]["flowhooks.yaml"])
    return path


@pytest.fixture
def receiver(redis: Redis, redis_url: str, config_file: Path) -> Iterator[ServedApp]:
    config = make_config(config_file.read_text(), {"ETLWORKS_WEBHOOK_SECRET": SECRET})
    with ServedApp(settings(redis_url), config) as served:
        yield served


def pod_env(rendered: dict[str, Any], **overrides: str) -> dict[str, str]:
    """The test container's environment, with the Secret's variables a cluster would add."""
    [container] = hooks(rendered, "defaults")[0]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return child_env(**{**env, "PATH": path, "ETLWORKS_WEBHOOK_SECRET": SECRET, **overrides})


def run_script(rendered: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    [container] = hooks(rendered, "defaults")[0]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    [script] = container["args"]
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=90, check=False
    )


@pytest.mark.slow
def test_helm_test_passes_once_a_worker_routed_its_event(
    rendered: dict[str, Any], receiver: ServedApp, redis_url: str, config_file: Path
) -> None:
    env = pod_env(
        rendered,
        RECEIVER=receiver.url,
        FLOWHOOKS_CONFIG=str(config_file),
        FLOWHOOKS_REDIS_URL=redis_url,
        TIMEOUT="40",
    )
    worker = subprocess.Popen(
        [*FLOWHOOKS, "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        done = run_script(rendered, env)
    finally:
        worker.terminate()
        worker.wait(30)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"POST {receiver.url}/webhooks/etlworks -> 202")
    assert lines[-1].endswith("of source etlworks is stored and routed")


@pytest.mark.slow
def test_helm_test_fails_when_no_worker_routes_its_event(
    rendered: dict[str, Any], receiver: ServedApp, redis_url: str, config_file: Path
) -> None:
    env = pod_env(
        rendered,
        RECEIVER=receiver.url,
        FLOWHOOKS_CONFIG=str(config_file),
        FLOWHOOKS_REDIS_URL=redis_url,
        TIMEOUT="3",
    )
    done = run_script(rendered, env)
    assert done.returncode == 1
    assert "was not routed within 3s:" in done.stdout
    assert "202" in done.stdout.splitlines()[0]  # stored all the same


def test_helm_test_fails_when_the_receiver_refuses_its_event(
    rendered: dict[str, Any], receiver: ServedApp, redis_url: str, config_file: Path
) -> None:
    """A secret that differs from the receiver's: the 401 is the test's answer."""
    env = pod_env(
        rendered,
        RECEIVER=receiver.url,
        FLOWHOOKS_CONFIG=str(config_file),
        FLOWHOOKS_REDIS_URL=redis_url,
        ETLWORKS_WEBHOOK_SECRET="not-the-receivers",
    )
    done = run_script(rendered, env)
    assert done.returncode == 1
    assert "-> 401" in done.stdout
    assert done.stdout.endswith("the receiver did not accept the test event\n")


def test_the_script_is_posix_shell(rendered: dict[str, Any]) -> None:
    """It runs in the image's /bin/sh (dash on Debian), not bash."""
    [container] = hooks(rendered, "defaults")[0]["spec"]["containers"]
    [script] = container["args"]
    checked = subprocess.run(
        ["/bin/sh", "-n", "-c", script], capture_output=True, text=True, timeout=10, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "[[" not in script and "function " not in script
    assert yaml.safe_load(yaml.safe_dump(container)) == container
