"""A reconciling pass against the simulator's execution history, over real HTTP on loopback,
with a real Redis; the clock is the simulator's (it runs 1000 times faster than the wall)."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from config import eventlog, keys
from config.etlworks import Reconcile
from config.schema import Config
from tests.etlworks.simulator import API_KEY, EVENTS, Run, Simulator, serve_simulator
from tests.support import make_config, settings, wait_until
from workers import synthetic
from workers.context import WorkerContext
from workers.etlworks import reconcile
from workers.etlworks.client import EtlworksClient
from workers.etlworks.reconcile import Reconciler, SourcePass
from workers.metrics import WorkerMetrics

SOURCE = "etl"
OUTCOMES = sorted(EVENTS.values())
RETENTION = 3600.0


def config(sim: Simulator, reconcile_yaml: str = "{settle: 0s, missing_after: 2}") -> Config:
    return make_config(
        f"""
etlworks:
  sim: {{url: "{sim.url}", api_key: "${{KEY}}", reconcile: {reconcile_yaml}}}
sources:
  {SOURCE}: {{verify: [{{hmac: {{secrets: ["${{KEY}}"]}}}}], etlworks: sim}}
""",
        {"KEY": API_KEY},
    )


@pytest.fixture
def sim(etlworks_sim: Simulator) -> Simulator:
    etlworks_sim.add_flow(101, "warehouse-load", outcomes=["error", "success"])
    etlworks_sim.add_flow(202, "marts", tags=["nightly"])
    etlworks_sim.lose_webhooks = True
    subscribe(etlworks_sim)
    return etlworks_sim


def subscribe(sim: Simulator, **fields: Any) -> None:
    spec = {"name": "flowhooks-etl", "url": "http://127.0.0.1:9/webhooks/etl", "secret": "x"}
    sim.add_webhook({**spec, "events": OUTCOMES, **fields})


def run_flows(sim: Simulator, *flow_ids: int) -> list[Run]:
    runs = []
    for flow_id in flow_ids:
        answer = httpx.post(
            f"{sim.url}/v1/flows/{flow_id}/run",
            json={},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ).json()
        runs.append(sim.run(int(answer["auditId"])))
    assert wait_until(lambda: all(r.finished is not None for r in runs), 10)
    return runs


def reconcile_once(
    redis: Redis, cfg: Config, sim: Simulator, now: float | None = None
) -> list[SourcePass]:
    """One pass, at ``now``, by default the simulator's time: every run it ended has ended."""

    async def main() -> list[SourcePass]:
        async with httpx.AsyncClient() as http:
            api = EtlworksClient(sim.url, SecretStr(API_KEY), client=http)
            reconciler = Reconciler(redis, cfg, "sim", api, retention=RETENTION)
            return await reconciler.run(now=now or sim.now_ms() / 1000 + 1)

    return asyncio.run(main())


def route_jobs(redis: Redis) -> list[str]:
    return Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer).job_ids


def test_each_ended_run_is_stored_and_routed_once_page_by_page(
    redis: Redis, sim: Simulator
) -> None:
    sim.page_limit = 2  # fewer than asked for: X-Total-Count says more are there
    runs = run_flows(sim, 101, 202, 101, 202, 202)
    cfg = config(sim, "{settle: 0s, missing_after: 100}")
    [done] = reconcile_once(redis, cfg, sim)
    assert sorted(done.routed) == sorted(
        keys.ref(SOURCE, f"reconcile-{r.flow.id}-{r.audit_id}") for r in runs
    )
    assert sorted(route_jobs(redis)) == sorted(keys.route_job_id(ref) for ref in done.routed)
    stored = eventlog.load(redis, keys.ref(SOURCE, f"reconcile-101-{runs[0].audit_id}"))
    assert stored is not None
    event = stored.event
    assert (event["kind"], event["event"], event["status"], event["via"]) == (
        "flow.failed",
        "FLOW_FAILED",
        "error",
        "reconcile",
    )
    assert event["error"] == runs[0].error and event["duration_ms"] == runs[0].duration_ms
    assert event["flow_name"] == "warehouse-load"
    assert stored.timeline[0]["via"] == "reconcile"
    marts = eventlog.load_event(redis, keys.ref(SOURCE, f"reconcile-202-{runs[1].audit_id}"))
    assert marts is not None and marts["tags"] == ["nightly"] and marts["kind"] == "flow.succeeded"

    [again] = reconcile_once(redis, cfg, sim)
    assert again.routed == []
    assert redis.hget(keys.webhooks(SOURCE), "reconciled") == b"5"


