"""The ready configs of ``config/examples``: each passes ``flowhooks check-config`` (run as a
user runs it, with the variables its header names and no other), and routes the sample
Etlworks payload with ``flowhooks routes test``."""

import re
from pathlib import Path

import pytest

from tests.support import FLOWHOOKS, child_env, run_process

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
SAMPLE = EXAMPLES / "etlworks-flow-failed.json"
VALUES = {
    "ETLWORKS_WEBHOOK_SECRET": "webhook-secret-for-tests",
    "ETLWORKS_API_KEY": "api-key-for-tests",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/for-tests",
    "PAGERDUTY_ROUTING_KEY": "routing-key-for-tests",
    "OPSGENIE_API_KEY": "opsgenie-key-for-tests",
    "TEAMS_WEBHOOK_URL": "https://example.test/workflows/for-tests/invoke?sig=for-tests",
}


def needed(config: Path) -> list[str]:
    """The variables the file's header says it needs ("Needs A, B and C.")."""
    header = " ".join(
        line.lstrip("# ") for line in config.read_text().splitlines() if line[:1] == "#"
    )
    found = re.search(r"Needs ([A-Z_, ]+?)(?: \(|\.)", header.replace(" and ", ", "))
    assert found, f"{config.name}: its header names no variables"
    return [name.strip() for name in found.group(1).split(",")]


def test_there_are_examples() -> None:
    names = [c.stem for c in CONFIGS]
    assert names == [
        "chain",
        "circuit-breaker",
        "expect",
        "inhibit",
        "join",
        "opsgenie",
        "pagerduty-incidents",
        "reconcile",
        "slack-alerts",
        "teams",
    ]
    listed = (EXAMPLES / "README.md").read_text()
    assert all(f"`{c.name}`" in listed for c in CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_each_passes_check_config_with_the_variables_it_names(config: Path) -> None:
    names = needed(config)
    assert sorted(names) == sorted(set(re.findall(r"\$\{(\w+)\}", config.read_text())))
    env = child_env(**{name: VALUES[name] for name in names})
    checked = run_process([*FLOWHOOKS, "check-config", str(config)], env)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout.startswith(f"{config}: ok (1 source(s): ")

    # one variable fewer: named, with the line of the key that needs it
    del env[names[-1]]
    refused = run_process([*FLOWHOOKS, "check-config", str(config)], env)
    assert refused.returncode != 0
    assert f"environment variable {names[-1]} is not set" in refused.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_each_routes_the_sample_payload(config: Path, redis_url: str) -> None:
    env = child_env(FLOWHOOKS_CONFIG=str(config), FLOWHOOKS_REDIS_URL=redis_url, **VALUES)
    source = re.search(r"^sources:\n  ([\w.-]+):", config.read_text(), re.MULTILINE)
    assert source
    argv = [*FLOWHOOKS, "routes", "test", "--event", str(SAMPLE), "--source", source.group(1)]
    tested = run_process(argv, env)
    assert tested.returncode == 0, tested.stderr
    assert "matched routes:" in tested.stdout
    assert "Traceback" not in tested.stderr
