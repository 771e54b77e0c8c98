"""The ``/ui`` pages over HTTP: the login and its cookie, forms refused without their CSRF
token, what an event can put on a page (escaped), and the headers every page carries."""

from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from config import silences
from receiver.admin import sessions
from receiver.admin.auth import SESSION_SECONDS, new_id
from tests.receiver.admin.support import TOKEN, cookie, csrf, login, sign_in, store
from tests.support import ServedApp

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def browser(served: ServedApp) -> Iterator[httpx.Client]:
    client = sign_in(served)
    yield client
    client.close()


def test_the_session_cookie(served: ServedApp, redis: Redis) -> None:
    with httpx.Client(base_url=f"{served.url}/ui") as client:
        response = login(client)
    [header] = [h for h in response.headers.get_list("set-cookie") if "flowhooks_session" in h]
    value = cookie(response, "flowhooks_session")
    assert TOKEN not in value
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/ui"} <= attributes
    assert f"max-age={SESSION_SECONDS}" in attributes
    # kept in Redis under a name derived from it, never the id itself
    assert not any(value.encode() in key for key in redis.keys("flowhooks:admin:*"))
    assert redis.zcard(sessions.SESSIONS) == 1


def test_a_wrong_token_signs_nobody_in(served: ServedApp) -> None:
    with httpx.Client(base_url=f"{served.url}/ui") as client:
        response = login(client, TOKEN + "x")
    assert response.status_code == 401
    assert "flowhooks_session" not in str(response.headers.get_list("set-cookie"))
    assert "That is not the admin token." in response.text


def test_the_login_form_needs_its_csrf_token(served: ServedApp) -> None:
    with httpx.Client(base_url=f"{served.url}/ui") as client:
        form = client.get("/login")
        nonce = cookie(form, "flowhooks_login")
        bare = client.post("/login", data={"token": TOKEN})
        client.cookies.set("flowhooks_login", nonce)
        forged = client.post("/login", data={"token": TOKEN, "csrf": "0" * 64})
        client.cookies.set("flowhooks_login", new_id())  # another nonce than the form's
        other = client.post("/login", data={"token": TOKEN, "csrf": csrf(form)})
    for response in (bare, forged, other):
        assert response.status_code == 400
        assert "The form has expired" in response.text
        assert "flowhooks_session" not in str(response.headers.get_list("set-cookie"))


def test_logins_are_throttled_per_client(served: ServedApp, redis: Redis) -> None:
    with httpx.Client(base_url=f"{served.url}/ui") as client:
        for _ in range(sessions.LOGIN_LIMIT):
            assert login(client, "wrong").status_code == 401
        refused = login(client)  # the right token too, once throttled
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= sessions.LOGIN_WINDOW
        assert "Too many failed sign-ins" in refused.text
        redis.delete("flowhooks:admin:logins:127.0.0.1")  # the window passed
        assert login(client).status_code == 303


def test_logout_ends_the_session_on_the_server(served: ServedApp) -> None:
    client = sign_in(served)
    [kept] = {str(c.value) for c in client.cookies.jar if c.name == "flowhooks_session"}
    page = client.get("/events")
    assert client.post("/logout", data={"csrf": csrf(page)}).status_code == 303
    with httpx.Client(base_url=f"{served.url}/ui") as replayed:
        replayed.cookies.set("flowhooks_session", kept)  # a copy of the cookie kept
        assert replayed.get("/events").status_code == 303
    client.close()


def test_the_admin_ends_every_session(served: ServedApp, redis: Redis) -> None:
    first, second = sign_in(served), sign_in(served)
    assert redis.zcard(sessions.SESSIONS) == 2
    page = first.get("/")
    assert "2 sessions" in page.text
    ended = first.post("/sessions/end", data={"csrf": csrf(page)})
    assert (ended.status_code, ended.headers["location"]) == (303, "/ui/login?notice=ended")
    for client in (first, second):
        assert client.get("/events").status_code == 303
        client.close()


@pytest.mark.parametrize(
    "path", ["/ui/events", "/ui/dlq", "/ui/silences", "/ui/events/etl/x", "/ui/"]
)
def test_without_a_session_every_page_sends_to_the_login(served: ServedApp, path: str) -> None:
    response = httpx.get(f"{served.url}{path}")
    assert (response.status_code, response.headers["location"]) == (303, "/ui/login")
    for value in (f"9999999999.{'0' * 64}", new_id(), "x" * 5000):
        forged = httpx.get(f"{served.url}{path}", cookies={"flowhooks_session": value})
        assert forged.status_code == 303


