"""The Etlworks simulator, driven over HTTP: flows run to their scripted outcomes and send
webhooks that flowhooks' own verification and normalization accept."""

import hashlib
import hmac
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from config.schema import HmacCheck, VerifyStep
from receiver.normalize import ETL_HEADERS, normalize
from receiver.signatures import Rejected, compile_checks
from tests.etlworks.simulator import API_KEY, Flow, Simulator, Stall, load, serve_simulator
from tests.support import (
    ENV,
    HMAC_CONFIG,
    ServedApp,
    child_env,
    free_port,
    make_config,
    settings,
    wait_until,
)
from tests.workers.sinks.standins import HttpStandIn, Recorded, Reply

SECRET = "sim-webhook-secret-Tz6Hb1Kq"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim(etlworks_sim: Simulator) -> Simulator:
    etlworks_sim.add_flow(101, "warehouse-load", duration=60, outcomes=["error", "success"])
    etlworks_sim.add_flow(202, "marts", duration=5, tags=["nightly", "marts"])
    return etlworks_sim


def api(sim: Simulator, method: str, path: str, body: Any = None, key: str = API_KEY) -> Any:
    """One call to the simulated API; the decoded answer, or the status for an error."""
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.request(method, sim.url + path, json=body, headers=headers, verify=False)
    return response.json() if response.is_success else response.status_code


def register(sim: Simulator, url: str, events: list[str], **filters: list[Any]) -> int:
    hook = {"url": url, "secret": SECRET, "events": events, **filters}
    answer = api(sim, "POST", "/v1/webhooks", hook)
    assert isinstance(answer, dict) and "secret" not in answer
    return int(answer["id"])


def run(sim: Simulator, flow_id: int, params: dict[str, str] | None = None) -> int:
    answer = api(sim, "POST", f"/v1/flows/{flow_id}/run", params or {})
    assert answer["status"] == "queued"
    return int(answer["auditId"])


def settle(sim: Simulator) -> None:
    assert wait_until(sim.settled, 10, interval=0.01), "runs or deliveries still going"


def canonical(request: Recorded) -> Any:
    """The webhook as the receiver takes it: verified against the secret, then normalized."""
    headers = {name: [value] for name, value in request.headers.items()}
    check = VerifyStep(hmac=HmacCheck(secrets=[SecretStr(SECRET)]))
    assert compile_checks([check]).verify(headers, request.body, 0.0) == ["hmac: secret #1"]
    etl = {s: v[0] for s in ETL_HEADERS if (v := headers.get(f"x-etl-webhook-{s}"))}
    received = datetime.now(UTC)
    return normalize(
        "etl", request.json(), etl_headers=etl, body=request.body, received_at=received
    )


def test_runs_end_with_the_scripted_outcomes_in_turn(sim: Simulator) -> None:
    audit_ids = [run(sim, 101) for _ in range(3)]
    settle(sim)
    assert [sim.run(a).status for a in audit_ids] == ["error", "success", "success"]
    records = api(sim, "GET", "/v1/executions/101")
    assert [r["auditId"] for r in records] == audit_ids[::-1]
    first = api(sim, "GET", f"/v1/executions/101?auditId={audit_ids[0]}")
    assert (first["status"], first["error"]) == ("error", sim.flows[101].error)
    assert first["durationMs"] == 60_000  # simulated time: a minute, in well under a second


def test_a_finished_run_sends_a_signed_webhook_that_normalizes(
    sim: Simulator, standin: HttpStandIn
) -> None:
    hook_id = register(sim, standin.url("/webhooks/etl"), ["FLOW_FAILED", "FLOW_SUCCESS"])
    audit_id = run(sim, 101, {"runDate": "2026-05-09"})
    settle(sim)
    [request] = standin.requests
    assert request.path == "/webhooks/etl"
    signature = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-etl-webhook-signature"] == signature
    event = canonical(request)
    assert event.id == request.headers["x-etl-webhook-event-id"] == request.json()["eventId"]
    assert (event.event, event.kind, event.status) == ("FLOW_FAILED", "flow.failed", "error")
    assert (event.flow_id, event.flow_name, event.audit_id) == (
        "101",
        "warehouse-load",
        str(audit_id),
    )
    assert (event.webhook_id, event.entity_id) == (str(hook_id), str(audit_id))
    assert event.params == {"runDate": "2026-05-09"}
    assert event.error == sim.flows[101].error
    assert event.duration_ms == 60_000
    assert event.started_at is not None and event.finished_at is not None
    assert event.entity_url == f"{sim.url}/v1/flows/101?auditId={audit_id}"
    [delivery] = sim.deliveries
    assert (delivery.webhook_id, delivery.event, delivery.status) == (hook_id, "FLOW_FAILED", 200)


