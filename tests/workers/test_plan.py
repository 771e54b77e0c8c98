"""What an event sends, and what is suppressed and why: ``plan``, table-driven from
plan_cases.yaml; delivery ids; the retry schedule of ``backoff``."""

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.durations import parse_duration
from config.schema import Config, RetryPolicy
from config.silences import Silence
from tests.support import make_config
from workers.delivery import Incident, Planned, backoff, delivery_id, group_id, plan
from workers.routing import match

CASES = yaml.safe_load((Path(__file__).parent / "plan_cases.yaml").read_text())
HEAD = """
sources: {etl: {allow_unsigned: true}}
actions:
  a: {log: {}}
  b: {log: {}}
  c: {log: {}}
  quiet: {log: {}, send_resolved: false}
"""
EVENT = {"id": "e1", "source": "etl", "kind": "flow.failed", "flow_id": "7", "flow_name": "orders"}
AT = "2026-05-09T03:12:00Z"


def config_with(table: dict[str, Any]) -> Config:
    parts = {"routes": table["routes"], "time_intervals": table.get("time_intervals", {})}
    return make_config(HEAD + yaml.safe_dump(parts))


def instant(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    assert at.tzinfo is not None, f"{text} names no instant"
    return at


def silence(spec: dict[str, Any]) -> Silence:
    starts, ends = spec["window"]
    return Silence(spec["id"], tuple(spec["matchers"]), instant(starts), instant(ends), "me", "")


def incident(spec: dict[str, Any], at: datetime) -> Incident:
    notified = at.timestamp() - parse_duration(spec["notified"])
    return Incident(
        spec["route"],
        spec["action"],
        notified - 3600,
        notified,
        spec["resolve"],
        spec.get("acknowledged", False),
    )


def row(p: Planned, width: int) -> list[str | None]:
    return [p.route, p.action, p.kind, p.suppressed, p.detail][:width]


def plan_case(table: dict[str, Any], case: dict[str, Any]) -> list[Planned]:
    at = instant(case.get("at", AT))
    event = {k: v for k, v in (EVENT | case.get("event", {})).items() if v is not None}
    return plan(
        config_with(table),
        event,
        at=at,
        silences=[silence(s) for s in case.get("silences", [])],
        incidents=[incident(i, at) for i in case.get("incidents", [])],
    )


@pytest.mark.parametrize(
    ("table", "case"),
    [(t, c) for t in CASES for c in t["cases"]],
    ids=[
        f"{t['name']}: {c.get('event', {})} at {c.get('at', AT)}" for t in CASES for c in t["cases"]
    ],
)
def test_plan_table(table: dict[str, Any], case: dict[str, Any]) -> None:
    planned, want = plan_case(table, case), case["expect"]
    # a row gives the detail (the silence id, the interval…) when it has a fifth column
    widths = [len(w) for w in want] if len(want) == len(planned) else [5] * len(planned)
    assert [row(p, w) for p, w in zip(planned, widths, strict=True)] == want


def test_plan_is_pure() -> None:
    """The same inputs give the same plan, with the same ids, whenever it is made."""
    table = CASES[0]
    first = plan_case(table, {"event": {"kind": "flow.failed"}})
    assert plan_case(table, {"event": {"kind": "flow.failed"}}) == first


def test_planned_notifications_carry_their_route_settings() -> None:
    """The worker groups and notes incidents from ``match``: the route after inheritance."""
    table = next(t for t in CASES if t["name"].startswith("group_by"))
    [planned, _] = plan_case(table, {"event": {"source": "prod"}})
    assert planned.match is not None
    assert planned.match.group_by == ("flow_name",)
    assert planned.match.path == planned.route


def test_a_naive_instant_is_refused() -> None:
    table = next(t for t in CASES if t["name"].startswith("mute and active"))
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(
            config_with(table),
            EVENT,
            at=datetime(2026, 5, 9, 3, 12),  # naive: the point of the test
            silences=[],
            incidents=[],
        )


# Delivery ids --------------------------------------------------------------------------------

RESOLVING = make_config(
    HEAD
    + """
routes:
  actions: [a, b]
  resolve: true
  routes:
    - {matchers: ['kind="flow.failed"'], actions: [a, b]}
"""
)


def ids(event: dict[str, Any], incidents: Sequence[Incident] = ()) -> dict[tuple[str, ...], str]:
    at = instant(AT)
    planned = plan(RESOLVING, EVENT | event, at=at, silences=[], incidents=incidents)
    return {(p.route, p.action, p.kind): p.delivery_id for p in planned}


def test_delivery_ids_are_deterministic_and_fit_for_rq_job_ids() -> None:
    first = ids({})
    assert ids({}) == first
    for value in first.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value)
        assert delivery_id("etl:e1", "routes.routes[0]", "a", "notify") in first.values()


