"""The admin token never shows: not in a log line (the receiver's JSON lines, uvicorn's), not in
any answer, whether it is sent right (a header, the login form) or nearly right."""

import logging

import httpx
import pytest
from redis import Redis

from config.logs import JsonFormatter
from tests.receiver.admin.support import AUTH, TOKEN, cookie, login, store
from tests.support import ServedApp


def test_the_token_is_in_no_log_line_and_no_answer(
    served: ServedApp, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store(redis, "leak-1")
    url = served.url
    near = {"Authorization": f"Bearer {TOKEN}x"}
    answers: list[httpx.Response] = [
        httpx.get(f"{url}/api/events", headers=AUTH),
        httpx.get(f"{url}/api/events", headers=near),
        httpx.get(f"{url}/api/events?kind=nope", headers=near),
        httpx.get(f"{url}/api/events/nope", headers=AUTH),
        httpx.get(f"{url}/api/events?kind=nope", headers=AUTH),
        httpx.get(f"{url}/api/openapi.json", headers=AUTH),
        httpx.post(f"{url}/api/events/etl/leak-1/replay", headers=AUTH),
        httpx.get(f"{url}/ui/events", headers=AUTH),
    ]
    with httpx.Client(base_url=f"{url}/ui") as client:
        answers += [login(client, TOKEN + "x"), login(client)]
    session = cookie(answers[-1], "flowhooks_session")
    with httpx.Client(base_url=url, cookies={"flowhooks_session": session}) as browser:
        answers += [
            browser.get("/ui/"),
            browser.get("/ui/events"),
            browser.get("/ui/events/etl/leak-1"),
            browser.get("/ui/silences"),
            browser.get("/ui/dlq"),
            browser.post("/ui/silences", data={"csrf": TOKEN, "matchers": "x"}),
        ]
    assert [a.status_code for a in answers] == [
        200, 401, 401, 404, 400, 200, 202, 303, 401, 303, 200, 200, 200, 200, 200, 400,
    ]  # fmt: skip
    for answer in answers:
        shown = answer.text + "".join(f"{k}: {v}" for k, v in answer.headers.items())
        assert TOKEN not in shown, answer.request.url
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any("admin request refused" in line for line in lines)
    assert any("admin login refused" in line for line in lines)
    assert not [line for line in lines if TOKEN in line]