def test_a_success_normalizes_as_flow_succeeded(sim: Simulator, standin: HttpStandIn) -> None:
    register(sim, standin.url(), ["FLOW_FAILED", "FLOW_SUCCESS"])
    audit_id = run(sim, 202)
    settle(sim)
    event = canonical(standin.requests[0])
    assert (event.kind, event.status, event.audit_id) == (
        "flow.succeeded",
        "success",
        str(audit_id),
    )
    assert (event.tags, event.error) == (["nightly", "marts"], None)


def test_another_secret_does_not_verify(sim: Simulator, standin: HttpStandIn) -> None:
    register(sim, standin.url(), ["FLOW_SUCCESS"])
    run(sim, 202)
    settle(sim)
    [request] = standin.requests
    headers = {name: [value] for name, value in request.headers.items()}
    check = VerifyStep(hmac=HmacCheck(secrets=[SecretStr("another-secret")]))
    with pytest.raises(Rejected):
        compile_checks([check]).verify(headers, request.body, 0.0)


def test_webhook_filters_are_honoured(sim: Simulator, standin: HttpStandIn) -> None:
    everything = ["FLOW_STARTED", "FLOW_FAILED", "FLOW_SUCCESS"]
    register(sim, standin.url("/all"), everything)
    register(sim, standin.url("/failures"), ["FLOW_FAILED"])
    register(sim, standin.url("/only-101"), ["FLOW_FAILED", "FLOW_SUCCESS"], flowIncludes=[101])
    register(sim, standin.url("/no-warehouse"), everything, flowExcludes=["warehouse-*"])
    register(sim, standin.url("/marts-by-name"), ["FLOW_SUCCESS"], flowIncludes=["marts"])
    run(sim, 101)
    run(sim, 202)
    settle(sim)
    got = sorted((r.path, r.json()["eventType"], r.json()["flowId"]) for r in standin.requests)
    assert got == [
        ("/all", "FLOW_FAILED", 101),
        ("/all", "FLOW_STARTED", 101),
        ("/all", "FLOW_STARTED", 202),
        ("/all", "FLOW_SUCCESS", 202),
        ("/failures", "FLOW_FAILED", 101),
        ("/marts-by-name", "FLOW_SUCCESS", 202),
        ("/no-warehouse", "FLOW_STARTED", 202),
        ("/no-warehouse", "FLOW_SUCCESS", 202),
        ("/only-101", "FLOW_FAILED", 101),
    ]
    started = next(r for r in standin.requests if r.json()["eventType"] == "FLOW_STARTED")
    assert canonical(started).kind == "flow.running"


def test_a_refused_webhook_is_sent_again(sim: Simulator, standin: HttpStandIn) -> None:
    standin.reset(Reply(503))
    register(sim, standin.url(), ["FLOW_SUCCESS"])
    run(sim, 202)
    settle(sim)
    assert [(d.attempt, d.status) for d in sim.deliveries] == [(1, 503), (2, 200)]
    first, second = standin.requests
    assert first.body == second.body
    assert first.headers["x-etl-webhook-event-id"] == second.headers["x-etl-webhook-event-id"]


def test_a_run_waits_for_finish_when_it_has_no_duration(sim: Simulator) -> None:
    sim.add_flow(303, "manual", duration=None)
    audit_id = run(sim, 303)
    assert api(sim, "GET", f"/v1/executions/303?auditId={audit_id}")["status"] in (
        "queued",
        "running",
    )
    sim.finish(audit_id, "canceled")
    settle(sim)
    assert api(sim, "GET", f"/v1/executions/303?auditId={audit_id}")["status"] == "canceled"