def test_a_form_without_its_csrf_token_changes_nothing(browser: httpx.Client, redis: Redis) -> None:
    form = {"matchers": 'flow_id="7"', "duration": "1h", "author": "ana", "comment": ""}
    for token in ("", "0" * 64):
        response = browser.post("/silences", data={**form, "csrf": token})
        assert response.status_code == 400
        assert "the form has expired" in response.text
    assert silences.every(redis) == []
    page = browser.get("/silences")
    made = browser.post("/silences", data={**form, "csrf": csrf(page)})
    assert (made.status_code, made.headers["location"]) == (303, "/ui/silences?notice=silenced")
    assert len(silences.every(redis)) == 1


def test_silences_are_made_and_expired_from_the_page(browser: httpx.Client, redis: Redis) -> None:
    page = browser.get("/silences")
    form = {"matchers": 'flow_id="7"\n\nkind="flow.failed"\n', "duration": "2h",
            "author": "ana", "comment": "deploy", "csrf": csrf(page)}  # fmt: skip
    browser.post("/silences", data=form)
    [made] = silences.every(redis)
    assert made.matchers == ('flow_id="7"', 'kind="flow.failed"')
    listed = browser.get("/silences")
    assert made.id in listed.text
    browser.post(f"/silences/{made.id}/expire", data={"csrf": csrf(listed)})
    assert browser.get("/silences").text.count(made.id) == 0
    assert made.id in browser.get("/silences", params={"all": "true"}).text
    bad = browser.post("/silences", data={**form, "matchers": 'flow="x"'})
    assert bad.status_code == 400
    assert "unknown label &#39;flow&#39;" in bad.text


def test_what_an_event_holds_is_escaped(browser: httpx.Client, redis: Redis) -> None:
    store(redis, "xss-1", flow_name=SCRIPT, error=f'"><img src=x onerror=alert(1)>{SCRIPT}',
          tags=[SCRIPT], raw={"flowName": SCRIPT}, source="etl",
          timeline=[{"at": SCRIPT, "stage": SCRIPT, "note": SCRIPT}])  # fmt: skip
    listed = browser.get("/events")
    event = browser.get("/events/etl/xss-1")
    assert event.status_code == 200
    for page in (listed, event):
        assert "<script>" not in page.text
        assert "<img" not in page.text
        assert "alert(1)" in page.text  # it is shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed.text


def test_every_page_forbids_scripts(served: ServedApp, browser: httpx.Client) -> None:
    for response in (browser.get("/events"), httpx.get(f"{served.url}/ui/login")):
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy  # nothing allowed beyond default-src 'none'
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"


def test_the_event_list_filters_and_refreshes(browser: httpx.Client, redis: Redis) -> None:
    store(redis, "f-1", kind="flow.failed")
    store(redis, "f-2", kind="flow.succeeded", status="success")
    page = browser.get("/events", params={"kind": "flow.succeeded", "source": "", "since": ""})
    assert page.status_code == 200
    assert "f-2" in page.text and "f-1" not in page.text
    assert '<meta http-equiv="refresh" content="10">' in page.text
    paused = browser.get("/events", params={"refresh": "off"})
    assert "http-equiv" not in paused.text
    typed = browser.get("/events", params={"since": "2000-01-01T00:00"})  # no zone: UTC
    assert "f-1" in typed.text
    bad = browser.get("/events", params={"since": "soon"})
    assert bad.status_code == 400
    assert "since: must be a date-time" in bad.text


def test_a_replay_from_the_event_page(browser: httpx.Client, redis: Redis) -> None:
    store(redis, "rp-ui")
    page = browser.get("/events/etl/rp-ui")
    done = browser.post("/events/etl/rp-ui/replay", data={"csrf": csrf(page)})
    assert (done.status_code, done.headers["location"]) == (
        303,
        "/ui/events/etl/rp-ui?notice=replayed",
    )
    assert "queued again" in browser.get(done.headers["location"]).text
    again = browser.post("/events/etl/rp-ui/replay", data={"csrf": csrf(page), "force": "true"})
    assert again.headers["location"].endswith("?notice=busy")


def test_signing_out(browser: httpx.Client) -> None:
    page = browser.get("/events")
    out = browser.post("/logout", data={"csrf": csrf(page)})
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login?notice=signed-out")
    assert 'flowhooks_session=""' in out.headers["set-cookie"]


def test_unknown_pages_and_events(browser: httpx.Client) -> None:
    assert browser.get("/nothing").status_code == 404
    missing = browser.get("/events/etl/nope")
    assert (missing.status_code, "There is no such event." in missing.text) == (404, True)
