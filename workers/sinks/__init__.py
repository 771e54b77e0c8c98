"""Destinations: one module per destination (:mod:`.slack`, :mod:`.pagerduty`, :mod:`.email`,
:mod:`.webhook`, :mod:`.log`), each holding all of it (settings model, message, resolve and
digest, escaping and limits, pace, send) in the ``DESTINATION`` that :mod:`.registry` lists.
Each has one public coroutine::

    async def send(settings, payload, *, client, delivery_id) -> int | None

which delivers one rendered ``payload`` and returns the HTTP status (``None`` for sinks that
are not HTTP), or raises :class:`DeliveryError`. Nothing else escapes a sink except a
``TypeError`` or ``KeyError`` for a payload of the wrong shape, a bug of the caller, and RQ's
``JobTimeoutException``: the job's time limit struck mid-send, which fails the job (RQ's
retries apply), never the delivery.
:func:`.registry.send` picks the destination an :class:`~config.schema.Action` names. This
module is the shared HTTP edge and error contract the destinations build on.

Error contract::

    DeliveryError            the one exception a sink raises
      .retryable True        connection errors, timeouts, 408, 425, 429, 5xx, SMTP 4xx
      .retryable False       other 4xx, unexpected answers, SMTP 5xx, refused logins, bad config
      .status                the HTTP status (the SMTP reply code for email), when there was one
      .retry_after           seconds the far side asked us to wait (``Retry-After``), capped

Whether to retry is decided here, in :func:`check_response` and :func:`post`, and nowhere else.

Secrets never leak: a :class:`DeliveryError` says the sink, the status and a short reason, never
a URL (a Slack webhook URL *is* a secret), a header value, a key or a response body that could
echo one. It is raised outside the ``except`` block that caught the underlying error, so no
chained exception carries httpx's message (which quotes the URL) into a stored traceback. httpx
logs every request's full URL at INFO, httpcore the response headers at DEBUG:
:class:`RedactHttpLogs` keeps both to what is not secret.
"""

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx
from rq.timeouts import JobTimeoutException

__all__ = [
    "DEADLINE",
    "HTTP_LOGGERS",
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "RETRYABLE_STATUSES",
    "DeliveryError",
    "RedactHttpLogs",
    "check_response",
    "encode_json",
    "exchange",
    "parse_retry_after",
    "post",
    "redact_http_logs",
]

MAX_RETRY_AFTER = 3600.0
"""A ``Retry-After`` longer than this (one hour) is read as this: a sink may not park a delivery
for a day with one header."""
MAX_BODY = 64 * 1024
"""Bytes of a response body read at most; the rest is never downloaded."""
DEADLINE = 30.0
"""Seconds one HTTP attempt may take in all, when the action sets no timeout of its own."""
RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that mean "not now" rather than "never"; every 5xx is retryable too."""

HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
"""The loggers :class:`RedactHttpLogs` guards."""

_DIGITS = re.compile(r"[0-9]+")
_EXCEPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DeliveryError(Exception):
    """A delivery that did not succeed, and whether trying it again may.

    ``str()`` reads like ``slack: HTTP 429 Too Many Requests (retryable, retry after 2s)``.
    """

    def __init__(
        self,
        sink: str,
        reason: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(sink, reason)
        self.sink = sink
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.sink}: {self.reason} ({'retryable' if self.retryable else 'permanent'}"
        if self.retry_after is not None:
            text += f", retry after {self.retry_after:g}s"
        return text + ")"

    def __repr__(self) -> str:
        return (
            f"DeliveryError({self.sink!r}, {self.reason!r}, retryable={self.retryable!r}, "
            f"status={self.status!r}, retry_after={self.retry_after!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # The keyword-only arguments would be lost by Exception's own pickling.
        fields = (self.sink, self.reason, self.retryable, self.status, self.retry_after)
        return (_rebuild, fields)


def _rebuild(
    sink: str, reason: str, retryable: bool, status: int | None, retry_after: float | None
) -> DeliveryError:
    return DeliveryError(sink, reason, retryable=retryable, status=status, retry_after=retry_after)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date, read
    against ``now``, a Unix time), between 0 and :data:`MAX_RETRY_AFTER`; ``None`` when absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        seconds = float(text) if len(text) < 16 else MAX_RETRY_AFTER
    else:
        when = _http_date(text)
        if when is None:
            return None
        seconds = when - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _http_date(text: str) -> float | None:
    """An HTTP-date (or its obsolete forms) as a Unix time; one without a zone is UTC."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _server_now(response: httpx.Response) -> float:
    """The response's ``Date``, so an HTTP-date ``Retry-After`` survives clock skew; else ours."""
    date = _http_date(response.headers.get("date", ""))
    return time.time() if date is None else date


def _describe(status: int, detail: str | None) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".rstrip()
    return f"{text}: {detail}" if detail else text


