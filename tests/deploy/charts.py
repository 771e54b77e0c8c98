"""The chart and Helm's library, for the chart tests: :func:`run_helm` lints and renders
``helm/flowhooks`` in ``.venv-helm`` (:mod:`tests.deploy.helm_run`), and the helpers read what
it rendered."""

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "flowhooks"
RUNNER = Path(__file__).with_name("helm_run.py")
HELM_PYTHON = ROOT / ".venv-helm" / "bin" / "python"


def run_helm(chart: Path, renders: Mapping[str, object]) -> tuple[int, dict[str, Any]]:
    """Lint ``chart`` and render it with each value set, in ``.venv-helm``: the exit status
    and the result of :mod:`tests.deploy.helm_run`."""
    if not HELM_PYTHON.exists():
        pytest.fail(
            f"{HELM_PYTHON} is missing: `make test` makes it (Python 3.12+ with helm-sdkpy); "
            "set HELM_PYTHON=/path/to/python3.12 if make cannot find one",
            pytrace=False,
        )
    request = json.dumps({"chart": str(chart), "renders": renders})
    done = subprocess.run(
        [str(HELM_PYTHON), str(RUNNER)],
        input=request,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    try:
        result = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"helm_run.py said nothing readable:\n{done.stdout}\n{done.stderr}")
    return done.returncode, result


def documents(helm: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """The objects of one render (it must have succeeded)."""
    render = helm["renders"][name]
    assert render["ok"], f"{name}: {render['error']}"
    return [doc for doc in yaml.safe_load_all(render["manifest"]) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def hooks(helm: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """The hook objects of one render (``helm test``'s Pod)."""
    render = helm["renders"][name]
    assert render["ok"], f"{name}: {render['error']}"
    return [doc for hook in render["hooks"] for doc in yaml.safe_load_all(hook["manifest"]) if doc]
