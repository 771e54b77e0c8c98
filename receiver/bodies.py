"""Reading webhook bodies with a size cap and a deadline.

The cap is checked against ``Content-Length`` before reading and against the bytes received
while streaming, so a body over the cap is refused without reading the rest of it. The deadline
is kept by one watchdog task for all requests instead of a timer per request (a timer per
request costs more than the rest of reading a body): it wakes a few times a second and cancels
the reads that outlived their deadline, which then raise :class:`BodyTimeout`.
"""

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class BodyTooLarge(Exception):
    """The body is larger than the cap (413)."""


class BodyTimeout(Exception):
    """The body did not arrive before the deadline, or the client went away (408)."""


class BodyReader:
    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    async def watch(self) -> None:
        """Cancel expired reads; runs for the life of the app."""
        loop = asyncio.get_running_loop()
        interval = min(0.25, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for task, deadline in list(self._reads.items()):
                if deadline < now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    async def read(self, receive: Receive, content_length: str | None) -> bytes:
        """The whole body; raise :class:`BodyTooLarge` or :class:`BodyTimeout`."""
        declared = content_length or ""
        if declared.isascii() and declared.isdigit() and int(declared[:19]) > self.limit:
            raise BodyTooLarge
        task = asyncio.current_task()
        assert task is not None
        self._reads[task] = asyncio.get_running_loop().time() + self.timeout
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # The only await while the task is registered: a cancel from watch() lands here.
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BodyTimeout
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.limit:
                    raise BodyTooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except asyncio.CancelledError:
            # Our own cancel becomes a 408; any other (the server stopping) stays a cancel.
            if task not in self._expired or task.uncancel():
                raise
            raise BodyTimeout from None
        finally:
            del self._reads[task]
            self._expired.discard(task)
