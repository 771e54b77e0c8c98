"""``/api/events``: stored events filtered and paged, one event with its timeline taken apart,
and input that cannot be used answered 400, never 500."""

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from redis import Redis

from receiver.admin.auth import new_id
from tests.receiver.admin.support import AUTH, NOW_MS, TOKEN, iso, store
from tests.support import HMAC_CONFIG, ServedApp, free_port, make_config, settings

MINUTE = 60_000


@pytest.fixture
def seeded(redis: Redis) -> list[str]:
    """Six events a minute apart, the newest first in the returned refs."""
    rows: list[tuple[str, dict[str, Any]]] = [
        ("e6", {"kind": "flow.succeeded", "status": "success", "flow_id": "8"}),
        ("e5", {"source": "etl-eu", "flow_id": "7"}),
        ("e4", {"kind": "flow.warning", "status": "warning", "flow_id": "7"}),
        ("e3", {"flow_id": "9"}),
        ("e2", {"kind": "flow.succeeded", "status": "success"}),
        ("e1", {}),
    ]
    return [
        store(redis, event_id, received_ms=NOW_MS - n * MINUTE, **fields)
        for n, (event_id, fields) in enumerate(rows)
    ]


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ({}, ["e6", "e5", "e4", "e3", "e2", "e1"]),
        ({"source": "etl-eu"}, ["e5"]),
        ({"source": "etl"}, ["e6", "e4", "e3", "e2", "e1"]),
        ({"source": "nope"}, []),
        ({"kind": "flow.failed"}, ["e5", "e3", "e1"]),
        ({"flow_id": "7"}, ["e5", "e4", "e2", "e1"]),
        ({"status": "success"}, ["e6", "e2"]),
        ({"kind": "flow.failed", "flow_id": "7", "source": "etl"}, ["e1"]),
        ({"since": str(NOW_MS - 2 * MINUTE)}, ["e6", "e5", "e4"]),
        ({"until": str(NOW_MS - 4 * MINUTE)}, ["e2", "e1"]),
        ({"since": iso(NOW_MS - 3 * MINUTE), "until": iso(NOW_MS - MINUTE)}, ["e5", "e4", "e3"]),
        ({"since": iso(NOW_MS - 3 * MINUTE).replace("+00:00", "Z")}, ["e6", "e5", "e4", "e3"]),
        ({"since": str(NOW_MS + MINUTE)}, []),
    ],
)
def test_filters(api: httpx.Client, query: dict[str, str], expect: list[str]) -> None:
    response = api.get("/events", params=query)
    assert ids(response) == expect
    assert response.headers["x-total-count"] == str(len(expect))


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("label", [{}, {"source": "etl"}, {"kind": "flow.failed"}])
def test_pages_count_every_match(api: httpx.Client, label: dict[str, str]) -> None:
    """Each way of listing (index alone, refs of a source, events read) pages alike."""
    every = ids(api.get("/events", params=label))
    pages = [
        api.get("/events", params={**label, "limit": "2", "offset": str(o)}) for o in (0, 2, 4)
    ]
    assert [i for page in pages for i in ids(page)] == every
    assert {page.headers["x-total-count"] for page in pages} == {str(len(every))}
    past = api.get("/events", params={**label, "offset": "100"})
    assert (ids(past), past.headers["x-total-count"]) == ([], str(len(every)))


def test_a_list_leaves_the_payload_out(api: httpx.Client, redis: Redis) -> None:
    store(redis, "big", raw={"huge": "x" * 1000})
    [row] = api.get("/events").json()
    assert "raw" not in row
    assert row["id"] == "big"


def test_an_expired_event_is_skipped(api: httpx.Client, redis: Redis, seeded: list[str]) -> None:
    redis.delete(f"flowhooks:event:{seeded[0]}")
    assert ids(api.get("/events", params={"kind": "flow.succeeded"})) == ["e2"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kind": "flow.exploded"}, "kind: must be one of flow.succeeded, "),
        ({"status": "ok"}, "status: must be one of queued, "),
        ({"source": "a:b"}, "source: 'a:b' is not valid"),
        ({"source": ""}, "source: must be 1 to 200 characters"),
        ({"flow_id": "x" * 201}, "flow_id: must be 1 to 200 characters"),
        ({"since": "yesterday"}, "since: must be an RFC 3339 date-time or Unix milliseconds"),
        ({"since": "2026-13-01T00:00:00Z"}, "since: must be an RFC 3339"),
        ({"until": "2026-05-09"}, "until: must be an RFC 3339"),
        ({"until": "-5"}, "until: must be an RFC 3339"),
        ({"since": "2", "until": "1"}, "since: must not be after until"),
        ({"limit": "0"}, "limit: must be a whole number from 1 to 500"),
        ({"limit": "501"}, "limit: must be a whole number from 1 to 500"),
        ({"limit": "ten"}, "limit: must be a whole number from 1 to 500"),
        ({"limit": "1.5"}, "limit: must be a whole number"),
        ({"offset": "-1"}, "offset: must be a whole number from 0 to 1000000"),
        ({"offset": "9" * 40}, "offset: must be a whole number"),
        ({"flowId": "7"}, "unknown parameter 'flowId' (known: source, kind, flow_id, status, "),
    ],
)
def test_bad_filters_are_400(api: httpx.Client, query: dict[str, str], message: str) -> None:
    response = api.get("/events", params=query)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"].startswith(message)


