"""``/api/dlq``: the dead letters a real worker left when a webhook's far side refused, listed,
replayed and deleted through the API."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from config import deadletters, keys
from tests.receiver.admin.support import Pipeline, pipeline
from tests.workers.sinks.standins import Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def refused(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """Three events whose deliveries the far side refused (400): three dead letters."""
    with pipeline(redis, redis_url, tmp_path, *[Reply(400, b"bad request")] * 3) as system:
        for n in range(3):
            system.post(f"dead-{n}")
        system.work()
        yield system


def test_dead_letters_are_listed_newest_first_in_pages(refused: Pipeline) -> None:
    every = refused.api("GET", "/api/dlq")
    assert every.status_code == 200
    assert every.headers["x-total-count"] == "3"
    rows = every.json()
    assert {r["ref"] for r in rows} == {keys.ref("etl", f"dead-{n}") for n in range(3)}
    assert [r["job"] for r in rows] == deadletters.ids(refused.redis, newest=True)
    for row in rows:
        assert (row["task"], row["action"], row["kind"]) == (
            "workers.tasks.deliver",
            "hook",
            "notify",
        )
        assert row["reason"] == "permanent failure: webhook: HTTP 400 Bad Request (permanent)"
        assert row["failed_at"]
    pages = [refused.api("GET", "/api/dlq", params={"limit": 2, "offset": o}) for o in (0, 2)]
    assert [r["job"] for p in pages for r in p.json()] == [r["job"] for r in rows]
    assert {p.headers["x-total-count"] for p in pages} == {"3"}


def test_a_dead_letter_is_deleted(refused: Pipeline) -> None:
    first, *rest = refused.api("GET", "/api/dlq").json()
    deleted = refused.api("DELETE", f"/api/dlq/{first['job']}")
    assert (deleted.status_code, deleted.json()) == (200, {"job": first["job"], "deleted": True})
    assert [r["job"] for r in refused.api("GET", "/api/dlq").json()] == [r["job"] for r in rest]
    assert not refused.redis.exists(f"rq:job:{first['job']}")
    again = refused.api("DELETE", f"/api/dlq/{first['job']}")
    assert again.status_code == 404
    assert len(refused.hook.requests) == 3  # nothing was sent


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/dlq/nosuchjob/replay"),
        ("DELETE", "/api/dlq/nosuchjob"),
        ("DELETE", "/api/dlq/no%20such%20job"),
        ("POST", "/api/dlq/%C3%A9/replay"),
    ],
)
def test_an_unknown_dead_letter_is_404(refused: Pipeline, method: str, path: str) -> None:
    response = refused.api(method, path)
    assert response.status_code == 404
    assert response.json() == {"error": "no such job in the dead-letter registry"}
    assert refused.api("GET", "/api/dlq").headers["x-total-count"] == "3"
