"""RQ's time limit (SIGALRM raising ``JobTimeoutException``) striking while a job sends: the job
fails as a timeout, whose retries RQ owns; the delivery is not failed, and nothing of the job's
work goes on in the next job's turn of the worker's event loop."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from tests.support import make_config, settings
from workers.context import WorkerContext
from workers.metrics import WorkerMetrics
from workers.sinks import exchange

CONFIG = """
sources: {etl: {allow_unsigned: true}}
actions: {console: {log: {}}}
routes: {actions: [console]}
"""


@pytest.fixture
def ctx(redis_url: str) -> Iterator[WorkerContext]:
    worker_context = WorkerContext(
        settings(redis_url), make_config(CONFIG), WorkerMetrics(CollectorRegistry())
    )
    yield worker_context
    worker_context.close()


def test_a_time_limit_reached_while_waiting_on_a_send_cancels_the_send(
    ctx: WorkerContext, silent_port: int
) -> None:
    """The signal strikes while the loop waits on the socket: it escapes the loop, and the
    send it interrupted is cancelled rather than left to resume in the next job."""
    cancelled: list[str] = []

    async def send(client: httpx.AsyncClient) -> None:
        try:
            await exchange("webhook", client, "POST", f"http://127.0.0.1:{silent_port}/")
        except asyncio.CancelledError:
            cancelled.append("send")
            raise

    with (
        pytest.raises(JobTimeoutException),
        UnixSignalDeathPenalty(1, JobTimeoutException, job_id="job-1"),  # type: ignore[no-untyped-call]
    ):
        ctx.run(send(ctx.client))
    assert cancelled == ["send"]
    assert ctx.run(asyncio.sleep(0, "next job")) == "next job"


def test_a_time_limit_reached_inside_a_send_is_not_a_delivery_error(ctx: WorkerContext) -> None:
    """The signal strikes while the send's own code runs (here inside the transport, where
    SIGALRM would raise it): the sinks' catch-all lets it through."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await exchange("webhook", client, "POST", "http://127.0.0.1:9/")

    with pytest.raises(JobTimeoutException):
        ctx.run(send())
