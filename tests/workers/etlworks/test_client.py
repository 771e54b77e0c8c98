"""The Etlworks API client against the simulator, over real HTTP on loopback."""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import TypeVar

import httpx
import pytest
from pydantic import SecretStr

from tests.etlworks.simulator import API_KEY, Simulator, Stall
from tests.support import free_port
from tests.workers.sinks.standins import assert_no_secret
from workers.etlworks.client import EtlworksClient, Execution, RunStarted
from workers.sinks import DeliveryError

T = TypeVar("T")
Call = Callable[[EtlworksClient], Awaitable[T]]
PARAMS = {"runDate": "2026-05-09", "flowhooks_trigger": "evt-1_route-0_load"}


def call(url: str, work: Call[T], *, key: str = API_KEY, timeout: float = 2.0) -> T:
    """Run ``work`` with a client of its own on a fresh event loop, as a worker job would."""

    async def main() -> T:
        async with httpx.AsyncClient(verify=False) as http:  # loopback HTTP: no CA bundle to load
            return await work(EtlworksClient(url, SecretStr(key), client=http, timeout=timeout))

    return asyncio.run(main())


def failure(url: str, work: Call[object], **kwargs: object) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        call(url, work, **kwargs)  # type: ignore[arg-type]
    return caught.value


def until_finished(sim: Simulator, flow_id: int, audit_id: str) -> Execution:
    """Poll the execution until it has ended, as a waiting action would (but without pause)."""

    async def poll(api: EtlworksClient) -> Execution:
        for _ in range(500):
            execution = await api.execution(flow_id, audit_id)
            if execution.finished:
                return execution
            await asyncio.sleep(0.01)
        raise AssertionError(f"run {audit_id} did not finish")

    return call(sim.url, poll)


@pytest.fixture
def sim(etlworks_sim: Simulator) -> Simulator:
    etlworks_sim.add_flow(101, "warehouse-load", duration=1.0, outcomes=["error", "success"])
    etlworks_sim.add_flow(202, "marts", duration=None, tags=["nightly"])
    return etlworks_sim


def test_run_flow_sends_the_params_flat_with_the_key(sim: Simulator) -> None:
    started = call(sim.url, lambda api: api.run_flow(101, PARAMS))
    assert started == RunStarted(flow_id="101", audit_id="1001", status="queued")
    [request] = sim.calls
    assert (request.method, request.path) == ("POST", "/v1/flows/101/run")
    assert json.loads(request.body) == PARAMS
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert [r.params for r in sim.runs(101)] == [PARAMS]


def test_execution_follows_a_run_to_its_outcome(sim: Simulator) -> None:
    started = call(sim.url, lambda api: api.run_flow(202, {"runDate": "2026-05-09"}))
    running = call(sim.url, lambda api: api.execution(202, started.audit_id))
    assert (running.flow_id, running.audit_id) == ("202", started.audit_id)
    assert running.status in ("queued", "running") and not running.finished
    assert (running.finished_at, running.error) == (None, None)
    sim.finish(int(started.audit_id), "error")
    ended = until_finished(sim, 202, started.audit_id)
    assert (ended.status, ended.error) == ("error", sim.flows[202].error)
    assert ended.params == {"runDate": "2026-05-09"}
    assert ended.started_at is not None and ended.finished_at is not None
    assert ended.duration_ms is not None and ended.finished_at >= ended.started_at
    assert ended.raw["flowName"] == "marts"


def test_executions_list_runs_with_their_params_to_find_one_by_trigger(sim: Simulator) -> None:
    triggers = ["evt-1_route-0_load", "evt-2_route-0_load"]

    async def start(api: EtlworksClient) -> list[RunStarted]:
        return [await api.run_flow(101, {"flowhooks_trigger": t}) for t in triggers]

    call(sim.url, start)
    listed = call(sim.url, lambda api: api.executions(101))
    assert [e.audit_id for e in listed] == ["1002", "1001"]  # newest first
    found = [e for e in listed if e.params.get("flowhooks_trigger") == triggers[0]]
    assert [e.audit_id for e in found] == ["1001"]
    assert call(sim.url, lambda api: api.executions(202)) == []


