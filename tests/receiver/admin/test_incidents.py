"""Incidents from a real pipeline: a flow's failure opens one; acknowledged from the page (or
``/api``), the next failure is held back as ``acknowledged`` whatever the repeat interval;
resolved by hand, the next failure is notified again."""

import json
from pathlib import Path

from redis import Redis

from config import incidents, keys
from tests.receiver.admin.support import csrf, pipeline, sign_in


def _suppressed(redis: Redis, ref: str) -> list[str]:
    entries = [json.loads(e) for e in redis.lrange(keys.timeline(ref), 0, -1)]
    return [e["reason"] for e in entries if e["stage"] == "suppressed"]


def test_acknowledge_and_resolve_from_the_page(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    with pipeline(redis, redis_url, tmp_path) as system:
        system.post("in-1", flow_name="<b>loads</b>")
        system.work()
        browser = sign_in(system.receiver)
        page = browser.get("/incidents")
        assert page.status_code == 200
        assert "&lt;b&gt;loads&lt;/b&gt;" in page.text
        [found] = incidents.every(redis)
        assert (found.route, found.action, found.failures) == ("routes", "hook", 1)
        assert found.id in page.text

        done = browser.post(
            f"/incidents/{found.id}/acknowledge", data={"csrf": csrf(page), "by": "ana"}
        )
        assert done.headers["location"] == "/ui/incidents?notice=acknowledged"
        [acked] = incidents.every(redis)
        assert (acked.acked_by, acked.acked_at is not None) == ("ana", True)
        assert "by ana" in browser.get("/incidents").text

        system.post("in-2")
        system.work()
        assert _suppressed(redis, "etl:in-2") == ["acknowledged"]
        assert incidents.every(redis)[0].failures == 2

        page = browser.get("/incidents")
        gone = browser.post(f"/incidents/{found.id}/resolve", data={"csrf": csrf(page)})
        assert gone.headers["location"] == "/ui/incidents?notice=resolved"
        assert incidents.every(redis) == []
        assert "No open incidents." in browser.get("/incidents").text
        again = browser.post(f"/incidents/{found.id}/resolve", data={"csrf": csrf(page)})
        assert again.headers["location"] == "/ui/incidents?notice=no-incident"

        system.post("in-3")
        system.work()
        assert _suppressed(redis, "etl:in-3") == []  # notified again: a new incident
        assert len(system.hook.requests) == 2
        [reopened] = incidents.every(redis)
        assert reopened.acked_at is None
        browser.close()


def test_incidents_over_the_api(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    with pipeline(redis, redis_url, tmp_path) as system:
        system.post("ia-1")
        system.work()
        [listed] = system.api("GET", "/api/incidents").json()
        assert (listed["action"], listed["acknowledged"], listed["failures"]) == ("hook", False, 1)
        path = f"/api/incidents/{listed['id']}"
        acked = system.api("POST", f"{path}/acknowledge", params={"by": "ops"})
        assert (acked.status_code, acked.json()["by"]) == (200, "ops")
        assert system.api("GET", "/api/incidents").json()[0]["acked_by"] == "ops"
        assert system.api("POST", f"{path}/resolve").json() == {
            "id": listed["id"],
            "resolved": True,
        }
        for bad in (path, "/api/incidents/%2E%2E", "/api/incidents/bm9uZTphOmI6Yw"):
            missing = system.api("POST", f"{bad}/resolve")
            assert (missing.status_code, missing.json()) == (
                404,
                {"error": "no such open incident"},
            )
        assert system.api("POST", f"{path}/acknowledge").status_code == 404
