"""Verify a webhook's raw bytes against a source's checks. Pure: the clock is a parameter.

Every check compares in constant time and every malformed input is a :class:`Rejected` with a
reason for the log and the metrics; nothing here raises anything else, whatever a client sends.
The caller answers one generic 401 for all of them.
"""

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from config.schema import (
    BasicCheck,
    HeaderTokenCheck,
    HmacCheck,
    StandardWebhooksCheck,
    VerifyStep,
)

Headers = Mapping[str, Sequence[str]]
"""Request headers by lower-case name, each with every value it was sent with, decoded as
Latin-1 the way ASGI servers do, so that each character stands for one byte as sent."""

MISSING = "missing_header"
REPEATED = "repeated_header"
MALFORMED = "malformed_header"
STALE = "stale_timestamp"
FUTURE = "future_timestamp"
MISMATCH = "signature_mismatch"
CREDENTIALS = "bad_credentials"
REASONS = (MISSING, REPEATED, MALFORMED, STALE, FUTURE, MISMATCH, CREDENTIALS)


class Rejected(Exception):
    """Verification failed; ``reason`` is one of :data:`REASONS`, ``check`` names the step."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


Check = Callable[[Headers, bytes, float], str]
"""Return a short description of what passed (no secret in it) or raise :class:`Rejected`."""


@dataclass(frozen=True)
class Verifier:
    """A source's checks, compiled once: all must pass."""

    checks: tuple[Check, ...]

    def verify(self, headers: Headers, body: bytes, now: float) -> list[str]:
        """Return what passed, one entry per check; raise :class:`Rejected` on the first failure."""
        return [check(headers, body, now) for check in self.checks]


def compile_checks(steps: Sequence[VerifyStep]) -> Verifier:
    return Verifier(tuple(_compile(step) for step in steps))


def _compile(step: VerifyStep) -> Check:
    if step.hmac is not None:
        return _hmac(step.hmac)
    if step.standard_webhooks is not None:
        return _standard_webhooks(step.standard_webhooks)
    if step.basic is not None:
        return _basic(step.basic)
    assert step.header_token is not None
    return _header_token(step.header_token)


def header(headers: Headers, name: str, check: str) -> str:
    """The one value of header ``name``; a missing or repeated header is :class:`Rejected`."""
    values = headers.get(name.lower(), ())
    if not values:
        raise Rejected(check, MISSING)
    if len(values) > 1:
        raise Rejected(check, REPEATED)
    return values[0].strip(" \t")  # HTTP's optional whitespace, and nothing else


def _raw(value: str, check: str) -> bytes:
    """The bytes a header value was sent as (see :data:`Headers`).

    A character outside Latin-1 cannot have come off the wire, so it is :class:`Rejected`
    rather than re-encoded into bytes the sender never signed.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise Rejected(check, MALFORMED) from None


def timestamp_seconds(value: str, check: str) -> float:
    """A Unix timestamp in seconds, or in milliseconds when above 10^12."""
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise Rejected(check, MALFORMED)
    number = int(value)
    return number / 1000 if number > 10**12 else float(number)


def check_window(sent: float, now: float, tolerance: float, check: str) -> None:
    if sent > now + tolerance:
        raise Rejected(check, FUTURE)
    if not sent >= now - tolerance:  # written so that a NaN clock fails closed too
        raise Rejected(check, STALE)


def _hmac(cfg: HmacCheck) -> Check:
    keys = [s.get_secret_value().encode() for s in cfg.secrets]
    prefix = f"{cfg.algorithm}=" if cfg.prefix is None else cfg.prefix

    def decode(value: str) -> bytes:
        try:
            if cfg.encoding == "hex":
                return binascii.unhexlify(value)  # unlike bytes.fromhex, no inner whitespace
            return base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise Rejected("hmac", MALFORMED) from None

    def check(headers: Headers, body: bytes, now: float) -> str:
        value = header(headers, cfg.header, "hmac")
        if prefix and value[: len(prefix)].lower() == prefix.lower():
            value = value[len(prefix) :]
        given = decode(value)
        if not given:
            raise Rejected("hmac", MALFORMED)
        signed = body
        if cfg.timestamp_header is not None:
            sent = header(headers, cfg.timestamp_header, "hmac")
            check_window(timestamp_seconds(sent, "hmac"), now, cfg.tolerance, "hmac")
            signed = sent.encode() + b"." + body
        return f"hmac: secret #{_match(keys, signed, given, cfg.algorithm, 'hmac')}"

    return check


def _match(
    keys: Sequence[bytes],
    signed: bytes,
    given: bytes | Sequence[bytes],
    digest: str,
    check: str,
) -> int:
    """The 1-based index of the first key whose MAC of ``signed`` is among ``given``.

    Every key and candidate is compared, so the time taken does not say which one matched.
    """
    candidates = [given] if isinstance(given, bytes) else list(given)
    found = 0
    for index, key in enumerate(keys, start=1):
        expected = hmac.digest(key, signed, digest)  # OpenSSL's one-shot HMAC, by name
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate) and not found:
                found = index
    if not found:
        raise Rejected(check, MISMATCH)
    return found


def _standard_webhooks(cfg: StandardWebhooksCheck) -> Check:
    keys = [
        base64.b64decode(s.get_secret_value().removeprefix("whsec_"), validate=True)
        for s in cfg.secrets
    ]
    name = "standard_webhooks"

    def check(headers: Headers, body: bytes, now: float) -> str:
        msg_id = header(headers, "webhook-id", name)
        sent = header(headers, "webhook-timestamp", name)
        signatures = header(headers, "webhook-signature", name)
        if not sent.isascii() or not sent.isdigit() or len(sent) > 12:
            raise Rejected(name, MALFORMED)
        check_window(float(sent), now, cfg.tolerance, name)
        given: list[bytes] = []
        for part in signatures.split(" "):
            version, _, encoded = part.partition(",")
            if version != "v1":
                continue
            try:
                decoded = base64.b64decode(encoded, validate=True)
            except (ValueError, binascii.Error):
                continue
            if decoded:
                given.append(decoded)
        if not given:
            raise Rejected(name, MALFORMED)
        signed = _raw(msg_id, name) + f".{sent}.".encode() + body
        return f"{name}: secret #{_match(keys, signed, given, 'sha256', name)}"

    return check


def _basic(cfg: BasicCheck) -> Check:
    username = cfg.username.encode()
    password = cfg.password.get_secret_value().encode()

    def check(headers: Headers, body: bytes, now: float) -> str:
        scheme, _, encoded = header(headers, "authorization", "basic").partition(" ")
        if scheme.lower() != "basic":
            raise Rejected("basic", MALFORMED)
        try:
            user, sep, given = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (ValueError, binascii.Error):
            raise Rejected("basic", MALFORMED) from None
        if not sep:
            raise Rejected("basic", MALFORMED)
        user_ok = hmac.compare_digest(user, username)
        password_ok = hmac.compare_digest(given, password)
        if not (user_ok and password_ok):
            raise Rejected("basic", CREDENTIALS)
        return "basic"

    return check


def _header_token(cfg: HeaderTokenCheck) -> Check:
    token = cfg.token.get_secret_value().encode()

    def check(headers: Headers, body: bytes, now: float) -> str:
        given = _raw(header(headers, cfg.header, "header_token"), "header_token")
        if not hmac.compare_digest(given, token):
            raise Rejected("header_token", CREDENTIALS)
        return f"header_token: {cfg.header}"

    return check
