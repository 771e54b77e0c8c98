"""The overview, the console's home page and ``/api/overview``: traffic per minute from a real
worker's deliveries, failures by flow, the queue, a running worker's liveness and the
scheduler, dead letters and incidents, drawn as SVG with no script."""

from pathlib import Path

import pytest
from redis import Redis

from config import activity
from receiver.admin import charts
from tests.receiver.admin.support import pipeline, sign_in
from tests.support import wait_until
from tests.workers.sinks.standins import Reply


def test_the_overview_of_a_real_pipeline(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    with pipeline(redis, redis_url, tmp_path, Reply(400, b"refused")) as system:
        system.post("ov-dead", flow_name="loads")  # refused for good: a dead letter
        system.post("ov-2", flow_name="loads")
        system.post("ov-3", flow_name="loads")
        queued = system.api("GET", "/api/overview").json()
        assert queued["queue"]["depth"] == 3
        assert queued["queue"]["oldestAgeSeconds"] >= 0
        system.work()
        with system.worker("ov-worker"):
            assert wait_until(lambda: _beating(system.api("GET", "/api/overview").json()), 30)
            found = system.api("GET", "/api/overview", params={"minutes": "60"}).json()
            [worker] = [w for w in found["workers"] if w["name"] == "ov-worker"]
            assert worker["state"] in ("idle", "busy")
            assert found["scheduler"]["holder"] is not None
            browser = sign_in(system.receiver)
            page = browser.get("/")
            browser.close()
    assert found["minutes"] == 60
    assert len(found["received"]) == len(found["delivered"]) == 60
    assert sum(found["received"]) == 3
    # one delivered, one refused; the third failure of the flow is a repeat held back
    assert sum(found["delivered"]) == 1
    assert sum(found["failed"]) == 1
    assert found["queue"]["depth"] == 0
    assert found["deadLetters"] == 1
    assert found["lanes"] == []  # no delivery had to wait
    [flow] = found["failuresByFlow"]
    assert (flow["flow_id"], flow["failures"], flow["flow_name"]) == ("12345", 3, "loads")
    assert found["incidents"] == {"open": 1, "acknowledged": 0}
    assert page.status_code == 200
    assert "<script" not in page.text
    assert page.text.count('<svg class="chart"') == 3
    assert "Events received: 3 in 180 min" in page.text
    assert "ov-worker" in page.text
    assert '<span class="big">1</span> dead letter<' in page.text
    assert '<meta http-equiv="refresh"' in page.text


def test_a_lane_that_waits_shows_its_backlog_and_pause(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """The far side asks for five minutes' rest (503, ``Retry-After``): the action's lane
    pauses and what follows waits in it, as the overview, the API and the CLI say."""
    busy = Reply(503, b"busy", headers={"Retry-After": "300"})
    with pipeline(redis, redis_url, tmp_path, busy) as system:
        system.post("lane-1")
        system.work()
        system.post("lane-2", event="FLOW_SUCCESS")
        system.work()
        found = system.api("GET", "/api/overview").json()
        browser = sign_in(system.receiver)
        page = browser.get("/")
        browser.close()
    [lane] = found["lanes"]
    assert (lane["action"], lane["circuit"]) == ("hook", "closed")
    assert lane["backlog"] >= 1
    assert 200 < lane["pausedForSeconds"] <= 300
    assert "<code>hook</code>" in page.text
    assert len(system.hook.requests) == 1  # the one answered 503; nothing sent since


def _beating(found: dict[str, object], name: str = "ov-worker") -> bool:
    workers = found["workers"]
    assert isinstance(workers, list)
    return any(w["name"] == name and w["beating"] for w in workers)


def test_a_worker_that_stopped_beating_shows(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    with pipeline(redis, redis_url, tmp_path) as system, system.worker("ov-gone") as process:

        def overview() -> dict[str, object]:
            found: dict[str, object] = system.api("GET", "/api/overview").json()
            return found

        assert wait_until(lambda: _beating(overview(), "ov-gone"), 30)
        process.kill()  # no goodbye: RQ's key outlives it, flowhooks' liveness key does not
        process.wait(timeout=10)
        redis.delete("flowhooks:worker:ov-gone")  # as its TTL would, a few seconds later
        found = system.api("GET", "/api/overview").json()
        browser = sign_in(system.receiver)
        page = browser.get("/")
        browser.close()
    [worker] = [w for w in found["workers"] if w["name"] == "ov-gone"]
    assert worker["beating"] is False
    assert "not beating" in page.text


def test_minutes_are_counted_and_read_back(redis: Redis) -> None:
    now = 1_800_000_030.0  # half a minute into its minute
    with redis.pipeline() as pipe:
        at_outcomes = [(now - 120, "delivered"), (now - 60, "failed"), (now, "done")]
        for at, outcome in [*at_outcomes, (now - 60, "dead_letter")]:
            activity.outcome(pipe, "ops", "etl:1", {"outcome": outcome}, at)
        activity.outcome(pipe, "ops", "etl:1", {"outcome": "paced"}, now)
        pipe.execute()
    assert activity.per_minute(redis, "delivered", now, 3) == [1, 0, 1]
    assert activity.per_minute(redis, "failed", now, 3) == [0, 1, 0]
    assert [a["outcome"] for a in activity.attempts(redis, "ops")] == [
        "paced", "dead_letter", "done", "failed", "delivered",
    ]  # fmt: skip
    assert activity.actions(redis) == ["ops"]


@pytest.mark.parametrize("minutes", ["0", "4", "1441", "x", "1.5"])
def test_a_window_out_of_bounds_is_400(
    redis: Redis, redis_url: str, tmp_path: Path, minutes: str
) -> None:
    with pipeline(redis, redis_url, tmp_path) as system:
        response = system.api("GET", "/api/overview", params={"minutes": minutes})
    assert response.status_code == 400
    assert "minutes: must be a whole number from 5 to 1440" in response.json()["error"]


def test_a_chart_holds_numbers_and_escaped_text() -> None:
    drawn = charts.bars([0, 2, 4], '<b>"x"')
    assert "<b>" not in drawn and "&lt;b&gt;" in drawn
    assert drawn.count("<rect") == 2
    assert 'height="48.0"' in drawn  # the largest fills the height
    assert "<rect" not in charts.bars([0, 0], "none")
