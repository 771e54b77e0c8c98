"""Reconciling end to end: the Etlworks simulator (at the wall clock's pace) runs flows and sends
its signed webhooks to the real receiver, which may be down; a real ``flowhooks worker`` reads
the execution history every second and routes what no webhook did, PagerDuty's stand-in hears
of each failure; the webhook is registered with ``flowhooks etlworks subscribe``."""

import hashlib
import hmac
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from redis import Redis

from config import keys
from tests.e2e.delivery_support import PAGERDUTY_PATH, RETRY, Flowhooks, Sinks, serving_sinks
from tests.e2e.etlworks_support import start_run
from tests.etlworks.simulator import API_KEY, Run, Simulator, serve_simulator
from tests.support import FLOWHOOKS, SECRET, ServedApp, make_config, run_process, settings

SOURCE = "etl"


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """Runs that end at once, at the wall clock's pace (the worker reads the history by it)."""
    with serve_simulator(webhook_retry_delay=0.1) as simulator:
        simulator.add_flow(101, "orders", outcomes=["error"])
        simulator.add_flow(102, "customers", outcomes=["error"])
        simulator.add_flow(202, "marts")
        yield simulator


def config_text(sinks: Sinks, sim: Simulator, missing_after: int) -> str:
    return f"""
etlworks:
  sim:
    url: "{sim.url}"
    api_key: "${{ETLWORKS_API_KEY}}"
    reconcile: {{interval: 1s, settle: 1s, overlap: 1m, missing_after: {missing_after}}}
sources:
  {SOURCE}:
    verify:
      - hmac: {{secrets: ["${{SECRET}}"]}}
    etlworks: sim
actions:
  pager:
    pagerduty:
      routing_key: "${{PAGERDUTY_ROUTING_KEY}}"
      url: "{sinks.pagerduty.url(PAGERDUTY_PATH)}"
    retry: {RETRY}
  ops-log:
    log: {{level: warning}}
routes:
  routes:
    - matchers: ['kind="flow.failed"']
      actions: [pager]
    - matchers: ['kind="webhook.missing"']
      actions: [ops-log, pager]
      resolve: true
    - matchers: ['kind="webhook.resumed"']
      actions: [ops-log]
"""


@contextmanager
def running(
    redis: Redis,
    redis_url: str,
    sinks: Sinks,
    sim: Simulator,
    folder: Path,
    *,
    missing_after: int,
) -> Iterator[Flowhooks]:
    """The receiver, its webhook subscribed with the command, and one worker."""
    sinks.reset()
    environ = {**sinks.environ(), "ETLWORKS_API_KEY": API_KEY}
    text = config_text(sinks, sim, missing_after)
    config_file = folder / "flowhooks.yaml"
    config_file.write_text(text)
    receiver = ServedApp(settings(redis_url), make_config(text, environ, folder))
    with receiver:
        system = Flowhooks(redis, redis_url, sinks, folder, config_file, receiver, environ)
        system.worker_settings["FLOWHOOKS_MAINTENANCE_INTERVAL"] = "1"
        subscribe(system)
        system.start_worker()
        try:
            yield system
        finally:
            for worker in system.workers:
                worker.kill()


def subscribe(system: Flowhooks) -> None:
    result = cli(system, "etlworks", "subscribe", SOURCE, "--url", system.receiver.url)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr


def cli(system: Flowhooks, *args: str) -> "subprocess.CompletedProcess[str]":
    """A ``flowhooks`` command with the workers' environment: Redis, config, secrets."""
    return run_process([*FLOWHOOKS, *args], system.environ)


def reconciled_ref(run: Run) -> str:
    return keys.ref(SOURCE, f"reconcile-{run.flow.id}-{run.audit_id}")


def routed_by(redis: Redis, run: Run) -> str | None:
    """The ref of the event that routed ``run``'s end, once one did."""
    claim = redis.get(keys.outcome(SOURCE, str(run.flow.id), str(run.audit_id)))
    return keys.text(claim) if claim is not None else None


def passes(redis: Redis, system: Flowhooks, count: int) -> None:
    """Wait for ``count`` more reconciling passes."""
    key = keys.reconcile("sim")
    seen: list[object] = [redis.hget(key, "last_pass")]

    def another() -> bool:
        last = redis.hget(key, "last_pass")
        if last != seen[-1]:
            seen.append(last)
        return len(seen) > count

    system.wait(another, f"{count} reconciling passes")


def triggers(sinks: Sinks) -> list[str]:
    return [r.json()["dedup_key"] for r in sinks.pagerduty.requests]


def resend(system: Flowhooks, sim: Simulator, run: Run) -> str:
    """Send the lost webhook of ``run``'s end again, as a late retry from Etlworks; its ref."""
    lost = next(
        d for d in sim.deliveries if d.audit_id == run.audit_id and d.event != "FLOW_STARTED"
    )
    signature = hmac.new(SECRET.encode(), lost.body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Etl-Webhook-Signature": signature,
        "X-Etl-Webhook-Event-Id": lost.event_id,
    }
    url = f"{system.receiver.url}/webhooks/{SOURCE}"
    assert httpx.post(url, content=lost.body, headers=headers, timeout=10).status_code == 202
    return keys.ref(SOURCE, lost.event_id)


