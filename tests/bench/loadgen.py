"""A small closed-loop HTTP/1.1 load generator: ``connections`` keep-alive connections, each
sending the next prepared request as soon as the previous answer is complete."""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


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
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
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
