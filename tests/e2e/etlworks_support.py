"""Etlworks actions end to end, on loopback: the Etlworks simulator runs the flows and sends its
signed webhooks to the real receiver, real ``flowhooks worker`` processes (RQ's scheduler
included) act on the simulator's API, and the PagerDuty stand-in hears of the failures.

The simulator's API key reaches the workers through their environment, as in production; a
test that needs a wrong one gives another.
"""

import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from rq.queue import Queue
from rq.serializers import JSONSerializer

from config import keys
from tests.e2e.delivery_support import (
    PAGERDUTY_PATH,
    RETRY,
    Flowhooks,
    Sinks,
)
from tests.etlworks.simulator import API_KEY, EVENTS, Run, Simulator
from tests.support import SECRET, ServedApp, make_config, settings

SOURCE = "etl"
OUTCOME_EVENTS = sorted(EVENTS.values())
"""The webhooks a test registers: a run's end, not its start."""


def config_text(
    sinks: Sinks, sim: Simulator, actions: str, routes: str, extra: str = "", *, instance: str = ""
) -> str:
    """A config with the simulator as the only Etlworks instance (the source's, with the
    settings ``instance`` adds), a PagerDuty action ``pager`` and a ``log`` action
    ``escalate-log``, plus ``actions`` and ``routes`` (the YAML of the mappings under
    ``actions:`` and ``routes:``)."""
    more = f", {instance}" if instance else ""
    return f"""
etlworks:
  sim: {{url: "{sim.url}", api_key: "${{ETLWORKS_API_KEY}}", timeout: 5s{more}}}
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
  escalate-log:
    log: {{level: warning}}
{_indent(actions)}
routes:
{_indent(routes)}
{textwrap.dedent(extra).strip()}
"""


def _indent(text: str) -> str:
    return textwrap.indent(textwrap.dedent(text).strip(), "  ")


@contextmanager
def running(
    redis: Redis,
    redis_url: str,
    sinks: Sinks,
    sim: Simulator,
    folder: Path,
    *,
    actions: str,
    routes: str,
    api_key: str = API_KEY,
    webhooks: int = 1,
    extra: str = "",
    instance: str = "",
) -> Iterator[Flowhooks]:
    """The receiver with the config of :func:`config_text`, registered ``webhooks`` times
    with the simulator (each registration sends every outcome once), and one worker."""
    sinks.reset()
    environ = {**sinks.environ(), "ETLWORKS_API_KEY": api_key}
    text = config_text(sinks, sim, actions, routes, extra, instance=instance)
    config_file = folder / "flowhooks.yaml"
    config_file.write_text(text)
    receiver = ServedApp(settings(redis_url), make_config(text, environ, folder))
    with receiver:
        system = Flowhooks(redis, redis_url, sinks, folder, config_file, receiver, environ)
        for _ in range(webhooks):
            register(sim, f"{receiver.url}/webhooks/{SOURCE}")
        try:
            yield system
        finally:
            for worker in system.workers:
                worker.kill()


def _api(sim: Simulator, method: str, path: str, body: object = None) -> Any:
    """A call to the simulator's API, as Etlworks' own UI (or its scheduler) would make."""
    response = httpx.request(
        method,
        f"{sim.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def register(sim: Simulator, url: str) -> None:
    """Have the simulator send the outcomes of every flow to ``url``, signed with the source's
    secret."""
    _api(sim, "POST", "/v1/webhooks", {"url": url, "secret": SECRET, "events": OUTCOME_EVENTS})


def start_run(sim: Simulator, flow_id: int, params: Mapping[str, str] | None = None) -> Run:
    """Run a flow as Etlworks' scheduler would (not flowhooks): its run."""
    answer = _api(sim, "POST", f"/v1/flows/{flow_id}/run", dict(params or {}))
    return sim.run(int(answer["auditId"]))


def outcome_ref(system: Flowhooks, sim: Simulator, run: Run, nth: int = 0) -> str:
    """The ref of the ``nth`` webhook the receiver took for the end of ``run``, once taken."""

    def taken() -> list[str]:
        return [
            d.event_id
            for d in sim.deliveries
            if d.audit_id == run.audit_id and d.event != "FLOW_STARTED" and d.ok
        ]

    system.wait(lambda: len(taken()) > nth, f"webhook {nth + 1} of run {run.audit_id}")
    return keys.ref(SOURCE, taken()[nth])


def synthetic_ref(flow_id: int, audit_id: int, status: str) -> str:
    """The ref of the event flowhooks makes when a run it follows ends
    (:func:`workers.synthetic.outcome_event`)."""
    kind = {"success": "succeeded", "error": "failed"}.get(status, status)
    return keys.ref(SOURCE, f"run-{flow_id}-{audit_id}-{kind}")


def runs_of(sim: Simulator, flow_id: int, count: int, system: Flowhooks) -> list[Run]:
    """Wait until ``flow_id`` ran ``count`` times and every run has ended; the runs."""

    def ended() -> bool:
        runs = sim.runs(flow_id)
        return len(runs) >= count and all(r.finished is not None for r in runs)

    system.wait(ended, f"{count} ended runs of flow {flow_id}")
    return sim.runs(flow_id)


def trigger_state(redis: Redis, trigger: str) -> dict[str, str]:
    """What Redis holds of a trigger: ``claimed_at``, and the run's ``audit_id`` once known."""
    return {_text(k): _text(v) for k, v in redis.hgetall(keys.trigger(trigger)).items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stage_entries(timeline: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    return [e for e in timeline if e["stage"] == stage]


def settled(system: Flowhooks, sim: Simulator) -> None:
    """Wait until nothing is left to happen: every run ended and every webhook delivered,
    no job queued, scheduled or running."""
    queue = Queue(keys.QUEUE, connection=system.redis, serializer=JSONSerializer)

    def idle() -> bool:
        return (
            sim.settled()
            and queue.count == 0
            and queue.scheduled_job_registry.count == 0
            and queue.started_job_registry.count == 0
        )

    system.wait(idle, "the simulator and the queue to settle")