def test_delivery_ids_differ_by_event_route_action_and_kind() -> None:
    open_ = [Incident("routes.routes[0]", "a", 0, 0, True)]
    seen = [
        *ids({}).values(),  # failure: routes.routes[0] -> a, b
        *ids({"id": "e2"}).values(),
        *ids({"source": "etl-eu"}).values(),
        *ids({"kind": "flow.succeeded"}, open_).values(),  # routes -> a, b; resolve of a
    ]
    assert len(seen) == 9
    assert len(set(seen)) == len(seen)


def test_delivery_id_parts_cannot_run_together() -> None:
    assert delivery_id("etl:e1", "ab", "c") != delivery_id("etl:e1", "a", "bc")


def test_a_resolve_and_a_notification_of_one_event_are_different_deliveries() -> None:
    """A success both notified on the root and resolving the root's incident for ``a``."""
    found = ids({"kind": "flow.succeeded"}, [Incident("routes", "a", 0, 0, True)])
    assert found[("routes", "a", "notify")] != found[("routes", "a", "resolve")]


def test_grouping_by_every_label_separates_events_that_differ() -> None:
    config = make_config(HEAD + "routes: {actions: [a], group_by: ['...']}\n")
    [route] = match(config.routes, {})
    one = group_id(route, "a", {"flow_id": "7", "flow_name": "orders"}, [])
    other = group_id(route, "a", {"flow_id": "8", "flow_name": "crm"}, [])
    assert one != other


# backoff ---------------------------------------------------------------------------------


def policy(**fields: Any) -> RetryPolicy:
    return RetryPolicy.model_validate({"jitter": 0, **fields})


def test_without_jitter_the_schedule_is_exact() -> None:
    steady = policy(initial="10s", factor=2, max_interval="5m")
    delays = [backoff(steady, attempt, None) for attempt in range(1, 9)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_a_factor_of_one_retries_at_a_constant_interval() -> None:
    constant = policy(initial="30s", factor=1, max_interval="30s")
    assert {backoff(constant, attempt, None) for attempt in range(1, 50)} == {30}


def test_jitter_spreads_each_delay_within_its_fraction() -> None:
    jittery = policy(initial="10s", factor=3, max_interval="1h", jitter=0.2)
    for attempt, base in [(1, 10.0), (2, 30.0), (3, 90.0), (9, 3600.0)]:
        delays = [backoff(jittery, attempt, None) for _ in range(300)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays), (attempt, min(delays))
        assert len(set(delays)) > 1  # workers that failed together do not retry together
        assert min(delays) < base < max(delays)


def test_a_longer_retry_after_wins() -> None:
    jittery = policy(initial="10s", max_interval="1m", jitter=0.5)
    assert backoff(jittery, 1, 120.0) == 120.0
    assert backoff(policy(initial="10s"), 1, 2.0) == 10.0
    assert backoff(policy(initial="10s"), 1, 0.0) == 10.0
    assert backoff(policy(initial="10s"), 3, 40.5) == 40.5


def test_the_default_schedule_starts_near_ten_seconds() -> None:
    default = RetryPolicy()
    first = [backoff(default, 1, None) for _ in range(100)]
    assert all(8 <= d <= 12 for d in first)


def test_a_long_retry_at_the_max_interval_does_not_overflow() -> None:
    """initial = max_interval = 10s with the default factor retries every 10 s for a day:
    8640 attempts, whose delay stays 10 s."""
    steady = policy(initial="10s", max_interval="10s")
    assert backoff(steady, 8640, None) == 10.0
