"""A small HTTP/1.1 load generator on raw keep-alive connections (httpx costs more CPU a
request than the receiver does, and on two cores that CPU is taken from the system measured).

:func:`run` is closed-loop: ``connections`` connections, each sending the next prepared request
as soon as the previous answer is complete. :func:`paced` sends at a steady rate over a
:class:`Pool`, and :func:`acknowledged` sends one request again until it is acknowledged, as
Etlworks retries a webhook.
"""

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    seconds: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def rate(self, ok: tuple[int, ...] = (200, 202)) -> float:
        return sum(n for s, n in self.statuses.items() if s in ok) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.WriteTransport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's; they write all the same.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = self.buffer[:end].decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n")[1:]:
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head.split(" ", 2)[1])
        self.buffer = self.buffer[end + 4 + length :]
        waiter, self.waiter = self.waiter, None
        waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def send(self, request: bytes) -> int:
        """The status of the answer to ``request``; ``ConnectionError`` when the connection
        is or gets closed before the answer is complete."""
        assert self.transport is not None
        if self.closed:
            raise ConnectionError("closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def run(
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    seconds: float,
    warmup: float,
    mark: Callable[[], None] = lambda: None,
) -> Result:
    """Send ``requests`` in order (never one twice) for ``warmup`` + ``seconds``; measure the
    last ``seconds`` only. ``mark`` is called when that window opens and when it closes."""
    loop = asyncio.get_running_loop()
    result = Result(seconds)
    cursor = iter(requests)
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    loop.call_later(warmup, mark)

    async def client() -> None:
        _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        for request in cursor:
            sent = time.perf_counter()
            if sent >= stop_at:
                break
            status = await conn.send(request)
            if sent >= measure_from:
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.latencies.append(time.perf_counter() - sent)
        assert conn.transport is not None
        conn.transport.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    mark()
    return result


def http_request(port: int, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A POST of ``body`` to ``path`` on the loopback ``port``, as bytes on the wire."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Pool:
    """At most ``size`` keep-alive connections to a loopback ``port``, opened when needed and
    again after one breaks (the server restarted, or closed it)."""

    def __init__(self, port: int, size: int, *, timeout: float = 30.0) -> None:
        self.port, self.timeout = port, timeout
        self.slots = asyncio.Semaphore(size)
        self.idle: list[Connection] = []

    async def send(self, request: bytes) -> int:
        """The status of the answer to ``request``. Raises ``OSError`` (connection refused,
        reset or closed, no answer within ``timeout`` seconds) having dropped the connection."""
        async with self.slots:
            connection = await self._connection()
            try:
                status = await asyncio.wait_for(connection.send(request), self.timeout)
            except OSError:  # TimeoutError and ConnectionError included
                if connection.transport is not None:
                    connection.transport.close()
                raise
            self.idle.append(connection)
            return status

    async def _connection(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(Connection, "127.0.0.1", self.port)
        return connection

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()
        self.idle.clear()


@dataclass
class Posted:
    """One request sent until answered: when it was first sent, how it was answered last and
    when, and how many times it was sent."""

    first_at: float
    status: int | None = None
    """``None``: no answer ever came (every attempt met a broken connection)."""
    answered_at: float | None = None
    attempts: int = 0

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


RETRIED = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses after which a sender tries the same request again later."""


async def acknowledged(pool: Pool, request: bytes, *, every: float, give_up_after: float) -> Posted:
    """Send ``request`` until it is answered with anything but a status of :data:`RETRIED`,
    as Etlworks retries a webhook: the same bytes again (so the same event id) ``every``
    seconds after a 503, a refused, reset or closed connection, for ``give_up_after`` seconds
    at most."""
    posted = Posted(time.time())
    deadline = time.monotonic() + give_up_after
    while True:
        posted.attempts += 1
        try:
            posted.status = await pool.send(request)
            posted.answered_at = time.time()
        except OSError:
            pass
        else:
            if posted.status not in RETRIED:
                return posted
        if time.monotonic() + every > deadline:
            return posted
        await asyncio.sleep(every)


async def paced(
    rate: float, count: int, send: Callable[[int], Coroutine[Any, Any, Posted]]
) -> list[Posted]:
    """Call ``send(i)`` for ``i`` in ``range(count)``, ``rate`` a second on a steady clock,
    each in a task of its own (a slow answer delays no later request); what each returned,
    once all have."""
    tasks: list[asyncio.Task[Posted]] = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    return list(await asyncio.gather(*tasks))
