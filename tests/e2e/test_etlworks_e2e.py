"""Etlworks actions from the first webhook to the last run: the Etlworks simulator runs the
flows and sends signed webhooks to the real receiver, real worker processes (with RQ's
scheduler, which runs the retries and the polls) call the simulator's API, a PagerDuty stand-in
hears of the failures, and everything is kept in a real Redis."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq.queue import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from config import keys
from config.etlworks import TRIGGER_PARAM
from tests.e2e.delivery_support import (
    ROUTING_KEY,
    Sinks,
    deliveries,
    serving_sinks,
    stages,
)
from tests.e2e.etlworks_support import (
    outcome_ref,
    running,
    runs_of,
    settled,
    stage_entries,
    start_run,
    synthetic_ref,
    trigger_state,
)
from tests.etlworks.simulator import API_KEY, Simulator
from workers.delivery import delivery_id
from workers.etlworks.actions import MAX_DEPTH

pytestmark = pytest.mark.slow

FIRST_ROUTE = "routes.routes[0]"
RUN_DATE = {"runDate": "2024-05-01"}


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


# 1. A failed flow retried --------------------------------------------------------------------

RETRY_ACTIONS = """
retry-once:
  etlworks_retry: {max_attempts: 1, delay: 1s, escalate: [escalate-log]}
"""
RETRY_ROUTES = """
routes:
  - matchers: ['kind="flow.failed"']
    actions: [pager, retry-once]
    resolve: true
    repeat_interval: 1h
