"""Lint and render a Helm chart with Helm's own Go library (the ``helm-sdkpy`` wheel), for the
chart tests. It runs in ``.venv-helm`` (Python 3.12+, which helm-sdkpy needs), never in the
project's venv: ``python helm_run.py < request.json > result.json``.

The request is ``{"chart": PATH, "renders": {NAME: VALUES, ...}}``; the result
``{"lint": {"ok", "messages"}, "renders": {NAME: {"ok", "manifest", "hooks", "notes", "error"}}}``;
the exit status 0 only if the lint and every render succeeded.

**Lint** is ``helm lint --strict``: helm-sdkpy has no strict switch, so any message of
severity warning or above fails it here. (helm-sdkpy hands back each message's path and
severity, not its text: the renders below say what is wrong.)

**Render** is ``helm template`` by way of ``helm install``, the only action helm-sdkpy offers
that renders: its install has no dry run, so it installs into a stand-in for the Kubernetes
API on loopback that answers discovery, has none of the objects and accepts every one it is
sent. Helm keeps the release in memory (``HELM_DRIVER=memory``) and reads and writes nothing
under the home directory (``HELM_*_HOME`` point at a temporary folder). Values are checked
against ``values.schema.json`` as Helm does on install. (Helm validates a hook it runs against
the API's OpenAPI documents, which the stand-in does not serve: an install hook would fail
here. The chart's one hook is ``helm test``'s, which an install renders and does not run: it is
handed back with the release's hooks.)
"""

import asyncio
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SEVERITIES = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
WARNING = 2
NAMESPACE = "flowhooks"
RUN_FOLDER = "HELM_RUN_FOLDER"

# (group/version, resource, kind, namespaced) of every kind the chart may render.
RESOURCES = [
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "secrets", "Secret", True),
    ("v1", "services", "Service", True),
    ("v1", "serviceaccounts", "ServiceAccount", True),
    ("v1", "pods", "Pod", True),
    ("v1", "namespaces", "Namespace", False),
    ("apps/v1", "deployments", "Deployment", True),
    ("batch/v1", "jobs", "Job", True),
    ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("networking.k8s.io/v1", "ingresses", "Ingress", True),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True),
    ("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor", True),
    ("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule", True),
    ("keda.sh/v1alpha1", "scaledobjects", "ScaledObject", True),
    ("keda.sh/v1alpha1", "triggerauthentications", "TriggerAuthentication", True),
]


def _discovery(path: str) -> dict[str, Any] | None:
    """What the API server answers to a discovery request, or ``None`` if it is not one."""
    if path == "/version":
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"]}
    versions = sorted({gv for gv, *_ in RESOURCES if "/" in gv})
    if path == "/apis":
        groups = []
        for gv in versions:
            group, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    for gv in ["v1", *versions]:
        if path == ("/api/v1" if gv == "v1" else f"/apis/{gv}"):
            listed = [
                {
                    "name": name,
                    "singularName": kind.lower(),
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
                for group_version, name, kind, namespaced in RESOURCES
                if group_version == gv
            ]
            return {"kind": "APIResourceList", "groupVersion": gv, "resources": listed}
    return None


class KubernetesStandIn(BaseHTTPRequestHandler):
    """An API server with no objects that accepts every object it is sent."""

    def do_GET(self) -> None:
        found = _discovery(self.path.split("?")[0])
        if found is None:
            self._reply(404, {"kind": "Status", "status": "Failure", "reason": "NotFound"})
        else:
            self._reply(200, found)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            sent = json.loads(body)
        except ValueError:  # protobuf: nothing the chart renders is sent that way
            self._reply(415, {"kind": "Status", "status": "Failure", "reason": "Unsupported"})
            return
        self._reply(201, sent)

    def do_PUT(self) -> None:
        self.do_POST()

    def do_PATCH(self) -> None:
        self.do_POST()

    def do_DELETE(self) -> None:
        self._reply(200, {"kind": "Status", "status": "Success"})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def kubernetes(folder: Path) -> Iterator[Path]:
    """The stand-in served on loopback; a kubeconfig that points at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), KubernetesStandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = folder / "kubeconfig"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stand-in", "cluster": {"server": url}}],
                "users": [{"name": "tests", "user": {}}],
                "contexts": [
                    {
                        "name": "stand-in",
                        "context": {"cluster": "stand-in", "user": "tests", "namespace": NAMESPACE},
                    }
                ],
                "current-context": "stand-in",
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()


def lint(helm: Any, config: Any, chart: str) -> dict[str, Any]:
    result = asyncio.run(helm.Lint(config).run(chart))
    messages = [
        {"severity": SEVERITIES.get(m["Severity"], str(m["Severity"])), "path": m["Path"]}
        for m in result.get("Messages") or []
    ]
    worst = max((m["Severity"] for m in result.get("Messages") or []), default=0)
    return {"ok": worst < WARNING and not result.get("Errors"), "messages": messages}


def render(helm: Any, config: Any, chart: str, values: dict[str, Any]) -> dict[str, Any]:
    try:
        release = asyncio.run(
            helm.Install(config).run("flowhooks", chart, values=values or None, wait=False)
        )
    except helm.HelmError as exc:
        return {"ok": False, "error": str(exc), "manifest": "", "hooks": [], "notes": ""}
    hooks = [
        {"path": h.get("path"), "manifest": h.get("manifest")} for h in release.get("hooks") or []
    ]
    return {
        "ok": True,
        "error": None,
        "manifest": release.get("manifest", ""),
        "hooks": hooks,
        "notes": (release.get("info") or {}).get("notes", ""),
    }


def main() -> int:
    """Run :func:`run` in a child whose environment has Helm's settings: the Go runtime reads
    the environment the process started with, not what ``os.environ`` says later."""
    with tempfile.TemporaryDirectory(prefix="helm-run-") as temp:
        env = {**os.environ, "HELM_DRIVER": "memory", RUN_FOLDER: temp}
        for name in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{name}_HOME"] = str(Path(temp) / name.lower())
        return subprocess.run([sys.executable, __file__], env=env, check=False).returncode


def run(folder: Path) -> int:
    """Answer the request on stdin; the exit status."""
    request = json.load(sys.stdin)
    chart = str(Path(request["chart"]).resolve())
    helm = importlib.import_module("helm_sdkpy")
    results: dict[str, Any] = {"renders": {}}
    with kubernetes(folder) as kubeconfig:
        results["lint"] = lint(helm, helm.Configuration(NAMESPACE, str(kubeconfig)), chart)
        for name, values in request.get("renders", {}).items():
            # A configuration of its own (an empty release store): each render a fresh install.
            config = helm.Configuration(NAMESPACE, str(kubeconfig))
            results["renders"][name] = render(helm, config, chart, values)
    json.dump(results, sys.stdout)
    ok = results["lint"]["ok"] and all(r["ok"] for r in results["renders"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(Path(os.environ[RUN_FOLDER])) if RUN_FOLDER in os.environ else main())
