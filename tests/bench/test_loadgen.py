"""The load generator sends a webhook again until it is acknowledged, as Etlworks does."""

import asyncio
import threading

from tests.bench.loadgen import Pool, Posted, acknowledged, http_request
from tests.support import free_port
from tests.workers.sinks.standins import HttpStandIn, Reply

BODY = b'{"eventId": "e-1"}'


def post(port: int, give_up_after: float) -> Posted:
    request = http_request(port, "/webhooks/etl", BODY, {"Content-Type": "application/json"})

    async def send() -> Posted:
        pool = Pool(port, 2, timeout=5)
        try:
            return await acknowledged(pool, request, every=0.1, give_up_after=give_up_after)
        finally:
            pool.close()

    return asyncio.run(send())


def test_the_same_request_is_sent_again_after_a_refused_connection_and_a_503() -> None:
    port = free_port()
    server = HttpStandIn(port)
    server.reset(Reply(503), default=Reply(202, b'{"id": "e-1"}'))
    starting = threading.Timer(0.5, server.start)  # nothing listens for the first attempts
    starting.start()
    try:
        posted = post(port, give_up_after=20)
    finally:
        starting.join()
        server.stop()
    assert posted.acknowledged
    assert posted.status == 202
    assert posted.attempts >= 3  # refused at least once, then the 503, then the 202
    assert [(r.path, r.body) for r in server.requests] == [("/webhooks/etl", BODY)] * 2


def test_a_request_never_answered_is_given_up() -> None:
    posted = post(free_port(), give_up_after=0.3)
    assert (posted.status, posted.answered_at, posted.acknowledged) == (None, None, False)
    assert posted.attempts >= 2