def check_response(
    sink: str,
    response: httpx.Response,
    ok: Callable[[httpx.Response], bool] | None = None,
    *,
    detail: str | None = None,
) -> None:
    """Return if ``response`` is a success, else raise :class:`DeliveryError`.

    Success is a 2xx for which ``ok`` (if given) holds; a 2xx it rejects is a permanent error.
    408, 425, 429 and 5xx are retryable, with ``retry_after`` from their ``Retry-After``;
    everything else (other 4xx, and 1xx/3xx, since redirects are never followed) is permanent.
    ``detail`` is a short reason to add; the caller vouches that it holds no secret. The
    response's own reason phrase and body are never quoted.
    """
    status = response.status_code
    if 200 <= status < 300:
        if ok is None or ok(response):
            return
        reason = _describe(status, detail or "unexpected response")
        raise DeliveryError(sink, reason, retryable=False, status=status)
    retryable = status in RETRYABLE_STATUSES or 500 <= status < 600
    retry_after = None
    if retryable:
        retry_after = parse_retry_after(response.headers.get("retry-after"), _server_now(response))
    raise DeliveryError(
        sink,
        _describe(status, detail),
        retryable=retryable,
        status=status,
        retry_after=retry_after,
    )


def encode_json(sink: str, payload: object) -> bytes:
    """``payload`` as compact JSON bytes; a value JSON cannot hold is a permanent error."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        failure = DeliveryError(sink, "payload is not JSON serializable", retryable=False)
    raise failure


async def post(
    sink: str,
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float = DEADLINE,
) -> httpx.Response:
    """POST ``content`` to ``url``: :func:`exchange` with at most :data:`MAX_BODY` bytes of
    the answer read."""
    return await exchange(
        sink, client, "POST", url, content=content, headers=headers, deadline=deadline
    )


async def exchange(
    sink: str,
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    deadline: float = DEADLINE,
    max_body: int = MAX_BODY,
) -> httpx.Response:
    """One HTTP attempt; the response with at most ``max_body`` bytes of its body read (the
    rest is never downloaded). Redirects are not followed.

    Each phase has the client's timeouts, the whole attempt ``deadline`` seconds. Raises
    :class:`DeliveryError` with only the exception's class name as the reason, since httpx's
    messages quote the URL: retryable for connection errors, timeouts and protocol errors
    (any ``httpx.HTTPError``), permanent for a URL httpx cannot use and for anything else that
    escapes httpx (a port out of range surfaces as an ``ExceptionGroup``; an illegal header
    value, which may be a key, as a ``ValueError`` quoting it).
    """
    redact_http_logs()
    failure: DeliveryError | None = None
    try:
        async with asyncio.timeout(deadline):
            request = client.build_request(
                method, url, content=content, headers=headers, params=params
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                body = await _read_capped(response, max_body)
            finally:
                await response.aclose()
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        failure = DeliveryError(sink, type(exc).__name__, retryable=False)
    except httpx.HTTPError as exc:
        failure = DeliveryError(sink, type(exc).__name__, retryable=True)
    except TimeoutError:
        failure = DeliveryError(sink, "deadline exceeded", retryable=True)
    except JobTimeoutException:
        raise  # the job's time is up (RQ's SIGALRM): the job fails and RQ's retries apply
    except Exception as exc:  # its message may quote the URL, so it is never re-raised
        failure = DeliveryError(sink, type(exc).__name__, retryable=False)
    if failure is not None:
        raise failure  # outside the except blocks: no __context__ quoting the URL
    # The body is decoded already, so the headers that described its encoding go.
    kept = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(response.status_code, headers=kept, content=body, request=request)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


class RedactHttpLogs(logging.Filter):
    """Keeps secrets out of what httpx and httpcore log.

    httpx logs every request's full URL at INFO (``HTTP Request: POST <url> ...``): the URL is
    cut down to its origin, since the path and query of a Slack or webhook URL are its secret.
    httpcore logs, at DEBUG, the response headers (a ``Location`` may echo the URL) and the
    repr of exceptions (h11 quotes an illegal header value): those become the event's name,
    with the exception's class name.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "httpx" and isinstance(record.args, tuple):
            record.args = tuple(_origin(a) if isinstance(a, httpx.URL) else a for a in record.args)
        elif record.name.startswith("httpcore.") and isinstance(record.msg, str):
            event, _, details = record.msg.partition(" ")
            if event.endswith(".failed"):
                kind = _EXCEPTION.match(details.removeprefix("exception="))
                record.msg = f"{event} exception={kind.group() if kind else '?'}"
            elif event.startswith("receive_response_headers") and details:
                record.msg = f"{event} (headers not logged)"
        return True


def _origin(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}/…"


def redact_http_logs() -> None:
    """Install :class:`RedactHttpLogs` on the httpx and httpcore loggers, once. :func:`post`
    calls it; a composition root may call it at start, so that no other use of httpx logs a
    secret URL either."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactHttpLogs) for f in logger.filters):
            logger.addFilter(RedactHttpLogs())