def test_a_run_a_webhook_routed_is_left_alone_and_a_late_webhook_is_a_duplicate(
    redis: Redis, sim: Simulator
) -> None:
    first, second = run_flows(sim, 101, 202)
    webhook = {"source": SOURCE, "id": "etlworks-event-1", "kind": "flow.failed"}
    webhook |= {"flow_id": "101", "audit_id": str(first.audit_id)}
    assert synthetic.claim_outcome(redis, webhook, RETENTION) is None  # the webhook routed it

    [done] = reconcile_once(redis, config(sim), sim)

    reconciled = keys.ref(SOURCE, f"reconcile-202-{second.audit_id}")
    assert done.routed == [reconciled]
    late = {"source": SOURCE, "id": "etlworks-event-2", "kind": "flow.succeeded"}
    late |= {"flow_id": "202", "audit_id": str(second.audit_id)}
    assert synthetic.claim_outcome(redis, late, RETENTION) == reconciled
    own = eventlog.load_event(redis, reconciled)
    assert own is not None and synthetic.claim_outcome(redis, own, RETENTION) is None


def test_only_the_runs_the_registration_subscribes_to_are_routed(
    redis: Redis, sim: Simulator
) -> None:
    sim.webhooks.clear()
    subscribe(sim, events=["FLOW_FAILED"], flowIncludes=["warehouse-*"])
    first, _, third = run_flows(sim, 101, 202, 101)  # 101 fails, then succeeds
    [done] = reconcile_once(redis, config(sim), sim)
    assert done.routed == [keys.ref(SOURCE, f"reconcile-101-{first.audit_id}")]
    assert third.status == "success"


def test_a_deleted_registration_keeps_the_last_subscription_seen(
    redis: Redis, sim: Simulator
) -> None:
    sim.webhooks.clear()
    subscribe(sim, flowExcludes=["202"])
    run_flows(sim, 202)
    reconcile_once(redis, config(sim), sim)
    sim.webhooks.clear()
    run, _ = run_flows(sim, 101, 202)  # 202: still left out
    [done] = reconcile_once(redis, config(sim), sim)
    assert done.routed == [keys.ref(SOURCE, f"reconcile-101-{run.audit_id}")]
    assert redis.hget(keys.webhooks(SOURCE), "registration") == b"absent"


