"""Who may use the admin API and pages: the holder of ``FLOWHOOKS_ADMIN_TOKEN``. Pure.

The API takes the token itself (``Authorization: Bearer``). The pages take it once, in a login
form, and then carry a session cookie whose value is derived from the token with HMAC and
expires; the token is never stored in the browser. Their POST forms carry a CSRF token derived
from the session, so a page on another site cannot submit them (the cookie is also
``SameSite=Strict``). Changing the token ends every session.

Every comparison runs in constant time, over HMACs of equal length, so neither the token nor
its length shows in the timing.
"""

import hashlib
import hmac
from collections.abc import Mapping

from pydantic import SecretStr

SESSION_SECONDS = 12 * 3600
"""How long a login lasts."""


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

    def session(self, now: float) -> str:
        """A session value for a login at ``now``: its expiry and an HMAC of it."""
        expires = str(int(now) + SESSION_SECONDS)
        return f"{expires}.{self._mac(b'session', expires.encode()).hex()}"

    def session_ok(self, value: str | None, now: float) -> bool:
        if not value:
            return False
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or len(expires) > 12:
            return False
        wanted = self._mac(b"session", expires.encode()).hex()
        return hmac.compare_digest(_bytes(mac), wanted.encode()) and now < int(expires)

    def csrf(self, session: str) -> str:
        """The CSRF token of a session's forms."""
        return self._mac(b"csrf", session.encode()).hex()

    def csrf_ok(self, session: str, given: str) -> bool:
        return hmac.compare_digest(_bytes(given), self.csrf(session).encode())


def _bytes(text: str) -> bytes:
    """Any text a client sent, lone surrogates included, as bytes (never raises)."""
    return text.encode("utf-8", "surrogatepass")