def test_runs_whose_webhooks_the_receiver_missed_are_routed_once_and_late_ones_are_duplicates(
    redis: Redis, redis_url: str, sinks: Sinks, sim: Simulator, tmp_path: Path
) -> None:
    with running(redis, redis_url, sinks, sim, tmp_path, missing_after=100) as system:
        first = start_run(sim, 202)
        system.wait(lambda: routed_by(redis, first) is not None, "the first run's webhook")
        assert routed_by(redis, first) != reconciled_ref(first)

        port = system.receiver.port
        system.receiver.__exit__(None, None, None)  # the receiver is down
        missed = [start_run(sim, flow) for flow in (101, 102, 202)]
        system.wait(sim.settled, "Etlworks to give up its webhooks")
        assert not any(d.ok for r in missed for d in sim.deliveries if d.audit_id == r.audit_id)

        back = ServedApp(settings(redis_url), make_config(config_file_text(system), system.secrets))
        back.port = back.server.config.port = port
        with back:
            system.receiver = back
            system.wait(
                lambda: all(routed_by(redis, r) == reconciled_ref(r) for r in missed),
                "the missed runs reconciled",
            )
            for run in missed:
                system.wait_routed(reconciled_ref(run))
            late = resend(system, sim, missed[0])
            system.wait(
                lambda: any(e["stage"] == "duplicate" for e in system.timeline(late)),
                "the late webhook's duplicate",
            )
            [duplicate] = [e for e in system.timeline(late) if e["stage"] == "duplicate"]
            assert duplicate["of"] == reconciled_ref(missed[0])
            passes(redis, system, 2)

        event = system.event(reconciled_ref(missed[0]))
        assert (event["via"], event["kind"], event["flow_name"]) == (
            "reconcile",
            "flow.failed",
            "orders",
        )
        assert event["error"] == sim.run(missed[0].audit_id).error
        assert sorted(triggers(sinks)) == ["flowhooks:etl:101", "flowhooks:etl:102"]
        assert routed_by(redis, first) != reconciled_ref(first)
        assert not redis.exists(keys.event(reconciled_ref(first)))
        assert redis.hget(keys.webhooks(SOURCE), "reconciled") == b"3"
        assert not redis.hget(keys.webhooks(SOURCE), "missing")


def config_file_text(system: Flowhooks) -> str:
    return system.config_file.read_text()


def test_a_deleted_webhook_shows_in_status_and_raises_webhook_missing_until_they_resume(
    redis: Redis, redis_url: str, sinks: Sinks, sim: Simulator, tmp_path: Path
) -> None:
    with running(redis, redis_url, sinks, sim, tmp_path, missing_after=2) as system:
        first = start_run(sim, 202)
        system.wait(lambda: routed_by(redis, first) is not None, "the first run's webhook")
        [hook] = sim.webhooks
        deleted = httpx.delete(
            f"{sim.url}/v1/webhooks/{hook.id}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert deleted.status_code == 204

        status = cli(system, "etlworks", "status")
        assert status.returncode == 1, status.stderr
        assert "  registration:      absent" in status.stdout
        assert "  problem:           webhook flowhooks-etl is absent" in status.stdout

        failed = [start_run(sim, flow) for flow in (101, 102)]
        system.wait(lambda: len(triggers(sinks)) >= 2, "a page for each failed run")
        system.wait(lambda: bool(redis.hget(keys.webhooks(SOURCE), "missing")), "webhook.missing")
        missing = keys.text(redis.hget(keys.webhooks(SOURCE), "missing") or b"")
        timeline = system.wait_routed(missing)
        event = system.event(missing)
        assert event["kind"] == "webhook.missing"
        assert event["error"].startswith("Etlworks stopped sending webhooks to etl: 2 runs ended")
        assert "ops-log" in [e["action"] for e in timeline if e["stage"] == "delivery"]
        assert all(routed_by(redis, r) == reconciled_ref(r) for r in failed)

        subscribe(system)
        again = start_run(sim, 202)
        system.wait(lambda: routed_by(redis, again) is not None, "a webhook again")
        system.wait(lambda: not redis.hget(keys.webhooks(SOURCE), "missing"), "webhook.resumed")
        passes(redis, system, 1)

        status = cli(system, "etlworks", "status", "-o", "json")
        assert status.returncode == 0, status.stderr
        assert '"reconciled": 2' in status.stdout and '"missing": false' in status.stdout
        resumed = [k for k in redis.zrange(keys.EVENT_INDEX, 0, -1) if b"webhook-resumed" in k]
        assert len(resumed) == 1
        # one incident for the webhooks, which their resuming resolves
        system.wait(lambda: len(sinks.pagerduty.requests) == 4, "the webhooks' resolve")
        sent = [(r.json()["event_action"], r.json()["dedup_key"]) for r in sinks.pagerduty.requests]
        assert sorted(sent) == [
            ("resolve", "flowhooks:etl:webhooks"),
            ("trigger", "flowhooks:etl:101"),
            ("trigger", "flowhooks:etl:102"),
            ("trigger", "flowhooks:etl:webhooks"),
        ]
