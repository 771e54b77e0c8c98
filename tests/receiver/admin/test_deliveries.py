"""Deliveries per action and dead letters replayed in bulk, from a real pipeline whose far side
refused two deliveries (400, then 404) and took the third."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from config import deadletters
from tests.receiver.admin.support import Pipeline, csrf, pipeline, sign_in
from tests.workers.sinks.standins import Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def delivered(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    replies = (Reply(400, b"bad request"), Reply(404, b"no such hook"))
    with pipeline(redis, redis_url, tmp_path, *replies) as system:
        system.post("dv-1")
        system.post("dv-2", event="FLOW_SUCCESS")
        system.post("dv-3", event="FLOW_SUCCESS")
        system.work()
        yield system


@pytest.fixture
def browser(delivered: Pipeline) -> Iterator[httpx.Client]:
    client = sign_in(delivered.receiver)
    yield client
    client.close()


def _rows(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr class="outcome-[^"]*">(.*?)</tr>', page.text, re.DOTALL)


def test_every_attempt_of_an_action(delivered: Pipeline, browser: httpx.Client) -> None:
    page = browser.get("/deliveries")  # the first action that has attempts
    assert page.status_code == 200
    assert "Deliveries: hook" in page.text
    outcomes = sorted(re.search(r'class="badge">([a-z_]+)<', r).group(1) for r in _rows(page))  # type: ignore[union-attr]
    assert outcomes == ["dead_letter", "dead_letter", "delivered", "failed", "failed"]
    assert "HTTP 404" in page.text and "HTTP 400" in page.text
    assert re.search(r"[0-9]+ ms</td>", page.text)  # latency, as a person reads it
    only = browser.get("/deliveries/hook", params={"outcome": "delivered"})
    [row] = _rows(only)
    assert "200" in row
    api = delivered.api("GET", "/api/deliveries/hook", params={"outcome": "failed"})
    assert api.headers["x-total-count"] == "2"
    assert {a["status"] for a in api.json()} == {400, 404}
    assert delivered.api("GET", "/api/deliveries").json() == ["hook"]
    assert browser.get("/deliveries/nope").status_code == 404
    assert browser.get("/deliveries/hook", params={"outcome": "lost"}).status_code == 400
    bad = delivered.api("GET", "/api/deliveries/hook", params={"outcome": "lost"})
    assert bad.status_code == 400


def test_dead_letters_replayed_in_bulk_with_their_count_first(
    delivered: Pipeline, browser: httpx.Client, redis: Redis
) -> None:
    assert deadletters.count(redis) == 2
    page = browser.get("/dlq", params={"reason": "404"})
    assert "1 of them matches" in page.text
    assert "Replay these 1 dead job<" in page.text
    form = {"csrf": csrf(page), "reason": "404", "action": ""}
    stale = browser.post("/dlq/replay", data={**form, "expected": "2"})
    assert stale.headers["location"] == "/ui/dlq?reason=404&notice=changed"
    assert deadletters.count(redis) == 2  # nothing replayed on a count that changed
    done = browser.post("/dlq/replay", data={**form, "expected": "1"})
    assert done.headers["location"] == "/ui/dlq?notice=bulk&n=1"
    assert "1 dead job(s) queued again." in browser.get(done.headers["location"]).text
    [left] = deadletters.matching(redis)
    assert "400" in left["reason"]

    counted = delivered.api("POST", "/api/dlq/replay", params={"action": "hook", "dryRun": "true"})
    assert counted.json() == {"matched": 1, "jobs": [left["job"]]}
    none = delivered.api("POST", "/api/dlq/replay", params={"action": "other"})
    assert none.json() == {"replayed": 0, "gone": 0}
    every = delivered.api("POST", "/api/dlq/replay")
    assert every.json() == {"replayed": 1, "gone": 0}
    assert deadletters.count(redis) == 0
    delivered.work()
    assert len(delivered.hook.requests) == 5  # three, and the two replayed
