"""The console's commands (``overview``, ``incidents``, ``deliveries``, ``sessions``), each run
as a child process against a real Redis that a real pipeline filled: a failure refused for good
(a dead letter), one delivered (an open incident)."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from config import deadletters, incidents
from receiver.admin import sessions
from tests.cli_support import columns, flowhooks, json_lines, ok, refused
from tests.receiver.admin.support import Pipeline, pipeline, sign_in
from tests.workers.sinks.standins import Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def system(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(redis, redis_url, tmp_path, Reply(400, b"refused")) as running:
        running.post("cli-dead")
        running.work()
        running.post("cli-ok", event="FLOW_SUCCESS")
        running.post("cli-fail", flow_name="loads")
        running.work()
        yield running


def test_overview(system: Pipeline, redis_url: str, tmp_path: Path) -> None:
    text = ok(flowhooks("overview", cwd=tmp_path, redis_url=redis_url))
    assert "received         3" in text
    assert "dead letters     1" in text
    assert "open incidents   1 (0 acknowledged)" in text
    assert "scheduler        none: delayed jobs wait" in text
    shown = flowhooks("overview", "-o", "json", "--minutes", "30", cwd=tmp_path,
                      redis_url=redis_url)  # fmt: skip
    found = json.loads(ok(shown))
    assert (found["minutes"], sum(found["delivered"]), found["deadLetters"]) == (30, 2, 1)
    refused(flowhooks("overview", "--minutes", "2", cwd=tmp_path, redis_url=redis_url), 2, "5<=x")


def test_incidents_listed_acknowledged_and_resolved(
    system: Pipeline, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    [row] = columns(ok(flowhooks("incidents", "list", cwd=tmp_path, redis_url=redis_url)))
    assert (row["NAME"], row["ACTION"], row["STATE"]) == ("loads", "hook", "open")
    acked = flowhooks("incidents", "ack", row["ID"], "--by", "ana", cwd=tmp_path,
                      redis_url=redis_url)  # fmt: skip
    assert ok(acked) == f"acknowledged {row['ID']} by ana\n"
    [listed] = json_lines(ok(flowhooks("incidents", "list", "-o", "json", cwd=tmp_path,
                                       redis_url=redis_url)))  # fmt: skip
    assert (listed["acknowledged"], listed["acked_by"]) == (True, "ana")
    ok(flowhooks("incidents", "resolve", row["ID"], cwd=tmp_path, redis_url=redis_url))
    assert incidents.every(redis) == []
    again = flowhooks("incidents", "resolve", row["ID"], cwd=tmp_path, redis_url=redis_url)
    refused(again, 1, f"no open incident {row['ID']!r}")
    empty = flowhooks("incidents", "list", cwd=tmp_path, redis_url=redis_url)
    assert (empty.stdout, "no open incidents in Redis at" in empty.stderr) == ("", True)


def test_deliveries_and_their_dead_letters_in_bulk(
    system: Pipeline, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    assert ok(flowhooks("deliveries", "list", cwd=tmp_path, redis_url=redis_url)) == "hook\n"
    rows = columns(ok(flowhooks("deliveries", "list", "hook", cwd=tmp_path, redis_url=redis_url)))
    assert sorted(r["OUTCOME"] for r in rows) == ["dead_letter", "delivered", "delivered", "failed"]
    failed = flowhooks("deliveries", "list", "hook", "--outcome", "failed", "-o", "json",
                       cwd=tmp_path, redis_url=redis_url)  # fmt: skip
    [attempt] = json_lines(ok(failed))
    assert (attempt["status"], attempt["ref"]) == (400, "etl:cli-dead")

    none = flowhooks("deliveries", "replay-dead", "--reason", "timeout", cwd=tmp_path,
                     redis_url=redis_url)  # fmt: skip
    assert "no dead letters match" in none.stderr
    asked = flowhooks("deliveries", "replay-dead", "--action", "hook", cwd=tmp_path,
                      redis_url=redis_url)  # fmt: skip
    refused(asked, 2, "Replay 1 dead letter(s)")
    assert deadletters.count(redis) == 1
    done = flowhooks("deliveries", "replay-dead", "--reason", "PERMANENT", "--yes",
                     cwd=tmp_path, redis_url=redis_url)  # fmt: skip
    assert ok(done) == "requeued 1 job(s)\n"
    assert deadletters.count(redis) == 0


def test_sessions_end_all(system: Pipeline, redis: Redis, redis_url: str, tmp_path: Path) -> None:
    browser = sign_in(system.receiver)
    assert ok(flowhooks("sessions", "end-all", cwd=tmp_path, redis_url=redis_url)) == (
        "ended 1 session(s)\n"
    )
    assert browser.get("/events").status_code == 303
    assert redis.zcard(sessions.SESSIONS) == 0
    browser.close()
