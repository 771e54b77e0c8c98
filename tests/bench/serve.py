"""The servers the ingest benchmark compares, under the same uvicorn settings.

``python -m tests.bench.serve bare PORT``: a bare Starlette endpoint that reads the body and
answers 202. ``python -m tests.bench.serve flowhooks PORT``: the receiver, from the
``FLOWHOOKS_*`` environment, exactly as ``flowhooks serve`` builds it.

With ``--stages`` the benchmark also measures the receiver's steps cumulatively, on a bare
endpoint calling the receiver's own modules: ``verify`` (read the body and check its HMAC),
``normalize`` (and parse and normalize it), ``write`` (and write it through the group-commit
writer): where the time of a request goes.
"""

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from config import keys, logs
from config.events import dump_json
from config.loader import load
from config.settings import Settings
from receiver import jobs
from receiver.app import create_app
from receiver.ingest import EventWriter
from receiver.normalize import fields, parse_body
from receiver.signatures import compile_checks


def bare_app() -> Starlette:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(b'{"id": "x"}', 202, media_type="application/json")

    return Starlette(routes=[Route("/webhooks/{source}", endpoint, methods=["POST"])])


def stage_app(stage: str, settings: Settings) -> Starlette:
    config = load(settings.config)
    verifier = compile_checks(config.sources["etlworks"].verify)
    writer: list[EventWriter] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        template = jobs.template(settings.job_timeout, settings.event_retention)
        writer.append(
            EventWriter(redis, dedup_ttl=3600, retention=3600, job_template=template, deadline=5)
        )
        yield
        await redis.aclose()

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        headers = {k.decode("latin-1"): [v.decode("latin-1")] for k, v in request.scope["headers"]}
        verifier.verify(headers, body, time.time())
        if stage != "verify":
            event = fields(
                "etlworks",
                parse_body("application/json", body),
                etl_headers={},
                body=body,
                received_at=datetime.now(UTC),
            )
            if stage == "write":
                ref = keys.ref("etlworks", event["id"])
                await writer[0].store(ref, dump_json(event), '{"stage": "received"}')
        return Response(b'{"id": "x"}', 202, media_type="application/json")

    routes = [Route("/webhooks/{source}", endpoint, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":
        app = bare_app()
    elif kind in ("verify", "normalize", "write"):
        app = stage_app(kind, Settings())
    else:
        settings = Settings()
        logs.setup(settings.log_format, settings.log_level)
        app = create_app(settings, load(settings.config))
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, workers=1)


if __name__ == "__main__":
    main()
