"""Stand-ins for the far side of each sink, on loopback: an HTTP server whose answers a test
scripts (Slack, PagerDuty, any webhook), an SMTP server (aiosmtpd), a self-signed certificate,
and the leak check every sink's tests share."""

import asyncio
import base64
import json
import logging
import shutil
import ssl
import subprocess
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workers.sinks import DeliveryError

T = TypeVar("T")
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-pass-Wq4Rt8Zx"
SLOW = 0.5
"""Seconds the stand-in takes to answer under ``/slow/``; clients in tests give up sooner."""
STANDIN_LOGGERS = ("uvicorn", "mail.log")
"""The stand-ins' own loggers: what the far side logs is not flowhooks leaking."""


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    echo: bool = False
    """Answer with everything the request held (URL, headers, body), as a careless or hostile
    server might, so that quoting a response body would show in the error."""


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""
    raw_path: str = ""
    """The path as sent, percent-encoding and all."""

    def json(self) -> Any:
        return json.loads(self.body)


def _anything(request: Recorded) -> Reply | None:
    return None


TEAMS_LIMIT = 28 * 1024
TEAMS_OK = Reply(202, b"")


def teams_contract(request: Recorded) -> Reply | None:
    """A Teams Workflows webhook: a JSON ``message`` whose attachments are Adaptive Cards, at
    most 28 KB; 413 for a larger one, 400 for anything else it cannot read."""
    if len(request.body) > TEAMS_LIMIT:
        return Reply(413, b'{"error":{"code":"RequestEntityTooLarge"}}')
    try:
        message = request.json()
        cards = [a["content"] for a in message["attachments"]]
        ok = message["type"] == "message" and all(
            a["contentType"] == "application/vnd.microsoft.card.adaptive"
            for a in message["attachments"]
        )
        ok = ok and all(c["type"] == "AdaptiveCard" and isinstance(c["body"], list) for c in cards)
    except (ValueError, KeyError, TypeError):
        ok = False
    return None if ok else Reply(400, b'{"error":{"code":"InvalidRequestContent"}}')


OPSGENIE_OK = Reply(
    202,
    b'{"result":"Request will be processed","took":0.1,"requestId":"43a29c5c-3dbf-4fa4"}',
)
_OPSGENIE_LIMITS = {"message": 130, "alias": 512, "description": 15000, "entity": 512}
_PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}


def opsgenie_contract(key: str) -> Callable[[Recorded], Reply | None]:
    """Opsgenie's Alert API v2 for the API key ``key``: ``Authorization: GenieKey {key}`` or
    401; create at ``/v2/alerts`` and close at ``/v2/alerts/{alias}/close?identifierType=alias``
    or 404; the create's fields within their limits (a message of 1 to 130 characters, 20 tags
    of 50, details of string values, 8,000 characters in all) or 422."""

    def check(request: Recorded) -> Reply | None:
        if request.headers.get("authorization") != f"GenieKey {key}":
            return Reply(401, b'{"message":"Could not authenticate","took":0.0}')
        try:
            body = request.json()
        except ValueError:
            return Reply(400, b'{"message":"Request body is not processable"}')
        if request.path == "/v2/alerts":
            return None if _creatable(body) else Reply(422, b'{"message":"Invalid request"}')
        closing = request.path.startswith("/v2/alerts/") and request.path.endswith("/close")
        if closing and request.query == "identifierType=alias" and isinstance(body, dict):
            return None
        return Reply(404, b'{"message":"Not found"}')

    return check


