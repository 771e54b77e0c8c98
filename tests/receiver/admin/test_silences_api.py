"""``/api/silences``: made, listed and expired through the API, kept where the command line and
the workers find them."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis import Redis

from config import silences


def make(api: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"matchers": ['kind="flow.failed"'], "comment": "deploy", "author": "ana", **fields}
    return api.post("/silences", json=body)


def test_a_silence_is_made_listed_and_expired(api: httpx.Client, redis: Redis) -> None:
    made = make(api, duration="2h", matchers=['flow_name=~"staging-.*"', 'kind="flow.failed"'])
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["matchers"] == ['flow_name=~"staging-.*"', 'kind="flow.failed"']
    assert (silence["author"], silence["comment"], silence["state"]) == ("ana", "deploy", "active")
    starts = datetime.fromisoformat(silence["startsAt"])
    assert datetime.fromisoformat(silence["endsAt"]) - starts == timedelta(hours=2)
    # where the workers and `flowhooks silence list` read it
    [stored] = silences.every(redis)
    assert stored.id == silence["id"]

    assert api.get("/silences").json() == [silence]
    ended = api.delete(f"/silences/{silence['id']}")
    assert ended.status_code == 200
    assert ended.json()["state"] == "expired"
    assert api.get("/silences").json() == []
    assert api.get("/silences", params={"all": "true"}).json() == [ended.json()]
    assert api.delete("/silences/nosuchsilence").status_code == 404


def test_a_silence_until_an_instant_or_for_seconds(api: httpx.Client) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    made = make(api, endsAt=until.isoformat().replace("+00:00", "Z"))
    assert made.status_code == 201, made.text
    assert datetime.fromisoformat(made.json()["endsAt"]) == until
    seconds = make(api, duration=90)
    assert seconds.status_code == 201, seconds.text
    silence = seconds.json()
    length = datetime.fromisoformat(silence["endsAt"]) - datetime.fromisoformat(silence["startsAt"])
    assert length == timedelta(seconds=90)


PAST = "2000-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"duration": "2h", "matchers": []}, "matchers: must be a list of 1 to 20 matchers"),
        ({"duration": "2h", "matchers": "kind"}, "matchers: must be a list of 1 to 20 matchers"),
        ({"duration": "2h", "matchers": [7]}, "matchers: must be a list of 1 to 20 matchers"),
        ({"duration": "2h", "matchers": ['flow="x"']}, "unknown label 'flow' (known: "),
        ({"duration": "2h", "matchers": ['flow_name=~"("']}, "bad regex '('"),
        ({}, "give either duration or endsAt"),
        ({"duration": "2h", "endsAt": PAST}, "give either duration or endsAt"),
        ({"duration": "soon"}, "duration: must be a duration such as 2h, or seconds"),
        ({"duration": "0s"}, "duration: must be longer than zero"),
        ({"duration": -5}, "duration: must be a duration such as 2h, or seconds"),
        ({"duration": True}, "duration: must be a duration such as 2h, or seconds"),
        ({"duration": 10**400}, "duration: must be a duration such as 2h, or seconds"),
        ({"duration": "99999999999w"}, "a silence cannot last that long"),
        ({"endsAt": PAST}, "a silence must end in the future"),
        ({"endsAt": "tomorrow"}, "endsAt: must be an RFC 3339 date-time"),
        ({"endsAt": "9999-12-31T23:59:59-23:59"}, "endsAt: must be an RFC 3339 date-time"),
        ({"duration": "2h", "author": ""}, "author: must be text of 1 to 200 characters"),
        ({"duration": "2h", "comment": None}, "comment: must be text of at most 2000"),
        ({"duration": "2h", "color": "red"}, "unknown field 'color' (known: matchers, "),
    ],
)
def test_a_bad_silence_is_400(
    api: httpx.Client, redis: Redis, fields: dict[str, Any], message: str
) -> None:
    response = make(api, **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(message)
    assert silences.every(redis) == []


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"duration": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[" * 100_000, "application/json", 413),
        (b"[" * 20_000 + b"]" * 20_000, "application/json", 400),
        (b"matchers=x", "application/x-www-form-urlencoded", 415),
    ],
)
def test_a_body_that_cannot_be_read(
    api: httpx.Client, content: bytes, content_type: str, status: int
) -> None:
    response = api.post("/silences", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert "error" in response.json()