def test_set_schedule_switches_it(sim: Simulator) -> None:
    sim.schedules[7] = True
    call(sim.url, lambda api: api.set_schedule(7, False))
    assert sim.schedules[7] is False
    call(sim.url, lambda api: api.set_schedule(7, True))
    assert sim.schedules[7] is True
    assert [c.key for c in sim.calls] == [
        "PUT /v1/schedules/7/disable",
        "PUT /v1/schedules/7/enable",
    ]
    missing = failure(sim.url, lambda api: api.set_schedule(8, False))
    assert (missing.retryable, missing.reason) == (False, "HTTP 404 Not Found: no such schedule 8")


def test_request_makes_any_other_call(sim: Simulator) -> None:
    flow = call(sim.url, lambda api: api.request("GET", "/v1/flows/202"))
    assert flow == {"id": 202, "name": "marts", "tags": ["nightly"]}
    hook = {"url": "http://127.0.0.1:9/in", "secret": "s", "events": ["FLOW_FAILED"]}
    registered = call(sim.url, lambda api: api.request("POST", "v1/webhooks", hook))
    assert registered["url"] == hook["url"] and "secret" not in registered
    assert [h.url for h in sim.webhooks] == [hook["url"]]


def test_a_5xx_is_retryable_and_starts_nothing(sim: Simulator) -> None:
    sim.script("POST /v1/flows/{id}/run", [503, (429, {"Retry-After": "1"}), None])
    first = failure(sim.url, lambda api: api.run_flow(101, PARAMS))
    assert (first.retryable, first.status, first.retry_after) == (True, 503, None)
    second = failure(sim.url, lambda api: api.run_flow(101, PARAMS))
    assert (second.retryable, second.status, second.retry_after) == (True, 429, 1.0)
    assert str(second) == "etlworks: HTTP 429 Too Many Requests (retryable, retry after 1s)"
    assert call(sim.url, lambda api: api.run_flow(101, PARAMS)).audit_id == "1001"
    assert sim.count("POST /v1/flows/{id}/run") == 3
    assert len(sim.runs(101)) == 1


def test_retry_after_as_an_http_date(sim: Simulator) -> None:
    later = formatdate(time.time() + 120, usegmt=True)
    sim.script("GET /v1/executions/101", [(503, {"Retry-After": later})])
    error = failure(sim.url, lambda api: api.executions(101))
    assert error.retryable and error.retry_after is not None
    assert 60 < error.retry_after <= 120


def test_a_rejected_key_is_permanent_and_plain(sim: Simulator) -> None:
    wrong = "wrong-key-Jq8Vx3Np"
    error = failure(sim.url, lambda api: api.run_flow(101, PARAMS), key=wrong)
    assert (error.retryable, error.status) == (False, 401)
    assert (
        str(error) == "etlworks: HTTP 401 Unauthorized: Etlworks rejected the API key (permanent)"
    )
    assert wrong not in repr(error) and API_KEY not in repr(error)
    assert sim.runs() == []


def test_unknown_flows_and_executions_are_permanent(sim: Simulator) -> None:
    flow = failure(sim.url, lambda api: api.run_flow(999, PARAMS))
    assert (flow.retryable, flow.reason) == (False, "HTTP 404 Not Found: no such flow 999")
    listed = failure(sim.url, lambda api: api.executions(999))
    assert listed.reason == "HTTP 404 Not Found: no such flow 999"
    execution = failure(sim.url, lambda api: api.execution(101, 5))
    assert execution.reason == "HTTP 404 Not Found: no such execution 5 of flow 101"


@pytest.mark.parametrize("status", [400, 403, 409, 422])
def test_other_4xx_are_permanent(sim: Simulator, status: int) -> None:
    sim.script("GET /v1/flows/{id}", [status])
    error = failure(sim.url, lambda api: api.request("GET", "/v1/flows/101"))
    assert (error.retryable, error.status) == (False, status)


@pytest.mark.parametrize("status", [408, 425, 500, 502, 504])
def test_408_425_and_5xx_are_retryable(sim: Simulator, status: int) -> None:
    sim.script("GET /v1/executions/{id}", [status])
    error = failure(sim.url, lambda api: api.execution(101, 1001))
    assert (error.retryable, error.status) == (True, status)


@pytest.mark.parametrize(
    "answer",
    [{"flowId": 101, "status": "queued"}, ["queued"], "queued"],
)
def test_a_2xx_that_is_not_what_was_asked_is_permanent(sim: Simulator, answer: object) -> None:
    sim.script("POST /v1/flows/{id}/run", [(200, {}, answer)])
    error = failure(sim.url, lambda api: api.run_flow(101, PARAMS))
    assert not error.retryable
    assert error.reason.startswith("unexpected answer")


