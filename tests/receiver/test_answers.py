"""The webhook endpoint's answers and the first timeline entry, written out for speed, hold to
the bytes Starlette's ``Response`` and ``json.dumps`` would make of the same content."""

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import Response
from starlette.types import Message

from receiver.answers import Answer, answer, stored
from receiver.ingest import first_entry

ANY_TEXT = st.text(st.characters(exclude_categories=()))  # lone surrogates too


def sent(app: Response | Answer) -> list[Message]:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    async def receive() -> Message:
        raise AssertionError("an answer reads nothing")

    if isinstance(app, Response):
        asyncio.run(app({"type": "http"}, receive, send))
    else:
        asyncio.run(app(send))
    return messages


def starlette(status: int, body: dict[str, object], **headers: str) -> Response:
    """How the endpoint answered when it built Starlette responses."""
    return Response(json.dumps(body), status, headers or None, "application/json")


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (405, {"error": "method not allowed"}, {"allow": "GET, POST"}),
        (404, {"error": "unknown source"}, {}),
        (413, {"error": "body too large"}, {"connection": "close"}),
        (401, {"error": "unauthorized"}, {}),
        (503, {"error": "temporarily unavailable"}, {"retry-after": "5"}),
        (400, {"error": "body nests deeper than 64 levels"}, {}),
    ],
)
def test_a_refusal_is_sent_as_starlette_sends_it(
    status: int, body: dict[str, object], headers: dict[str, str]
) -> None:
    assert sent(answer(status, body, **headers)) == sent(starlette(status, body, **headers))


@settings(max_examples=200, deadline=None)
@given(event_id=ANY_TEXT)
def test_a_stored_event_is_answered_as_starlette_would(event_id: str) -> None:
    assert sent(stored(event_id, True)) == sent(starlette(202, {"id": event_id}))
    duplicate = starlette(200, {"id": event_id, "duplicate": True})
    assert sent(stored(event_id, False)) == sent(duplicate)


@settings(max_examples=200, deadline=None)
@given(at=ANY_TEXT, verified=st.lists(ANY_TEXT, max_size=4), remote=st.none() | ANY_TEXT)
def test_the_first_entry_is_what_json_dumps_writes(
    at: str, verified: list[str], remote: str | None
) -> None:
    entry = {"at": at, "stage": "received", "verified": verified, "remote": remote}
    assert first_entry(at, verified, remote) == json.dumps(entry, default=str)
