"""Who may use the admin API and pages: the holder of ``FLOWHOOKS_ADMIN_TOKEN``. Pure.

The API takes the token itself (``Authorization: Bearer``). The pages take it once, in a login
form, and then carry a session cookie: a random session id, kept server-side in Redis
(:mod:`receiver.admin.sessions`) under a name derived from it with an HMAC keyed by the token,
so the token is never stored in the browser, logging out ends the session, and changing the
token ends every session. POST forms carry a CSRF token derived from the session; the login
form, before there is a session, one derived from a random value in a cookie of its own (a
page on another site can neither read that cookie nor set it: both are ``SameSite=Strict``).

Every comparison runs in constant time, over HMACs of equal length, so neither the token nor
its length shows in the timing.
"""

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from pydantic import SecretStr

SESSION_SECONDS = 12 * 3600
"""How long a login lasts."""
SESSION_ID = r"^[A-Za-z0-9_-]{43}$"
"""What :func:`new_id` makes (32 random bytes, URL-safe base64)."""


def new_id() -> str:
    """A random session id (or login nonce)."""
    return secrets.token_urlsafe(32)


class Keys:
    def __init__(self, token: SecretStr) -> None:
        self._token = token.get_secret_value().encode()
        self._expected = self._mac(b"token", self._token)

    def __repr__(self) -> str:
        return "Keys(token=**********)"

    def _mac(self, purpose: bytes, message: bytes) -> bytes:
        return hmac.new(self._token, purpose + b"\x00" + message, hashlib.sha256).digest()

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(self._mac(b"token", _bytes(given)), self._expected)

    def bearer_ok(self, headers: Mapping[str, str]) -> bool:
        """Whether the request's ``Authorization`` is ``Bearer <the token>``."""
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(given.strip())

    def session_name(self, session_id: str) -> str:
        """The name a session is kept under in Redis: neither the id (a copy of Redis grants
        no session) nor the same for another token."""
        return self._mac(b"session", _bytes(session_id)).hex()

    def csrf(self, session: str) -> str:
        """The CSRF token of a session's forms."""
        return self._mac(b"csrf", _bytes(session)).hex()

    def csrf_ok(self, session: str, given: str) -> bool:
        return hmac.compare_digest(_bytes(given), self.csrf(session).encode())

    def login_csrf(self, nonce: str) -> str:
        """The CSRF token of the login form, whose nonce is in the login cookie."""
        return self._mac(b"login", _bytes(nonce)).hex()

    def login_csrf_ok(self, nonce: str, given: str) -> bool:
        return bool(nonce) and hmac.compare_digest(_bytes(given), self.login_csrf(nonce).encode())


def _bytes(text: str) -> bytes:
    """Any text a client sent, lone surrogates included, as bytes (never raises)."""
    return text.encode("utf-8", "surrogatepass")