def test_a_source_whose_registration_was_never_seen_is_not_reconciled(
    redis: Redis, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.webhooks.clear()
    run_flows(sim, 101)
    [done] = reconcile_once(redis, config(sim), sim)
    assert (done.routed, done.missing, route_jobs(redis)) == ([], None, [])
    assert redis.hget(keys.webhooks(SOURCE), "registration") == b"absent"
    assert "not reconciled: no webhook flowhooks-etl in Etlworks was ever seen" in caplog.text


def test_webhooks_missing_is_raised_once_and_resumed_when_one_arrives(
    redis: Redis, sim: Simulator
) -> None:
    reconcile_once(redis, config(sim), sim)  # the registration, seen
    sim.webhooks.clear()
    run_flows(sim, 101)
    [done] = reconcile_once(redis, config(sim), sim)
    assert done.missing is None  # one run is not yet "keep not arriving"
    run_flows(sim, 202)
    [done] = reconcile_once(redis, config(sim), sim)
    assert done.missing is not None
    missing = eventlog.load_event(redis, done.missing)
    assert missing is not None and missing["kind"] == "webhook.missing"
    assert missing["error"] == (
        "Etlworks stopped sending webhooks to etl: 2 runs ended since the last webhook arrived,"
        " routed from the execution history; its webhook flowhooks-etl is gone from Etlworks"
    )
    assert keys.route_job_id(done.missing) in route_jobs(redis)
    run_flows(sim, 202)
    [done] = reconcile_once(redis, config(sim), sim)
    assert (len(done.routed), done.missing, done.resumed) == (1, None, None)

    arrived = {"source": SOURCE, "id": "etlworks-event-9", "event": "FLOW_SUCCESS"}
    synthetic.store(redis, {**arrived, "kind": "flow.succeeded"}, retention=RETENTION)
    [done] = reconcile_once(redis, config(sim), sim)
    assert done.resumed is not None and done.missing is None
    resumed = eventlog.load_event(redis, done.resumed)
    assert resumed is not None and resumed["kind"] == "webhook.resumed"
    assert resumed["error"] == "Etlworks sends webhooks to etl again"
    assert redis.hget(keys.webhooks(SOURCE), "missing") == b""


def test_one_worker_reconciles_an_instance_once_an_interval(redis: Redis) -> None:
    settings = Reconcile(interval=60)
    assert reconcile.lock(redis, "sim", "worker-a", settings, hold=30)
    assert not reconcile.lock(redis, "sim", "worker-b", settings, hold=30)
    reconcile.unlock(redis, "sim", "worker-a")
    assert not reconcile.lock(redis, "sim", "worker-b", settings, hold=30)  # not due yet
    redis.delete(keys.reconcile_due("sim"))
    assert reconcile.lock(redis, "sim", "worker-b", settings, hold=30)


def test_reconcile_is_on_for_an_instance_a_source_names_unless_turned_off(
    sim: Simulator,
) -> None:
    assert reconcile.reconciled(config(sim, "{interval: 5m}")) == {"sim": Reconcile(interval=300)}
    assert reconcile.reconciled(config(sim, "false")) == {}
    default = config(sim, "true")
    assert reconcile.reconciled(default) == {"sim": Reconcile()}
    unnamed = default.model_copy(update={"sources": {}})
    assert reconcile.reconciled(unnamed) == {}


def test_the_watermark_moves_to_the_pass_and_the_history_is_read_with_overlap(
    redis: Redis, sim: Simulator
) -> None:
    run_flows(sim, 101)
    cfg = config(sim, "{settle: 30s, overlap: 10m}")
    now = sim.now_ms() / 1000 + 1
    reconcile_once(redis, cfg, sim, now)
    watermark = float(redis.hget(keys.reconcile("sim"), "watermark") or 0)
    assert watermark == now - 30
    calls_before = len(sim.calls)
    reconcile_once(redis, cfg, sim, now + 300)
    [history] = [c for c in sim.calls[calls_before:] if c.path == "/v1/executions"]
    since = int(dict(p.split("=") for p in history.query.split("&"))["since"])
    assert since == int((watermark - 600) * 1000)
    assert json.loads(redis.hget(keys.webhooks(SOURCE), "subscription") or b"{}")["events"]


def test_maintenance_reconciles_when_due_counts_what_it_routed_and_survives_api_errors(
    redis: Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_simulator() as wall:  # the worker reads the history by the wall clock
        wall.add_flow(101, "warehouse-load", outcomes=["error"])
        wall.lose_webhooks = True
        subscribe(wall)
        run_flows(wall, 101, 101)
        cfg = config(wall, "{interval: 1h, settle: 0s}")
        metrics = WorkerMetrics(CollectorRegistry())
        ctx = WorkerContext(settings(redis_url), cfg, metrics)
        try:
            [done] = reconcile.maintain(redis, ctx, "worker-a")
            assert len(done.routed) == 2
            assert reconcile.maintain(redis, ctx, "worker-b") == []  # not due for an hour
            counted = metrics.registry.get_sample_value(
                "flowhooks_reconciled_events_total", {"source": SOURCE}
            )
            assert counted == 2

            redis.delete(keys.reconcile_due("sim"))
            wall.script("GET /v1/webhooks", [503])
            assert reconcile.maintain(redis, ctx, "worker-a") == []
            assert "reconciling failed; the next pass reads the same runs" in caplog.text
            assert not redis.exists(keys.reconcile_lock("sim"))
        finally:
            ctx.close()
