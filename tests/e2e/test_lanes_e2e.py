"""Lanes end to end, with real ``flowhooks worker`` processes and stand-ins: a destination that
must wait (paced, ``Retry-After``, failing) holds back nothing else; a storm reaches Slack as
one digest; a circuit opens, a probe closes it and the lane drains in order; a SIGKILLed
drainer's lane is drained by another worker."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from config import keys
from tests.e2e.delivery_support import (
    WEBHOOK_OK,
    Flowhooks,
    Sinks,
    deliveries,
    running,
    serving_sinks,
)
from tests.workers.sinks.standins import Reply

pytestmark = pytest.mark.slow

ROUTES = """
actions: []
routes:
  - actions: [hook]
    continue: true
  - matchers: ['kind="flow.failed"']
    actions: [{actions}]
    resolve: true
    repeat_interval: 1h
"""
FAILING_HOOK = """
flaky:
  webhook: {url: "${WEBHOOK_URL}"}
  retry: {initial: 0.2s, max_interval: 1s, give_up_after: 5m, jitter: 0}
  circuit: {after: 3, cool_down: 1s}
"""
RATE_LIMITED = Reply(429, b"rate_limited", headers={"Retry-After": "3"})


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


def start(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path, actions: str, *, workers: int = 1
) -> Iterator[Flowhooks]:
    routes = ROUTES.format(actions=actions)
    with running(redis, redis_url, sinks, tmp_path, routes, actions=FAILING_HOOK) as flowhooks:
        for _ in range(workers):
            flowhooks.start_worker()
        yield flowhooks


@pytest.fixture
def to_slack(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, "slack")


@pytest.fixture
def to_flaky(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, "flaky")


@pytest.fixture
def two_workers(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, "slack", workers=2)


def outcomes(flowhooks: Flowhooks, ref: str, action: str) -> list[str]:
    return [e["outcome"] for e in deliveries(flowhooks.timeline(ref), action)]


def done(flowhooks: Flowhooks, ref: str, action: str) -> bool:
    return bool({"delivered", "carried"} & set(outcomes(flowhooks, ref, action)))


def post_failures(flowhooks: Flowhooks, count: int, first_flow: int = 900) -> list[str]:
    return [
        flowhooks.post("FLOW_FAILED", f"storm-{i}", flow_id=first_flow + i, flow_name=f"f{i}")
        for i in range(count)
    ]


def texts(message: dict[str, Any]) -> str:
    return json.dumps(message)


def test_slack_answering_429_holds_back_nothing_and_the_storm_is_one_digest(
    to_slack: Flowhooks, sinks: Sinks
) -> None:
    """Slack asks for a pause: every event still reaches the webhook while Slack's
    notifications wait in its lane; then the eight that waited go out as one digest, each
    event's timeline naming it; the next message says which flows still fail."""
    sinks.slack.reset(RATE_LIMITED)
    refs = post_failures(to_slack, 8)
    to_slack.wait(lambda: all(done(to_slack, r, "hook") for r in refs), "the webhook's")
    waiting = to_slack.redis.llen(keys.lane("slack"))
    slack_done = [r for r in refs if done(to_slack, r, "slack")]
    assert waiting > 0 and not slack_done  # the webhook did not wait for Slack

    to_slack.wait(lambda: all(done(to_slack, r, "slack") for r in refs), "Slack's")
    statuses = [json.loads(r.body) for r in sinks.slack.requests]
    assert len(statuses) == 2  # the one answered 429, then the digest
    digest = statuses[1]
    assert digest["text"].startswith("8 flows failed since ")
    assert all(f"f{i}" in texts(digest) for i in range(8))
    carried = [deliveries(to_slack.timeline(r), "slack")[-1] for r in refs]
    assert {e["outcome"] for e in carried} == {"carried"}
    assert len({e["digest"] for e in carried}) == 1
    to_slack.wait(lambda: to_slack.redis.llen(keys.lane("slack")) == 0, "the lane to empty")

    back = to_slack.post("FLOW_SUCCESS", "back-0", flow_id=900, flow_name="f0")
    to_slack.wait(lambda: done(to_slack, back, "slack"), "the recovery of f0")
    after = to_slack.post("FLOW_FAILED", "after-1", flow_id=990, flow_name="late")
    to_slack.wait(lambda: done(to_slack, after, "slack"), "the message after")
    recovered, late = (r.json()["text"] for r in sinks.slack.requests[2:])
    # the next message after the storm (f0's recovery, since the digest opened f0's
    # incident) says what became of the storm's flows; the one after it no more
    assert recovered.startswith("Recovered: f0\nSince the storm of ")
    assert "(8 flows): 7 still failing (f1, f2, f3, f4, f5, f6, f7), 1 recovered (f0)." in recovered
    assert "storm" not in late


def test_a_failing_destination_opens_its_circuit_and_a_probe_closes_it(
    to_flaky: Flowhooks, sinks: Sinks
) -> None:
    """Three failures in a row open the circuit: what follows waits in the lane instead of
    retrying on its own; once the destination answers again, one probe closes the circuit and
    the lane drains in order, every delivery made once."""
    sinks.webhook.reset(default=Reply(503, b"down"))
    refs = post_failures(to_flaky, 6, first_flow=950)
    state = keys.lane_state("flaky")
    to_flaky.wait(
        lambda: (
            to_flaky.redis.hget(state, "circuit") == b"open"
            and to_flaky.redis.llen(keys.lane("flaky")) == len(refs)
        ),
        "the circuit to open with every delivery in the lane",
    )
    lane = [
        json.loads(raw)["spec"]["ref"] for raw in to_flaky.redis.lrange(keys.lane("flaky"), 0, -1)
    ]
    assert sorted(lane) == sorted(refs)
    sinks.webhook.default = WEBHOOK_OK

    to_flaky.wait(lambda: all(done(to_flaky, r, "flaky") for r in refs), "the lane to drain")
    assert to_flaky.redis.hget(state, "circuit") == b"closed"
    # the "flaky" action and the "hook" action share the stand-in: keep flaky's requests
    flaky_ok = [
        keys.ref("etl", body["event"]["id"])
        for body in (r.json() for r in sinks.webhook.requests)
        if isinstance(body, dict) and "event" in body
    ]
    delivered_once = [r for r in flaky_ok if r in refs]
    assert delivered_once[-len(refs) :] == lane  # the lane, in order, after the probe
    failed = sum(outcomes(to_flaky, r, "flaky").count("failed") for r in refs)
    assert failed < 2 * len(refs)  # not each delivery retrying on its own while it was down


def test_a_sigkilled_drainers_lane_is_drained_by_another_worker(
    two_workers: Flowhooks, sinks: Sinks
) -> None:
    """Slack's pace keeps a drainer at its lane for seconds; SIGKILLed then, its lease lapses
    and the other worker drains what is left: nothing is lost."""
    refs = post_failures(two_workers, 5)  # five: not a storm, each paced on its own
    lease = keys.lane_lease("slack")
    two_workers.wait(lambda: bool(two_workers.redis.get(lease)), "a drainer to take the lane")
    holder = two_workers.redis.get(lease)
    assert holder is not None
    [drainer] = [w for w in two_workers.workers if w.name == keys.text(holder)]
    drainer.kill()
    assert two_workers.redis.llen(keys.lane("slack")) > 0  # it died with work left
    two_workers.wait(lambda: all(done(two_workers, r, "slack") for r in refs), "the lane")
    survivor = next(w for w in two_workers.workers if w is not drainer)
    assert survivor.alive
    assert len({json.dumps(r.json()) for r in sinks.slack.requests}) == len(refs)