def test_scripted_answers_come_first_per_path_then_per_route(sim: Simulator) -> None:
    sim.script("POST /v1/flows/{id}/run", [503, (429, {"Retry-After": "1"}), None])
    sim.script("POST /v1/flows/202/run", [(500, {}, {"oops": True})])
    assert api(sim, "POST", "/v1/flows/202/run", {}) == 500
    assert api(sim, "POST", "/v1/flows/202/run", {}) == 503
    response = httpx.post(f"{sim.url}/v1/flows/101/run", json={})  # no key: still scripted
    assert (response.status_code, response.headers["retry-after"]) == (429, "1")
    assert isinstance(api(sim, "POST", "/v1/flows/101/run", {}), dict)
    assert isinstance(api(sim, "POST", "/v1/flows/101/run", {}), dict)
    assert sim.count("POST /v1/flows/{id}/run") == 5
    assert (sim.count("POST /v1/flows/101/run"), sim.count("POST /v1/flows/202/run")) == (3, 2)
    assert (len(sim.runs(101)), len(sim.runs(202))) == (2, 0)


def test_a_stall_delays_the_answer_then_handles_it(sim: Simulator) -> None:
    sim.script("GET /v1/flows/{id}", [Stall(0.05, then=(504, {"X-Gateway": "yes"})), Stall(0.05)])
    assert api(sim, "GET", "/v1/flows/202") == 504
    assert api(sim, "GET", "/v1/flows/202") == {
        "id": 202,
        "name": "marts",
        "tags": ["nightly", "marts"],
    }
    assert sim.count("GET /v1/flows/{id}") == 2


def test_auth_unknown_ids_and_bad_bodies(sim: Simulator) -> None:
    assert api(sim, "POST", "/v1/flows/101/run", {}, key="wrong") == 401
    assert httpx.post(f"{sim.url}/v1/flows/101/run", json={}).status_code == 401
    assert api(sim, "POST", "/v1/flows/999/run", {}) == 404
    assert api(sim, "POST", "/v1/flows/abc/run", {}) == 404
    assert api(sim, "GET", "/v1/executions/999") == 404
    assert api(sim, "GET", "/v1/executions/101?auditId=1") == 404
    assert api(sim, "POST", "/v1/flows/101/run", {"nested": {"a": 1}}) == 400
    assert api(sim, "POST", "/v1/flows/101/run", ["a"]) == 400
    assert api(sim, "POST", "/v1/webhooks", {"url": "http://x", "events": []}) == 400
    assert sim.runs() == [] and sim.webhooks == []
    assert sim.count("POST /v1/flows/{id}/run") == 6


def test_schedules_switch_and_are_inspectable(sim: Simulator) -> None:
    sim.schedules.update({7: True, 8: False})
    assert api(sim, "PUT", "/v1/schedules/7/disable") == {"id": 7, "enabled": False}
    assert api(sim, "PUT", "/v1/schedules/8/enable") == {"id": 8, "enabled": True}
    assert sim.schedules == {7: False, 8: True}
    assert api(sim, "PUT", "/v1/schedules/9/enable") == 404
    assert api(sim, "PUT", "/v1/schedules/7/enable", key="wrong") == 401
    assert sim.schedules == {7: False, 8: True}


def test_flows_and_webhooks_are_listed(sim: Simulator) -> None:
    register(sim, "http://127.0.0.1:9/in", ["FLOW_FAILED"], flowIncludes=[101, "marts"])
    assert [f["id"] for f in api(sim, "GET", "/v1/flows")] == [101, 202]
    [hook] = api(sim, "GET", "/v1/webhooks")
    assert hook["flowIncludes"] == ["101", "marts"] and "secret" not in hook


def test_outcomes_must_be_known() -> None:
    with pytest.raises(ValueError, match="outcomes must be some of"):
        Flow(1, "bad", outcomes=["exploded"])


def test_the_real_receiver_accepts_the_webhooks(sim: Simulator, redis_url: str) -> None:
    config = make_config(HMAC_CONFIG)
    with ServedApp(settings(redis_url), config) as receiver:
        hook = {"url": f"{receiver.url}/webhooks/etl", "secret": ENV["SECRET"]}
        answer = api(sim, "POST", "/v1/webhooks", {**hook, "events": ["FLOW_FAILED"]})
        assert isinstance(answer, dict)
        run(sim, 101)
        settle(sim)
    [delivery] = sim.deliveries
    assert (delivery.event, delivery.status) == ("FLOW_FAILED", 202)


