"""How a route job cuts the events it took into waves routed side by side
(:func:`workers.tasks.waves`): within a wave no event's plan reads what another's delivery notes,
and the events of one flow keep their order."""

from typing import Any

from config.schema import Config
from tests.support import make_config
from workers.tasks import Taken, waves

CONFIG = """
sources: {etl: {allow_unsigned: true}}
expect:
  orders:
    matchers: ['flow_id="7"']
    every: 26h
"""


def config() -> Config:
    return make_config(CONFIG)


def event(event_id: str, kind: str = "flow.failed", flow_id: str | None = "1") -> Taken:
    found: dict[str, Any] = {"id": event_id, "source": "etl", "kind": kind}
    if flow_id is not None:
        found["flow_id"] = flow_id
    return (f"route-{event_id}", f"etl:{event_id}"), found


def ids(waves: list[list[Taken]]) -> list[list[str]]:
    return [[job_id.removeprefix("route-") for (job_id, _), _ in wave] for wave in waves]


def test_events_of_distinct_flows_make_one_wave() -> None:
    taken = [event("a", flow_id="1"), event("b", flow_id="2"), event("c", "flow.succeeded", "3")]
    assert ids(list(waves(config(), taken))) == [["a", "b", "c"]]


def test_a_flow_seen_again_starts_the_next_wave_in_order() -> None:
    taken = [
        event("a", flow_id="1"),
        event("b", flow_id="2"),
        event("c", "flow.succeeded", "1"),
        event("d", flow_id="3"),
        event("e", flow_id="1"),
    ]
    assert ids(list(waves(config(), taken))) == [["a", "b"], ["c", "d"], ["e"]]


def test_events_that_are_not_a_flows_failure_or_success_go_alone() -> None:
    taken = [
        event("a", flow_id="1"),
        event("b", "flow.started", "2"),
        event("c", flow_id=None),
        event("d", flow_id="3"),
        event("e", "webhook.resumed", None),
    ]
    assert ids(list(waves(config(), taken))) == [["a"], ["b"], ["c"], ["d"], ["e"]]


def test_a_success_that_meets_an_expectation_goes_alone() -> None:
    taken = [event("a", flow_id="1"), event("b", "flow.succeeded", "7"), event("c", flow_id="2")]
    assert ids(list(waves(config(), taken))) == [["a"], ["b"], ["c"]]


def test_an_expired_event_goes_alone() -> None:
    expired: Taken = (("route-b", "etl:b"), None)
    taken = [event("a", flow_id="1"), expired, event("c", flow_id="2")]
    assert ids(list(waves(config(), taken))) == [["a"], ["b"], ["c"]]
