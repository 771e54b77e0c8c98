"""The chaos test's verdict: which repeated deliveries a SIGKILL explains, and which incident
openings a new failure does not."""

from tests.bench.loadgen import Posted
from tests.e2e.chaos_support import Clock, Sent, duplicates, reopenings
from tests.services import Arrival, PagerDutyEvent

CLOCK = Clock(zero=1000.0)


def arrival(at: float, key: str, status: int = 200) -> Arrival:
    return Arrival(1000.0 + at, status, f"event-{key}", None, key)


def test_a_second_copy_is_explained_only_by_a_sigkill_just_after_the_first() -> None:
    arrivals = [
        arrival(10.0, "d1"),
        arrival(10.25, "d1"),  # the worker died between sending and recording
        arrival(20.0, "d2"),
        arrival(31.0, "d2"),  # no kill near the first copy
        arrival(40.0, "d3", status=503),
        arrival(41.0, "d3"),  # one delivery: a refused attempt is none
        arrival(50.0, "d4"),
    ]
    found = duplicates(arrivals, kills=[10.5, 25.0], clock=CLOCK)
    assert [(d.key, d.copies, d.kill) for d in found] == [
        ("d1", (10.0, 10.25), 10.5),
        ("d2", (20.0, 31.0), None),
    ]


def sent(event_id: str, flow_id: int, failed: bool) -> Sent:
    return Sent(event_id, flow_id, failed, Posted(0.0, 202, 0.0, 1))


def opened(at: float, event_id: str, flow_id: int) -> PagerDutyEvent:
    return PagerDutyEvent(1000.0 + at, 202, "trigger", f"k{flow_id}", event_id, True, False)


def test_an_incident_may_open_again_only_for_a_failure_after_a_success() -> None:
    events = [
        sent("a", 1, True),
        sent("b", 1, False),
        sent("c", 1, True),  # a failure after a success: a new incident is right
        sent("d", 2, True),
        sent("e", 2, True),
        sent("f", 2, False),
    ]
    received = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 1.0, "e": 1.5, "f": 2.0}
    pagerduty = [
        opened(5.0, "a", 1),
        opened(6.0, "d", 2),
        opened(7.0, "c", 1),
        opened(8.0, "e", 2),  # e came before the success that resolved d's incident
        opened(9.0, "x", 3),
    ]
    found = reopenings(pagerduty, events, received, CLOCK)
    assert [(r.dedup_key, r.event_id, r.at) for r in found] == [
        ("k2", "e", 8.0),
        ("k3", "x", 9.0),
    ]
    assert found[1].why == "not a known failure"