"""


def test_a_failed_flow_is_retried_once_and_its_success_resolves_the_incident(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """The failure pages and schedules the retry (``delay``, a job RQ's scheduler runs); the
    retry runs the flow with the failed run's parameters, and its success, Etlworks' webhook,
    resolves the incident the failure opened."""
    sim = etlworks_sim
    sim.add_flow(101, "orders", duration=1.0, outcomes=["error", "success"])
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=RETRY_ACTIONS, routes=RETRY_ROUTES
    ) as system:
        system.start_worker()
        first = start_run(sim, 101, RUN_DATE)
        failure = outcome_ref(system, sim, first)
        failed, retried = runs_of(sim, 101, 2, system)
        success = outcome_ref(system, sim, retried)
        system.wait(lambda: len(sinks.pagerduty.requests) == 2, "a trigger and a resolve")
        settled(system, sim)

        assert (failed.status, retried.status) == ("error", "success")
        trigger = delivery_id(failure, FIRST_ROUTE, "retry-once", "notify")
        assert retried.params == {**RUN_DATE, TRIGGER_PARAM: trigger}
        assert trigger_state(redis, trigger)["audit_id"] == str(retried.audit_id)

        opened, resolved = (r.json() for r in sinks.pagerduty.requests)
        assert opened["event_action"] == "trigger"
        assert resolved["event_action"] == "resolve"
        assert opened["dedup_key"] == resolved["dedup_key"] == f"flowhooks:etl:{failed.flow.id}"
        assert opened["routing_key"] == resolved["routing_key"] == ROUTING_KEY

        timeline = system.timeline(failure)
        waiting, done = stage_entries(timeline, "action")
        assert (waiting["outcome"], waiting["reason"]) == ("waiting", "retry delay")
        assert (done["outcome"], done["retry"], done["audit_id"]) == (
            "done",
            1,
            str(retried.audit_id),
        )
        assert "escalated" not in done
        [ran] = stage_entries(timeline, "run")
        assert (ran["flow_id"], ran["audit_id"], ran["status"]) == (
            "101",
            str(retried.audit_id),
            "started",
        )
        assert [
            (e["kind"], e["outcome"]) for e in deliveries(system.timeline(success), "pager")
        ] == [("resolve", "delivered")]
        assert not any(
            deliveries(system.timeline(ref), "escalate-log") for ref in (failure, success)
        )
        assert len(sim.runs(101)) == 2


def test_a_retry_that_fails_too_escalates_once(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """Two webhook registrations: Etlworks sends each outcome twice, under two event ids. Each
    outcome is routed once, and the chain escalates once, when its only retry failed."""
    sim = etlworks_sim
    sim.add_flow(102, "ledger", duration=1.0, outcomes=["error", "error"])
    with running(
        redis,
        redis_url,
        sinks,
        sim,
        tmp_path,
        actions=RETRY_ACTIONS,
        routes=RETRY_ROUTES,
        webhooks=2,
    ) as system:
        system.start_worker()
        first = start_run(sim, 102, RUN_DATE)
        failures = [outcome_ref(system, sim, first, n) for n in range(2)]
        _, retried = runs_of(sim, 102, 2, system)
        again = [outcome_ref(system, sim, retried, n) for n in range(2)]
        settled(system, sim)

        assert len(sim.runs(102)) == 2  # the one retry, no other
        routed = [
            ref for ref in (*failures, *again) if "duplicate" not in stages(system.timeline(ref))
        ]
        assert len(routed) == 2
        for ref in (*failures, *again):
            if ref not in routed:
                [dup] = stage_entries(system.timeline(ref), "duplicate")
                assert dup["of"] in routed
        escalations = [
            e
            for ref in (*failures, *again)
            for e in deliveries(system.timeline(ref), "escalate-log")
        ]
        assert [(e["outcome"], e["kind"]) for e in escalations] == [("delivered", "notify")]
        last = next(ref for ref in again if ref in routed)
        [acted] = stage_entries(system.timeline(last), "action")
        assert (acted["escalated"], acted["reason"]) == (True, "1 retries failed")
        assert len(sinks.pagerduty.requests) == 1  # the retry's failure is a repeat


# 2. One run leads to the next ----------------------------------------------------------------

CHAIN_ACTIONS = """
run-b:
  etlworks_run: {flow_id: 202, params: {runDate: "{{ event.params.runDate }}"}, wait: 30s}
run-c:
  etlworks_run: {flow_id: 203}
"""
CHAIN_ROUTES = """
routes:
  - matchers: ['kind="flow.succeeded"', 'flow_id="201"']
    actions: [run-b]
  - matchers: ['kind="flow.succeeded"', 'flow_id="202"']
    actions: [run-c]
"""


def test_a_success_runs_the_next_flow_whose_outcome_is_routed_once(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """B is followed (``wait``) and sends its own webhook as well: of its two outcome events,
    the real one and the one flowhooks makes when its poll sees B ended, one is routed and the
    other is a duplicate, so C runs once."""
    sim = etlworks_sim
    for flow_id, name in ((201, "extract"), (202, "load"), (203, "report")):
        sim.add_flow(flow_id, name, duration=1.0)
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=CHAIN_ACTIONS, routes=CHAIN_ROUTES
    ) as system:
        system.start_worker()
        a = start_run(sim, 201, RUN_DATE)
        a_success = outcome_ref(system, sim, a)
        [b] = runs_of(sim, 202, 1, system)
        webhook = outcome_ref(system, sim, b)
        polled = synthetic_ref(202, b.audit_id, "success")
        system.wait(lambda: bool(redis.exists(keys.event(polled))), "the poll's outcome event")
        runs_of(sim, 203, 1, system)
        settled(system, sim)

        trigger = delivery_id(a_success, FIRST_ROUTE, "run-b", "notify")
        assert b.params == {**RUN_DATE, TRIGGER_PARAM: trigger}
        assert len(sim.runs(202)) == 1
        assert len(sim.runs(203)) == 1  # C ran once, for one of B's two outcome events

        timelines = {ref: system.timeline(ref) for ref in (webhook, polled)}
        duplicates = {ref: stage_entries(t, "duplicate") for ref, t in timelines.items()}
        [(dropped, [duplicate])] = [(ref, found) for ref, found in duplicates.items() if found]
        [kept] = [ref for ref in timelines if ref != dropped]
        assert duplicate["of"] == kept
        assert "routed" not in stages(timelines[dropped])
        [acted] = stage_entries(timelines[kept], "action")
        assert (acted["action"], acted["outcome"], acted["flow_id"]) == ("run-c", "done", "203")

        started, ended = stage_entries(system.timeline(a_success), "run")
        assert (started["flow_id"], started["audit_id"], started["status"]) == (
            "202",
            str(b.audit_id),
            "started",
        )
        assert (ended["status"], ended["outcome"]) == ("success", polled)


# 3. A worker killed between the run call and the audit id -----------------------------------

RUN_ACTIONS = """
run-b:
  etlworks_run: {flow_id: 302, params: {runDate: "{{ event.params.runDate }}"}}
  retry: {initial: 0.2s, max_interval: 1s, give_up_after: 30s, jitter: 0}
"""
RUN_ROUTES = """
routes:
  - matchers: ['kind="flow.failed"', 'flow_id="301"']
    actions: [run-b]
"""


@pytest.mark.parametrize("called", [True, False], ids=["after-the-call", "before-the-call"])
def test_a_run_claimed_by_a_dead_worker_is_found_again_not_started_twice(
    redis: Redis,
    redis_url: str,
    sinks: Sinks,
    etlworks_sim: Simulator,
    tmp_path: Path,
    *,
    called: bool,
) -> None:
    """The state a worker leaves when it dies after claiming the trigger (and, ``called``,
    after Etlworks started the run) but before recording the audit id; then a worker routes
    the event again, as RQ's abandoned-job recovery would. Exactly one run either way, and its
    audit id recorded."""
    sim = etlworks_sim
    sim.add_flow(301, "extract", duration=1.0, outcomes=["error"])
    sim.add_flow(302, "load", duration=1.0)
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=RUN_ACTIONS, routes=RUN_ROUTES
    ) as system:
        failure = outcome_ref(system, sim, start_run(sim, 301, RUN_DATE))
        trigger = delivery_id(failure, FIRST_ROUTE, "run-b", "notify")
        # Claimed long ago (longer than a job may live), no audit id.
        redis.hset(keys.trigger(trigger), "claimed_at", repr(time.time() - 3600))
        redis.expire(keys.trigger(trigger), 3600)
        if called:
            start_run(sim, 302, {**RUN_DATE, TRIGGER_PARAM: trigger})

        system.start_worker()
        system.wait(
            lambda: bool(stage_entries(system.timeline(failure), "action")), "the run action"
        )
        settled(system, sim)

        [b] = sim.runs(302)
        assert b.params == {**RUN_DATE, TRIGGER_PARAM: trigger}
        assert trigger_state(redis, trigger)["audit_id"] == str(b.audit_id)
        [acted] = stage_entries(system.timeline(failure), "action")
        assert (acted["outcome"], acted["audit_id"]) == ("done", str(b.audit_id))
        [ran] = stage_entries(system.timeline(failure), "run")
        assert (ran["flow_id"], ran["audit_id"], ran["status"]) == (
            "302",
            str(b.audit_id),
            "started",
        )
        # When the run was started, it was found among the executions, not started again.
        assert sim.count("POST /v1/flows/302/run") == 1


@pytest.mark.parametrize("claimer", ["gone", "alive"])
def test_a_run_claimed_by_a_worker_now_gone_starts_within_seconds(
    redis: Redis,
    redis_url: str,
    sinks: Sinks,
    etlworks_sim: Simulator,
    tmp_path: Path,
    *,
    claimer: str,
) -> None:
    """A claim 20 s old, no run among the executions: when the worker that claimed it is gone
    (no liveness key), the run starts now, not a job timeout later; while it lives, the
    delivery waits for it."""
    sim = etlworks_sim
    sim.add_flow(301, "extract", duration=1.0, outcomes=["error"])
    sim.add_flow(302, "load", duration=1.0)
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=RUN_ACTIONS, routes=RUN_ROUTES
    ) as system:
        failure = outcome_ref(system, sim, start_run(sim, 301, RUN_DATE))
        trigger = delivery_id(failure, FIRST_ROUTE, "run-b", "notify")
        worker = f"claimer-{claimer}"
        redis.hset(keys.trigger(trigger), "claimed_at", repr(time.time() - 20))
        redis.hset(keys.trigger(trigger), "worker", worker)
        redis.expire(keys.trigger(trigger), 3600)
        if claimer == "alive":
            redis.set(keys.worker(worker), "", ex=600)

        system.start_worker()
        system.wait(
            lambda: bool(stage_entries(system.timeline(failure), "action")), "the run action"
        )
        [acted, *_] = stage_entries(system.timeline(failure), "action")
        if claimer == "alive":
            assert acted["outcome"] == "waiting"
            assert sim.runs(302) == []
            return
        settled(system, sim)
        [b] = sim.runs(302)
        assert b.params == {**RUN_DATE, TRIGGER_PARAM: trigger}
        assert (acted["outcome"], acted["audit_id"]) == ("done", str(b.audit_id))
        assert trigger_state(redis, trigger)["worker"] == "e2e-worker-1"  # the claim, anew


# 4. What the API answers ------------------------------------------------------------------


def test_a_run_refused_with_503_then_429_is_retried_and_started_once(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """An answer says nothing was started: the claim is let go and the action retried on its
    own schedule (after ``Retry-After`` for the 429) until a run starts, once."""
    sim = etlworks_sim
    sim.add_flow(301, "extract", duration=1.0, outcomes=["error"])
    sim.add_flow(302, "load", duration=1.0)
    sim.script("POST /v1/flows/302/run", [503, (429, {"Retry-After": "1"})])
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=RUN_ACTIONS, routes=RUN_ROUTES
    ) as system:
        system.start_worker()
        failure = outcome_ref(system, sim, start_run(sim, 301, RUN_DATE))
        system.wait(
            lambda: bool(stage_entries(system.timeline(failure), "action")), "the run action"
        )
        settled(system, sim)

        [b] = sim.runs(302)
        assert sim.count("POST /v1/flows/302/run") == 3
        timeline = system.timeline(failure)
        tried = [(e["outcome"], e["attempt"], e["status"]) for e in deliveries(timeline, "run-b")]
        assert tried == [("failed", 1, 503), ("failed", 2, 429)]
        assert all(e["retryable"] for e in deliveries(timeline, "run-b"))
        [acted] = stage_entries(timeline, "action")
        assert (acted["outcome"], acted["attempt"], acted["audit_id"]) == (
            "done",
            3,
            str(b.audit_id),
        )
        trigger = delivery_id(failure, FIRST_ROUTE, "run-b", "notify")
        assert b.params[TRIGGER_PARAM] == trigger
        assert trigger_state(redis, trigger)["audit_id"] == str(b.audit_id)


WRONG_KEY = "wrong-etlworks-key-Zp8Vc3Qn"


def test_a_rejected_api_key_is_dead_lettered_untried_without_the_key(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """The config holds a key Etlworks does not know: a 401 is permanent, so the delivery goes
    straight to the dead-letter registry, and no record of it shows either key."""
    sim = etlworks_sim
    sim.add_flow(301, "extract", duration=1.0, outcomes=["error"])
    sim.add_flow(302, "load", duration=1.0)
    with running(
        redis,
        redis_url,
        sinks,
        sim,
        tmp_path,
        actions=RUN_ACTIONS,
        routes=RUN_ROUTES,
        api_key=WRONG_KEY,
    ) as system:
        system.start_worker()
        failure = outcome_ref(system, sim, start_run(sim, 301, RUN_DATE))
        queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
        dead_letters = FailedJobRegistry(queue=queue)
        system.wait(lambda: dead_letters.count == 1, "a dead letter")
        settled(system, sim)

        assert sim.runs(302) == []
        assert sim.count("POST /v1/flows/302/run") == 1  # no retry
        failed, dead = deliveries(system.timeline(failure), "run-b")
        assert (failed["outcome"], failed["status"], failed["retryable"]) == ("failed", 401, False)
        assert dead["outcome"] == "dead_letter"
        assert "rejected the API key" in dead["reason"]
        assert dead_letters.get_job_ids() == [dead["job_id"]]

        listed = system.cli("dlq", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        [row] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (row["job"], row["action"], row["reason"]) == (
            dead["job_id"],
            "run-b",
            dead["reason"],
        )
        shown = system.cli("dlq", "show", row["job"], "-o", "json")
        assert shown.returncode == 0, shown.stderr
        trigger = delivery_id(failure, FIRST_ROUTE, "run-b", "notify")
        assert not redis.exists(keys.trigger(trigger))  # Etlworks answered: nothing started
        said = "\n".join(
            [
                listed.stdout,
                shown.stdout,
                json.dumps(system.timeline(failure)),
                system.worker_logs(),
            ]
        )
        for key in (WRONG_KEY, API_KEY):
            assert key not in said


# 5. consecutive_failures -------------------------------------------------------------------

BREAKER_ACTIONS = """
pause-extract:
  etlworks_schedule: {schedule_id: 77}
"""
BREAKER_ROUTES = """
routes:
  - matchers: ['kind="flow.failed"', 'consecutive_failures="2"']
    actions: [pause-extract]
"""


def test_the_second_failure_in_a_row_disables_the_schedule_once(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """Three failures, a success, two failures: the schedule is disabled by the second failure
    of each streak, never by the third."""
    sim = etlworks_sim
    sim.schedules[77] = True
    outcomes = ["error", "error", "error", "success", "error", "error"]
    sim.add_flow(501, "extract", duration=1.0, outcomes=list(outcomes))
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=BREAKER_ACTIONS, routes=BREAKER_ROUTES
    ) as system:
        system.start_worker()
        refs = []
        for n in range(len(outcomes)):
            ref = outcome_ref(system, sim, start_run(sim, 501))
            system.wait_routed(ref)
            refs.append(ref)
            if n == 1:
                assert sim.schedules[77] is False
                sim.schedules[77] = True  # an operator turns it back on
        settled(system, sim)

        assert sim.count("PUT /v1/schedules/{id}/disable") == 2
        assert sim.schedules[77] is False
        acted = [bool(stage_entries(system.timeline(ref), "action")) for ref in refs]
        assert acted == [False, True, False, False, False, True]
        [paused] = stage_entries(system.timeline(refs[1]), "action")
        assert (paused["outcome"], paused["schedule_id"], paused["enabled"]) == (
            "done",
            "77",
            False,
        )


# 6. The story of a run ---------------------------------------------------------------------

FOLLOWED_RETRY_ACTIONS = """
retry-once:
  etlworks_retry: {max_attempts: 1, delay: 1s, wait: 30s}
"""
FOLLOWED_RETRY_ROUTES = """
routes:
  - matchers: ['kind="flow.failed"']
    actions: [retry-once]
"""


def test_events_show_tells_which_run_an_event_caused_and_what_caused_an_event(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """A's failure is retried and the retry followed (``wait``): the failure's timeline names
    the run it started and how it ended, and the event flowhooks made of that end names the
    failure as its cause."""
    sim = etlworks_sim
    sim.add_flow(601, "orders", duration=1.0, outcomes=["error", "success"])
    with running(
        redis,
        redis_url,
        sinks,
        sim,
        tmp_path,
        actions=FOLLOWED_RETRY_ACTIONS,
        routes=FOLLOWED_RETRY_ROUTES,
    ) as system:
        system.start_worker()
        failure = outcome_ref(system, sim, start_run(sim, 601, RUN_DATE))
        _, retried = runs_of(sim, 601, 2, system)
        polled = synthetic_ref(601, retried.audit_id, "success")
        system.wait(lambda: bool(redis.exists(keys.event(polled))), "the poll's outcome event")
        settled(system, sim)

        shown = system.cli("events", "show", keys.split_ref(failure)[1], "-o", "json")
        assert shown.returncode == 0, shown.stderr
        story = json.loads(shown.stdout)
        assert story["event"]["kind"] == "flow.failed"
        started, ended = stage_entries(story["timeline"], "run")
        assert (started["flow_id"], started["audit_id"], started["status"]) == (
            "601",
            str(retried.audit_id),
            "started",
        )
        assert (started["route"], started["action"]) == (FIRST_ROUTE, "retry-once")
        assert (ended["audit_id"], ended["status"], ended["outcome"]) == (
            str(retried.audit_id),
            "success",
            polled,
        )

        shown = system.cli("events", "show", keys.split_ref(polled)[1], "-o", "json")
        assert shown.returncode == 0, shown.stderr
        made = json.loads(shown.stdout)
        assert made["event"]["triggered_by"] == failure
        assert (made["event"]["kind"], made["event"]["chain_depth"]) == ("flow.succeeded", 1)
        assert made["event"]["params"] == {
            **RUN_DATE,
            TRIGGER_PARAM: delivery_id(failure, FIRST_ROUTE, "retry-once", "notify"),
        }
        [received] = stage_entries(made["timeline"], "received")
        assert (received["synthetic"], received["triggered_by"]) == (True, failure)


# A loop, declared ---------------------------------------------------------------------------

LOOP_ACTIONS = """
run-again:
  etlworks_run: {flow_id: 801, loop: true}
"""
LOOP_ROUTES = """
routes:
  - matchers: ['kind="flow.succeeded"', 'flow_id="801"']
    actions: [run-again]
"""


def test_a_declared_loop_stops_after_max_depth_runs(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """Each run's outcome comes as Etlworks' webhook alone (no ``wait``): the run parameter
    ``flowhooks_trigger`` it carries says how many runs led to it."""
    sim = etlworks_sim
    sim.add_flow(801, "refresh", duration=1.0)
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=LOOP_ACTIONS, routes=LOOP_ROUTES
    ) as system:
        system.start_worker()
        start_run(sim, 801)
        queue = Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)
        dead_letters = FailedJobRegistry(queue=queue)
        system.wait(lambda: dead_letters.count == 1 or len(sim.runs(801)) > 20, "the limit")
        settled(system, sim)

        assert len(sim.runs(801)) == 1 + MAX_DEPTH
        last = outcome_ref(system, sim, sim.runs(801)[-1])
        [dead] = [
            e
            for e in deliveries(system.timeline(last), "run-again")
            if e["outcome"] == "dead_letter"
        ]
        assert dead["reason"] == (
            f"permanent failure: etlworks: {MAX_DEPTH} runs led to this event: not starting "
            "another (the limit) (permanent)"
        )


# Known bugs outside this module's reach ---------------------------------------------------


def test_a_run_delivered_by_a_retry_job_is_not_run_again_by_the_next_success(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """A failure pages and runs B; the run is refused once (503), so a retry job starts it. A's
    next success resolves the page, and must not run B again."""
    sim = etlworks_sim
    sim.add_flow(301, "extract", duration=1.0, outcomes=["error", "success"])
    sim.add_flow(302, "load", duration=1.0)
    sim.script("POST /v1/flows/302/run", [503])
    routes = """
    routes:
      - matchers: ['kind="flow.failed"', 'flow_id="301"']
        actions: [pager, run-b]
        resolve: true
    """
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=RUN_ACTIONS, routes=routes
    ) as system:
        system.start_worker()
        failure = outcome_ref(system, sim, start_run(sim, 301, RUN_DATE))
        system.wait(
            lambda: bool(stage_entries(system.timeline(failure), "action")), "the run action"
        )
        success = outcome_ref(system, sim, start_run(sim, 301, RUN_DATE))
        system.wait_routed(success)
        settled(system, sim)

        assert len(sim.runs(302)) == 1
        assert stage_entries(system.timeline(success), "action") == []


def test_a_retry_waits_for_a_run_in_progress_then_runs(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """When the retry's delay is over, another run of the flow (Etlworks' own schedule's) is in
    progress: the retry waits for it to end, then runs."""
    sim = etlworks_sim
    flow = sim.add_flow(701, "orders", duration=None, outcomes=["error", "success"])
    with running(
        redis, redis_url, sinks, sim, tmp_path, actions=RETRY_ACTIONS, routes=RETRY_ROUTES
    ) as system:
        system.start_worker()
        first = start_run(sim, 701, RUN_DATE)
        sim.finish(first.audit_id)
        failure = outcome_ref(system, sim, first)
        other = start_run(sim, 701)  # Etlworks' own schedule runs the flow meanwhile

        def in_progress() -> bool:
            waits = stage_entries(system.timeline(failure), "action")
            return any("in progress" in str(e.get("reason")) for e in waits)

        system.wait(in_progress, "the retry to wait for the run in progress")
        flow.duration = 1.0  # the runs to come end by themselves
        sim.finish(other.audit_id)
        settled(system, sim)

        assert len(sim.runs(701)) == 3
        [*_, acted] = stage_entries(system.timeline(failure), "action")
        assert (acted["outcome"], acted["retry"]) == ("done", 1)


# 7. A join: C runs once both A and B succeeded in the window -----------------------------------

JOIN_ACTIONS = """
run-c:
  etlworks_run: {flow_id: 703}
  retry: {initial: 0.2s, max_interval: 1s, give_up_after: 30s, jitter: 0}
"""
JOIN = """
joins:
  marts:
    all: ['flow_id="701"', 'flow_id="702"']
    window: {cron: "0 0 * * *", timezone: Europe/Berlin}
    then: [run-c]
"""


def test_a_join_runs_c_once_for_a_and_b_however_often_they_arrive(
    redis: Redis, redis_url: str, sinks: Sinks, etlworks_sim: Simulator, tmp_path: Path
) -> None:
    """Every outcome arrives three times (three webhook registrations), two workers race for
    the events, and A runs twice: C runs once."""
    sim = etlworks_sim
    for flow_id, name in ((701, "orders"), (702, "customers"), (703, "marts")):
        sim.add_flow(flow_id, name, duration=0.5)
    with running(
        redis,
        redis_url,
        sinks,
        sim,
        tmp_path,
        actions=JOIN_ACTIONS,
        routes="actions: []",
        webhooks=3,
        extra=JOIN,
    ) as system:
        system.start_worker()
        system.start_worker()
        runs = [start_run(sim, 701), start_run(sim, 701), start_run(sim, 702)]
        for run in runs:
            outcome_ref(system, sim, run)
        runs_of(sim, 703, 1, system)
        settled(system, sim)
        assert len(sim.runs(703)) == 1