def _creatable(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return False
    sizes = all(len(str(body.get(name, ""))) <= most for name, most in _OPSGENIE_LIMITS.items())
    tags = body.get("tags", [])
    details = body.get("details", {})
    return (
        sizes
        and len(body["message"].strip()) > 0
        and body.get("priority", "P3") in _PRIORITIES
        and len(tags) <= 20
        and all(isinstance(t, str) and len(t) <= 50 for t in tags)
        and all(isinstance(v, str) for v in details.values())
        and sum(len(k) + len(v) for k, v in details.items()) <= 8000
    )


GOOGLE_CHAT_LIMIT = 32_000
GOOGLE_CHAT_OK = Reply(200, b'{"name":"spaces/AAA/messages/BBB.BBB","thread":{}}')


def google_chat_contract(request: Recorded) -> Reply | None:
    """A Google Chat space webhook: ``key`` and ``token`` in the query, a JSON message of at
    most 32,000 bytes with ``text`` or ``cardsV2`` (each card with an id and sections of
    widgets), ``messageReplyOption`` when it names a thread; else 400 (403 without the
    token)."""
    if "token=" not in request.query or "key=" not in request.query:
        return Reply(403, b'{"error":{"code":403,"status":"PERMISSION_DENIED"}}')
    invalid = Reply(400, b'{"error":{"code":400,"status":"INVALID_ARGUMENT"}}')
    if len(request.body) > GOOGLE_CHAT_LIMIT:
        return invalid
    try:
        message = request.json()
        cards = message.get("cardsV2", [])
        ok = bool(message.get("text") or cards) and all(
            c["cardId"] and all(isinstance(s["widgets"], list) for s in c["card"]["sections"])
            for c in cards
        )
        if "thread" in message:
            ok = ok and "messageReplyOption=" in request.query
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    return None if ok else invalid


class HttpStandIn:
    """A recording HTTP server: each request gets the next scripted :class:`Reply`, or
    ``default`` once the script runs out.

    Requests under ``/slow/`` are answered after :data:`SLOW` seconds, outside the script and
    the record: a request its client gave up on may reach the server late, in the next test,
    and must not take that test's replies.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.contract: Callable[[Recorded], Reply | None] = _anything
        """What the far side refuses whatever the script says (a :class:`Reply`), from its
        documented contract; ``None`` for a request it takes."""
        self.requests: list[Recorded] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def slow_url(self, path: str = "/") -> str:
        return self.url("/slow" + path)

    def reset(
        self,
        *script: Reply,
        default: Reply = Reply(),
        contract: Callable[[Recorded], Reply | None] = _anything,
    ) -> None:
        self.requests.clear()
        self.script = deque(script)
        self.default = default
        self.contract = contract

    async def _answer(self, request: Request) -> Response:
        if request.url.path.startswith("/slow/"):
            await asyncio.sleep(SLOW)
            return Response(b"ok")
        body = await request.body()
        headers = dict(request.headers)
        raw_path = bytes(request.scope.get("raw_path") or b"").decode("ascii", "replace")
        recorded = Recorded(
            request.method, request.url.path, headers, body, request.url.query, raw_path
        )
        self.requests.append(recorded)
        reply = self.contract(recorded) or (self.script.popleft() if self.script else self.default)
        content = reply.body
        if reply.echo:
            echoed = {"url": str(request.url), "headers": headers, "body": body.decode()}
            content = json.dumps(echoed).encode()
        return Response(content, status_code=reply.status, headers=reply.headers)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the HTTP stand-in did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class SmtpStandIn:
    """An aiosmtpd handler that keeps every message and answers as scripted: ``rcpt_reply``
    for every RCPT (``None``: accept), ``data_reply`` for DATA."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.rcpt_reply: dict[str, str] = {}
        self.data_reply = "250 OK"

    def reset(self) -> None:
        self.envelopes.clear()
        self.rcpt_reply = {}
        self.data_reply = "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_reply.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.data_reply


class Authenticator:
    """Accepts one username and password."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.username,
            self.password,
        )
        return AuthResult(success=good, handled=False)  # aiosmtpd answers 235 or 535


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(folder: Path) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, made by the ``openssl`` command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key)),
            *("-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


def run(call: Callable[[httpx.AsyncClient], Awaitable[T]], timeout: float = 2.0) -> T:
    """Run one sink call on a fresh event loop with a fresh client, as a worker would."""

    async def main() -> T:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await call(client)

    return asyncio.run(main())


def failure(
    call: Callable[[httpx.AsyncClient], Awaitable[object]], timeout: float = 2.0
) -> DeliveryError:
    """The :class:`DeliveryError` ``call`` raises."""
    with pytest.raises(DeliveryError) as caught:
        run(call, timeout)
    return caught.value


def forms(secret: str) -> set[str]:
    """``secret`` in clear, and base64 (standard and URL-safe, padded or not) as well."""
    raw = secret.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return {secret, *encoded, *(e.rstrip("=") for e in encoded)}


def assert_no_secret(
    error: BaseException, records: Iterable[logging.LogRecord], secrets: Iterable[str]
) -> None:
    """Neither ``error`` (str, repr, formatted traceback with anything chained) nor any log
    record of ours (message, arguments and extra fields) holds a secret in any usual form;
    and ``error`` has nothing chained to it, not even a suppressed context, which a stored
    traceback or an error tracker could still show."""
    assert error.__context__ is None and error.__cause__ is None
    said = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for record in records:
        if not record.name.startswith(STANDIN_LOGGERS):
            said.append(record.getMessage())
            said.append(repr(record.__dict__))
    text = "\n".join(said)
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"a secret appears in {text!r}"