def test_loads_from_yaml_and_serves_from_the_command_line(tmp_path: Path) -> None:
    spec = tmp_path / "flows.yaml"
    spec.write_text(
        "api_key: ${DEMO_KEY}\n"
        "speed: 60\n"
        "flows:\n"
        "  - {id: 101, name: warehouse-load, duration: 5, outcomes: [error, success]}\n"
        "schedules: {7: true}\n"
        "webhooks:\n"
        "  - {url: 'http://127.0.0.1:9/in', secret: s, events: [FLOW_FAILED]}\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMO_KEY", "demo-key")
        loaded = load(spec)
    assert (loaded.api_key, loaded.speed, loaded.schedules) == ("demo-key", 60.0, {7: True})
    assert loaded.flows[101].outcomes == ["error", "success"]
    assert [h.url for h in loaded.webhooks] == ["http://127.0.0.1:9/in"]

    port = free_port()
    argv = [sys.executable, "-m", "tests.etlworks.simulator", "--port", str(port)]
    started = int(time.time())
    child = subprocess.Popen(
        [*argv, "--flows", str(spec)],
        cwd=ROOT,
        env=child_env(DEMO_KEY="demo-key"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/rest/v1/flows/101"
        headers = {"Authorization": "Bearer demo-key"}

        def answers() -> bool:
            try:
                return httpx.get(url, headers=headers).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(answers, 20, interval=0.1)
        assert json.loads(httpx.get(url, headers=headers).content)["name"] == "warehouse-load"
        # Audit ids no earlier run of it gave out, as a Redis that outlives it may hold those.
        ran = httpx.post(f"{url}/run", json={}, headers=headers).json()
        assert ran["auditId"] >= started
    finally:
        child.terminate()
        child.wait(10)


def test_the_example_flows_load() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ETLWORKS_API_KEY", "demo-key")
        patch.setenv("ETLWORKS_WEBHOOK_SECRET", "demo-secret")
        loaded = load(Path(__file__).with_name("flows.example.yaml"))
    assert sorted(loaded.flows) == [101, 102, 12346]
    assert loaded.api_key == "demo-key" and loaded.webhooks[0].secret == "demo-secret"
    assert [(f.start, f.every) for f in loaded.flows.values()] == [
        (600, 3600),
        (600, 3600),
        (None, None),
    ]


def test_a_variable_missing_is_one_clear_line(tmp_path: Path) -> None:
    flows = Path(__file__).with_name("flows.example.yaml")
    with (
        pytest.MonkeyPatch.context() as patch,
        pytest.raises(ValueError) as caught,
    ):
        patch.delenv("ETLWORKS_API_KEY", raising=False)
        load(flows)
    assert (
        str(caught.value) == f"{flows}: api_key: environment variable ETLWORKS_API_KEY is not set"
    )

    # From the command line: that line, exit 2, no traceback.
    argv = [sys.executable, "-m", "tests.etlworks.simulator", "--port", str(free_port())]
    done = subprocess.run(
        [*argv, "--flows", "tests/etlworks/flows.example.yaml"],
        cwd=ROOT,
        env=child_env(ETLWORKS_API_KEY="demo-key"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "simulator: tests/etlworks/flows.example.yaml: webhooks[0].secret:"
        " environment variable ETLWORKS_WEBHOOK_SECRET is not set\n"
    )


def test_flows_with_a_start_run_by_themselves() -> None:
    """As scheduled flows do: at ``start``, then every ``every`` (simulated seconds)."""
    with serve_simulator(
        Flow(101, "orders", duration=1, start=0, every=60, outcomes=["error", "success"]),
        Flow(102, "customers", duration=1, start=30),
        Flow(103, "on-demand", duration=1),
        speed=600.0,
    ) as sim:
        assert wait_until(lambda: len(sim.runs(101)) >= 3, 10, interval=0.01)
        assert wait_until(lambda: len(sim.runs(102)) == 1, 10, interval=0.01)
        assert [r.outcome for r in sim.runs(101)[:3]] == ["error", "success", "success"]
        assert sim.runs(103) == []
        assert sim.runs(101)[0].params == {}
    assert len(sim.runs(102)) == 1  # no every: once


def test_every_needs_a_start() -> None:
    with pytest.raises(ValueError, match=r"^flow 7: every needs a start, and must be above 0$"):
        Flow(7, "x", every=60)