def test_a_filter_given_twice_is_400(api: httpx.Client) -> None:
    response = api.get("/events", params=[("kind", "flow.failed"), ("kind", "flow.succeeded")])
    assert (response.status_code, response.json()) == (400, {"error": "kind: give it once"})


# one event ---------------------------------------------------------------------------------

TIMELINE: list[dict[str, Any]] = [
    {"at": "t1", "stage": "picked_up", "job_id": "route-x", "worker": "w1"},
    {"at": "t2", "stage": "routed", "routes": ["routes.routes[0]"],
     "deliveries": [{"route": "routes.routes[0]", "action": "chat", "kind": "notify"}]},
    {"at": "t3", "stage": "delivery", "route": "routes.routes[0]", "action": "chat",
     "kind": "notify", "delivery_id": "d1", "outcome": "failed", "attempt": 1, "status": 503,
     "retryable": True, "duration_ms": 12, "error": "chat answered 503"},
    {"at": "t4", "stage": "suppressed", "route": "routes.routes[0]", "action": "pager",
     "reason": "silenced", "detail": "abc"},
    {"at": "t5", "stage": "delivery", "route": "routes.routes[0]", "action": "chat",
     "kind": "notify", "delivery_id": "d1", "outcome": "delivered", "attempt": 2, "status": 200,
     "duration_ms": 9, "summary": "Flow failed: orders"},
    {"at": "t6", "stage": "run", "action": "load-marts", "delivery_id": "d2",
     "outcome": "started", "execution_id": "991"},
    {"at": "t7", "stage": "synthetic", "event_ref": "etl:follow-up-1"},
]  # fmt: skip


def test_an_event_with_its_timeline_taken_apart(api: httpx.Client, redis: Redis) -> None:
    store(redis, "ev-9", timeline=TIMELINE)
    response = api.get("/events/etl/ev-9")
    assert response.status_code == 200
    detail = response.json()
    assert detail["ref"] == "etl:ev-9"
    assert detail["event"]["raw"] == {"eventId": "ev-9"}
    assert detail["verification"]["verified"] == ["hmac: secret #1"]
    assert detail["verification"]["remote"] == "127.0.0.1"
    assert detail["routes"] == ["routes.routes[0]"]
    chat, run = detail["deliveries"]
    assert (chat["delivery_id"], chat["action"], chat["outcome"]) == ("d1", "chat", "delivered")
    assert [(a["attempt"], a["status"], a["duration_ms"]) for a in chat["attempts"]] == [
        (1, 503, 12),
        (2, 200, 9),
    ]
    assert (run["action"], run["outcome"], run["attempts"][0]["execution_id"]) == (
        "load-marts",
        "started",
        "991",
    )
    # every stage, those this version knows nothing of included
    assert list(detail["stages"]) == [
        "received", "picked_up", "routed", "delivery", "suppressed", "run", "synthetic",
    ]  # fmt: skip
    assert detail["stages"]["synthetic"] == [TIMELINE[-1]]
    assert [e["stage"] for e in detail["timeline"]][1:] == [e["stage"] for e in TIMELINE]


def test_an_event_by_its_id_alone(api: httpx.Client, redis: Redis) -> None:
    store(redis, "only-here")
    assert api.get("/events/only-here").json()["ref"] == "etl:only-here"
    assert api.get("/events/etl:only-here").json()["ref"] == "etl:only-here"
    store(redis, "twice")
    store(redis, "twice", source="etl-eu")
    both = api.get("/events/twice")
    assert both.status_code == 409
    assert both.json()["refs"] == ["etl-eu:twice", "etl:twice"]
    assert api.get("/events/etl-eu/twice").json()["ref"] == "etl-eu:twice"


def test_ids_with_slashes_and_odd_characters(api: httpx.Client, redis: Redis) -> None:
    for event_id in ("a/b/replay", "sp ace?&#", "ünï"):
        store(redis, event_id)
        response = api.get("/events/etl/" + quote(event_id, safe=""))
        assert response.status_code == 200, event_id
        assert response.json()["ref"] == f"etl:{event_id}"


@pytest.mark.parametrize(
    "path", ["/events/etl/nope", "/events/nope", "/events/bad:source:x/y", "/events/a%3Ab/x"]
)
def test_an_unknown_event_is_404(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert (response.status_code, response.json()) == (404, {"error": "no such event"})


def test_without_redis_the_api_says_503_and_the_pages_say_so() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    served = ServedApp(
        settings(nowhere, admin_token=TOKEN, redis_timeout=1), make_config(HMAC_CONFIG)
    )
    with served:
        response = httpx.get(f"{served.url}/api/events", headers=AUTH)
        assert (response.status_code, response.json()) == (503, {"error": "Redis is unavailable"})
        assert response.headers["retry-after"] == "5"
        # sessions are kept in Redis: neither a login nor a session can be checked
        login = httpx.post(f"{served.url}/ui/login", data={"token": TOKEN})
        page = httpx.get(f"{served.url}/ui/dlq", cookies={"flowhooks_session": new_id()})
        for answer in (login, page):
            assert answer.status_code == 503
            assert "Redis is unavailable" in answer.text
