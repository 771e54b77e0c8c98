"""``/api/metrics/summary``: runs, durations and deliveries of the events received in a window,
from events seeded with known numbers."""

from typing import Any

import httpx
import pytest
from redis import Redis

from tests.receiver.admin.support import NOW_MS, store

HOUR = 3_600_000


def delivery(outcome: str) -> dict[str, Any]:
    return {"at": "t", "stage": "delivery", "delivery_id": f"d-{outcome}", "outcome": outcome}


@pytest.fixture
def seeded(redis: Redis) -> None:
    """Within the last day: 20 runs with durations 100, 200 … 2000 ms (16 succeeded, 3 failed,
    one timed out), a warning without a duration, a running flow and a resource change (no runs
    that ended); two days ago a failure that is out of the window."""
    for n in range(1, 21):
        kind = "flow.failed" if n in (3, 7, 11) else "flow.timeout" if n == 20 else "flow.succeeded"
        timeline = [delivery("delivered")] if kind == "flow.succeeded" else [
            delivery("failed"), delivery("dead_letter")
        ]  # fmt: skip
        store(redis, f"run-{n}", received_ms=NOW_MS - n * 60_000, kind=kind,
              duration_ms=n * 100, timeline=timeline)  # fmt: skip
    store(redis, "warned", received_ms=NOW_MS - HOUR, kind="flow.warning", duration_ms=None)
    store(redis, "running", received_ms=NOW_MS - HOUR, kind="flow.running", duration_ms=5)
    store(redis, "changed", received_ms=NOW_MS - HOUR, kind="resource.changed",
          timeline=[delivery("skipped")])  # fmt: skip
    store(redis, "old", received_ms=NOW_MS - 48 * HOUR, kind="flow.failed", duration_ms=99_999)


@pytest.mark.usefixtures("seeded")
def test_the_numbers_of_the_last_day(api: httpx.Client) -> None:
    response = api.get("/metrics/summary", params={"windowHours": 24})
    assert response.status_code == 200
    summary = response.json()
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (21, 16, 4)
    assert summary["byKind"] == {
        "flow.succeeded": 16,
        "flow.warning": 1,
        "flow.failed": 3,
        "flow.canceled": 0,
        "flow.timeout": 1,
    }
    assert summary["avgDurationMs"] == 1050  # (100 + … + 2000) / 20
    assert summary["p95DurationMs"] == 1900  # the 19th of 20, nearest rank
    assert summary["deliveries"] == {"dead_letter": 4, "delivered": 16, "failed": 4, "skipped": 1}
    assert summary["windowHours"] == 24


@pytest.mark.usefixtures("seeded")
def test_a_wider_window_takes_in_older_events(api: httpx.Client) -> None:
    summary = api.get("/metrics/summary", params={"windowHours": 72}).json()
    assert (summary["total"], summary["failed"]) == (22, 5)
    assert summary["p95DurationMs"] == 2000
    default = api.get("/metrics/summary").json()
    assert (default["windowHours"], default["total"]) == (24, 21)


def test_an_empty_window(api: httpx.Client) -> None:
    summary = api.get("/metrics/summary", params={"windowHours": "0.5"}).json()
    assert (summary["total"], summary["avgDurationMs"], summary["p95DurationMs"]) == (0, None, None)
    assert summary["deliveries"] == {}


@pytest.mark.parametrize("hours", ["0", "-1", "abc", "nan", "inf", "9000", "1e400", ""])
def test_a_bad_window_is_400(api: httpx.Client, hours: str) -> None:
    response = api.get("/metrics/summary", params={"windowHours": hours})
    assert response.status_code == 400
    assert response.json()["error"].startswith("windowHours: must be a number above 0")
