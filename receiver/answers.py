"""The webhook endpoint's answers, sent as plain ASGI: the bytes and headers Starlette's
``Response`` would send for the same JSON, without building one per request.

Starlette's ``Response(json.dumps(body), status, headers, "application/json")`` sends the given
headers (lower-cased) first, then ``content-length`` and ``content-type``, then the body in one
message; :class:`Answer` sends exactly that. ``tests/receiver/test_answers.py`` holds the two
to the same messages.
"""

import json
from json.encoder import encode_basestring_ascii as _quote

from starlette.types import Send


class Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        headers += [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]

    async def __call__(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def answer(status: int, body: dict[str, object], **headers: str) -> Answer:
    """``body`` as ``json.dumps`` writes it, with ``headers``."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return Answer(status, json.dumps(body).encode(), raw)


def stored(event_id: str, new: bool) -> Answer:
    """202 ``{"id": ...}`` for a new event, 200 ``{"id": ..., "duplicate": true}`` for one
    accepted before: :func:`answer`'s bytes, written out (``json.dumps`` of a dict builds an
    encoder per call, which costs more than the rest of the answer; ``_quote`` is the one it
    uses for a string)."""
    if new:
        return Answer(202, f'{{"id": {_quote(event_id)}}}'.encode(), [])
    return Answer(200, f'{{"id": {_quote(event_id)}, "duplicate": true}}'.encode(), [])
