"""The two servers the ingest benchmark compares, under the same uvicorn settings.

``python -m tests.bench.serve bare PORT``: a bare Starlette endpoint that reads the body and
answers 202. ``python -m tests.bench.serve flowhooks PORT``: the receiver, from the
``FLOWHOOKS_*`` environment, exactly as ``flowhooks serve`` builds it.
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from config import logs
from config.loader import load
from config.settings import Settings
from receiver.app import create_app


def bare_app() -> Starlette:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(b'{"id": "x"}', 202, media_type="application/json")

    return Starlette(routes=[Route("/webhooks/{source}", endpoint, methods=["POST"])])


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":
        app = bare_app()
    else:
        settings = Settings()
        logs.setup(settings.log_format, settings.log_level)
        app = create_app(settings, load(settings.config))
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, workers=1)


if __name__ == "__main__":
    main()
