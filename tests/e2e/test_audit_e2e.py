"""What changed before it broke, end to end: the Etlworks simulator's flows fail and send their
webhooks to the real receiver, a real worker process reads the simulator's audit log (once for
a storm of failures) and the Slack and PagerDuty messages say who changed the flow, and when,
Slack's in the retries its first refusals get."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.e2e.delivery_support import RETRY, SLACK_OK, Sinks, serving_sinks
from tests.e2e.etlworks_support import outcome_ref, running, start_run
from tests.etlworks.simulator import Simulator
from tests.workers.sinks.standins import Reply

ACTIONS = f"""
ops-slack:
  slack: {{webhook_url: "${{SLACK_WEBHOOK_URL}}"}}
  retry: {RETRY}
"""
ROUTES = """
routes:
  - matchers: ['kind="flow.failed"']
    actions: [pager, ops-slack]
"""
HOUR_MS = 3600 * 1000
CHANGED = re.compile(r"changed \d+ h before by alice: update")


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


def test_failures_are_told_what_changed_with_one_call_for_a_storm(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    sim = etlworks_sim
    for flow_id in (101, 102, 103):
        sim.add_flow(flow_id, f"orders-{flow_id}", duration=1.0, outcomes=["error"])
    sim.change(101, "bob", "create", at_ms=sim.now_ms() - 30 * HOUR_MS)
    sim.change(101, "alice", "update", at_ms=sim.now_ms() - 2 * HOUR_MS)
    sim.change(999, "carol", "update")  # another flow's change
    with running(
        redis,
        redis_url,
        sinks,
        sim,
        tmp_path,
        actions=ACTIONS,
        routes=ROUTES,
        instance="audit: true",
    ) as system:
        sinks.slack.reset(*[Reply(503, b"busy")] * 3, default=SLACK_OK)  # every first post
        runs = [start_run(sim, flow_id) for flow_id in (101, 102, 103)]
        refs = [outcome_ref(system, sim, run) for run in runs]
        system.start_worker()
        system.wait(lambda: len(sinks.pagerduty.requests) == 3, "three pages")
        system.wait(lambda: len(sinks.slack.requests) == 6, "three Slack messages, retried")

        assert sim.count("GET /v1/audit") == 1
        [call] = [c for c in sim.calls if c.route == "GET /v1/audit"]
        assert "resourceType=flow" in call.query and "since=" in call.query

        [paged] = [
            r.json()
            for r in sinks.pagerduty.requests
            if r.json()["payload"]["custom_details"].get("flow_id") == "101"
        ]
        assert CHANGED.fullmatch(paged["payload"]["custom_details"]["change"])
        others = [r.json() for r in sinks.pagerduty.requests if r.json() != paged]
        assert all("change" not in o["payload"]["custom_details"] for o in others)
        # the retries read the change kept with the event
        retried = [json.dumps(r.json()) for r in sinks.slack.requests[3:]]
        assert [bool(CHANGED.search(p)) for p in retried if "orders-101" in p] == [True]
        assert not any(CHANGED.search(p) for p in retried if "orders-101" not in p)
        [changed] = [e for e in system.timeline(refs[0]) if e["stage"] == "changed"]
        assert (changed["user"], changed["action"]) == ("alice", "update")
        assert CHANGED.fullmatch(changed["said"])
        assert not any(e["stage"] == "changed" for e in system.timeline(refs[1]))
