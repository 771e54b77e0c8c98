"""Requests the webhook route would take reach its endpoint past the router (the shortcut);
whatever the shortcut does not take goes through Starlette's routing to the same endpoint.
Both ways must answer alike, byte for byte, which is what these tests compare: the same
requests sent to the app in-process once as they come (the shortcut) and once under a
``root_path`` (which the shortcut leaves to the router)."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis
from starlette.applications import Starlette
from starlette.types import Message

from config import keys
from receiver.app import create_app
from tests.support import HMAC_CONFIG, SECRET, make_config, settings

Request = tuple[str, str, list[tuple[bytes, bytes]], bytes]


def signed(body: bytes, content_type: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-etl-webhook-signature", mac.encode()),
    ]


def event(event_id: str) -> bytes:
    return json.dumps({"eventId": event_id, "eventType": "FLOW_FAILED", "flowId": 7}).encode()


def requests(tag: str) -> list[Request]:
    """One of each answer, with event ids of their own (``tag``, of five letters, so that the
    answers are of one length) so that both runs store anew."""
    new = event(f"{tag}-new")
    return [
        ("POST", "etl", signed(new), new),
        ("POST", "etl", signed(new), new),  # the duplicate
        ("GET", "etl", [(b"x-etl-webhook-event-id", f"{tag}-get".encode()), *signed(b"")], b""),
        ("POST", "nope", signed(new), new),
        ("POST", "etl", signed(b"{}"), new),
        ("POST", "etl", signed(new, b"text/plain"), new),
        ("POST", "etl", signed(b'{"eventId": '), b'{"eventId": '),
        ("POST", "etl", [(b"content-length", b"999999")], b""),
        ("HEAD", "etl", signed(b""), b""),
        ("PUT", "etl", signed(new), new),
        ("POST", "etl%2Fx", signed(new), new),
    ]


async def call(
    app: Starlette, request: Request, root_path: str, messages: list[Message] | None = None
) -> list[Message]:
    """The messages the app sends for ``request``, into ``messages`` when given (so that
    they are kept when the app raises)."""
    method, source, headers, body = request
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "root_path": root_path,
        "path": f"{root_path}/webhooks/{source}",
        "raw_path": f"{root_path}/webhooks/{source}".encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    messages = [] if messages is None else messages
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        await asyncio.Event().wait()  # nothing more is sent: wait to be cancelled
        raise AssertionError

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages


async def served(app: Starlette, body: Callable[[], Any]) -> Any:
    """Run ``body`` inside the app's lifespan."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        return await body()
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan


def without_ids(messages: list[Message], tag: str) -> list[Message]:
    return [
        {**m, "body": m["body"].replace(tag.encode(), b"TAG")} if "body" in m else m
        for m in messages
    ]


def test_the_shortcut_answers_as_the_route_does(redis: Redis, redis_url: str) -> None:
    app = create_app(settings(redis_url, max_body_bytes=4096), make_config(HMAC_CONFIG))

    async def both() -> tuple[list[list[Message]], list[list[Message]]]:
        short = [await call(app, r, "") for r in requests("short")]
        routed = [await call(app, r, "/prefix") for r in requests("route")]
        return short, routed

    short, routed = asyncio.run(served(app, both))
    assert [without_ids(m, "short") for m in short] == [without_ids(m, "route") for m in routed]
    statuses = [m[0]["status"] for m in short]
    assert statuses == [202, 200, 202, 404, 401, 415, 400, 413, 405, 405, 404]
    assert redis.exists(keys.event("etl:short-new"), keys.event("etl:route-new")) == 2


def test_an_unexpected_error_is_a_500_either_way(redis: Redis, redis_url: str) -> None:
    def broken_clock() -> float:
        raise RuntimeError("clock broke")

    app = create_app(settings(redis_url), make_config(HMAC_CONFIG), clock=broken_clock)
    body = event("boom")
    answers: list[list[Message]] = [[], []]

    async def both() -> None:
        for root_path, messages in zip(("", "/prefix"), answers, strict=True):
            with pytest.raises(RuntimeError, match="clock broke"):
                await call(app, ("POST", "etl", signed(body), body), root_path, messages)

    asyncio.run(served(app, both))
    assert answers[0] == answers[1]
    assert answers[0][0]["status"] == 500
    assert answers[0][1]["body"] == b"Internal Server Error"
    assert redis.dbsize() == 0