def test_ids_stay_in_their_path_segment(sim: Simulator) -> None:
    sim.schedules[7] = True
    error = failure(sim.url, lambda api: api.run_flow("../../schedules/7/disable", {}))
    assert (error.retryable, error.status) == (False, 404)
    assert sim.schedules[7] is True
    empty = failure(sim.url, lambda api: api.run_flow(" ", {}))
    assert (empty.retryable, empty.reason) == (False, "an empty id")


def test_timeouts_and_refused_connections_are_retryable(sim: Simulator, silent_port: int) -> None:
    sim.script("GET /v1/executions/{id}", [Stall(0.5)])
    stalled = failure(sim.url, lambda api: api.executions(101), timeout=0.2)
    assert stalled.retryable and stalled.status is None
    silent_url = f"http://127.0.0.1:{silent_port}/rest"
    silent = failure(silent_url, lambda api: api.executions(101), timeout=0.2)
    assert silent.retryable
    refused = failure(f"http://127.0.0.1:{free_port()}/rest", lambda api: api.executions(101))
    assert (refused.retryable, refused.reason) == (True, "ConnectError")


def test_no_call_reveals_the_key(
    sim: Simulator, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-Jq8Vx3Np"
    started = call(sim.url, lambda api: api.run_flow(101, PARAMS))
    call(sim.url, lambda api: api.execution(101, started.audit_id))
    sim.script("POST /v1/flows/{id}/run", [503, (429, {"Retry-After": "1"}), Stall(0.5)])
    errors = [failure(sim.url, lambda api: api.run_flow(101, PARAMS)) for _ in range(2)]
    errors.append(failure(sim.url, lambda api: api.run_flow(101, PARAMS), timeout=0.2))
    errors.append(failure(sim.url, lambda api: api.run_flow(101, PARAMS), key=wrong))
    errors.append(failure(sim.url, lambda api: api.run_flow(999, PARAMS)))
    silent_url = f"http://127.0.0.1:{silent_port}/rest"
    errors.append(failure(silent_url, lambda api: api.executions(1), timeout=0.2))
    errors.append(failure(f"http://127.0.0.1:{free_port()}/rest", lambda api: api.executions(1)))
    errors.append(failure(sim.url, lambda api: api.executions(1), key=API_KEY + "\n"))
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log
    for error in errors:
        assert_no_secret(error, caplog.records, [API_KEY, wrong])

    async def shown(api: EtlworksClient) -> str:
        return f"{api!r} {vars(api)}"

    assert API_KEY not in call(sim.url, shown)


RECORD = {
    "auditId": 77,
    "flowId": 101,
    "status": "CANCELLED",
    "startedAt": "2026-05-09T03:00:00",
    "finishedAt": "2026-05-09T03:12:00+00:00",
    "exception": "stopped by admin",
    "runParameters": [{"name": "runDate", "value": "2026-05-09"}, {"name": "n", "value": 3}],
    "tags": ["nightly"],
    "somethingNew": {"kept": True},
}


@pytest.mark.parametrize("answer", [[RECORD], {"content": [RECORD], "total": 1}, RECORD])
def test_executions_are_read_leniently(sim: Simulator, answer: object) -> None:
    sim.script("GET /v1/executions/{id}", [(200, {}, answer)])
    [execution] = call(sim.url, lambda api: api.executions(101))
    assert (execution.flow_id, execution.audit_id, execution.status) == ("101", "77", "canceled")
    assert execution.finished and execution.error == "stopped by admin"
    assert execution.params == {"runDate": "2026-05-09", "n": "3"}
    assert execution.started_at == datetime(2026, 5, 9, 3, 0, tzinfo=UTC)
    assert execution.duration_ms == 12 * 60 * 1000
    assert execution.raw["somethingNew"] == {"kept": True}


def test_an_execution_without_a_status_is_unexpected(sim: Simulator) -> None:
    sim.script("GET /v1/executions/{id}", [(200, {}, {"auditId": 77})])
    error = failure(sim.url, lambda api: api.execution(101, 77))
    assert (error.retryable, error.reason) == (
        False,
        "unexpected answer: an execution without auditId or status",
    )
