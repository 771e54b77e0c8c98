"""Who gets in: nobody without a configured token (the admin side is not there at all), only
the token's holder with one; sessions and CSRF tokens derived from it (``auth``, pure)."""

import re
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from redis import Redis

from receiver.admin.auth import SESSION_ID, Keys, new_id
from tests.receiver.admin.support import AUTH, TOKEN
from tests.support import HMAC_CONFIG, ServedApp, make_config, settings

PATHS = ["/api/events", "/api/openapi.json", "/api/dlq", "/api/silences", "/ui/login", "/ui/events"]


@pytest.fixture
def without_token(redis: Redis, redis_url: str) -> Iterator[ServedApp]:
    with ServedApp(settings(redis_url), make_config(HMAC_CONFIG)) as app:
        yield app


@pytest.mark.parametrize("path", PATHS)
def test_without_a_token_there_is_no_admin_side(without_token: ServedApp, path: str) -> None:
    response = httpx.get(f"{without_token.url}{path}", headers=AUTH)
    assert response.status_code == 404
    assert httpx.post(f"{without_token.url}/ui/login", data={"token": TOKEN}).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer  {TOKEN.upper()}",
        "Bearer \u00e9t\u00e9".encode("latin-1"),
        f"Bearer {TOKEN}\u00e9".encode("latin-1"),
    ],
)
def test_a_wrong_or_missing_token_is_401(
    served: ServedApp, authorization: str | bytes | None
) -> None:
    raw = authorization.encode() if isinstance(authorization, str) else authorization
    headers = {} if raw is None else {b"Authorization": raw}
    for method, path in [("GET", "/api/events"), ("POST", "/api/silences"),
                         ("DELETE", "/api/dlq/x"), ("GET", "/api/no-such-thing")]:  # fmt: skip
        response = httpx.request(method, f"{served.url}{path}", headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == 'Bearer realm="flowhooks"'
        assert response.json() == {"error": "unauthorized"}


def test_the_token_opens_the_api(served: ServedApp) -> None:
    response = httpx.get(f"{served.url}/api/events", headers=AUTH)
    assert response.status_code == 200
    lower = httpx.get(f"{served.url}/api/events", headers={"authorization": f"bearer {TOKEN}"})
    assert lower.status_code == 200  # the scheme is case-insensitive, the token is not
    unknown = httpx.get(f"{served.url}/api/nothing-here", headers=AUTH)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "not found"})


def test_the_webhooks_need_no_admin_token(served: ServedApp) -> None:
    assert httpx.get(f"{served.url}/healthz").status_code == 200


# settings ---------------------------------------------------------------------------------


def test_the_token_setting() -> None:
    assert settings("redis://127.0.0.1:6379/0").admin_token is None
    assert settings("redis://127.0.0.1:6379/0", admin_token="").admin_token is None
    given = settings("redis://127.0.0.1:6379/0", admin_token=TOKEN)
    assert given.admin_token == SecretStr(TOKEN)
    assert TOKEN not in repr(given)
    with pytest.raises(ValidationError) as caught:
        settings("redis://127.0.0.1:6379/0", admin_token="short-secret")
    assert "must be at least 16 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)


# keys: pure ---------------------------------------------------------------------------------

KEYS = Keys(SecretStr(TOKEN))


def test_a_session_is_kept_under_a_name_no_copy_of_the_token() -> None:
    session = new_id()
    assert re.fullmatch(SESSION_ID, session)
    name = KEYS.session_name(session)
    assert TOKEN not in name and session not in name
    assert name != KEYS.session_name(new_id())
    assert TOKEN not in repr(KEYS)


def test_a_session_of_another_token_is_another_name() -> None:
    other = Keys(SecretStr(TOKEN + "-rotated"))
    session = new_id()
    assert KEYS.session_name(session) != other.session_name(session)
    assert not KEYS.csrf_ok(session, other.csrf(session))


def test_csrf_tokens_belong_to_their_session() -> None:
    session, later = new_id(), new_id()
    assert KEYS.csrf_ok(session, KEYS.csrf(session))
    assert not KEYS.csrf_ok(session, KEYS.csrf(later))
    assert not KEYS.csrf_ok(session, "")
    assert TOKEN not in KEYS.csrf(session)


def test_the_login_csrf_token_belongs_to_its_nonce() -> None:
    nonce = new_id()
    assert KEYS.login_csrf_ok(nonce, KEYS.login_csrf(nonce))
    assert not KEYS.login_csrf_ok(nonce, KEYS.login_csrf(new_id()))
    assert not KEYS.login_csrf_ok("", KEYS.login_csrf(""))
    assert not KEYS.login_csrf_ok(nonce, KEYS.csrf(nonce))  # a session's token is no login's
    assert not KEYS.login_csrf_ok(nonce, "\udc80")


def test_the_token_compares_whole() -> None:
    assert KEYS.token_ok(TOKEN)
    assert not KEYS.token_ok(TOKEN[:-1])
    assert not KEYS.token_ok("")
    assert KEYS.bearer_ok({"authorization": f"Bearer {TOKEN}"})
    assert not KEYS.bearer_ok({})
