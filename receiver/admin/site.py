"""The admin side of the receiver, mounted only when ``FLOWHOOKS_ADMIN_TOKEN`` is set: the JSON
API under ``/api`` (:mod:`receiver.admin.api`) and the web pages under ``/ui``
(:mod:`receiver.admin.pages`), both for the token's holder alone (:mod:`receiver.admin.auth`).

It keeps a synchronous Redis client of its own, opened in the receiver's lifespan: the
operations it shares with the command line are synchronous, and run in worker threads
(:meth:`Admin.run`) so that a slow listing never holds up a webhook.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp

from config.connections import connect
from config.schema import Config
from config.settings import Settings
from receiver.admin.auth import Keys
from receiver.admin.store import Store

log = logging.getLogger("flowhooks.admin")
T = TypeVar("T")
MAX_BODY = 64 * 1024
"""The largest body an admin request may carry (a new silence, a login form)."""


class TooLarge(Exception):
    pass


class Admin:
    def __init__(
        self,
        settings: Settings,
        token: SecretStr,
        clock: Callable[[], float],
        config: Callable[[], Config] | None = None,
    ) -> None:
        self.settings = settings
        self.keys = Keys(token)
        self.clock = clock
        self.config = config
        self._store: Store | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        settings = self.settings
        conn = connect(
            settings,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=min(settings.redis_timeout, 2.0),
        )
        self._store = Store(
            conn,
            retention=settings.event_retention,
            clock=self.clock,
        )
        log.info("admin API and pages enabled", extra={"paths": ["/api", "/ui"]})
        try:
            yield
        finally:
            self._store = None
            conn.close()

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(store, *args, **kwargs)`` in a worker thread; raise ``RedisError``."""
        store = self._store
        if store is None:
            raise RuntimeError("the admin is used outside the receiver's lifespan")
        return await run_in_threadpool(call, store, *args, **kwargs)

    async def redis(self, call: Callable[..., T], *args: Any) -> T:
        """``call(connection, *args)`` in a worker thread; raise ``RedisError``."""
        return await self.run(lambda store: call(store.conn, *args))

    def execution_page(self, event: Mapping[str, Any]) -> str | None:
        """The event's run in Etlworks' UI, when its source's instance sets ``ui_url``."""
        if self.config is None:
            return None
        config = self.config()
        source = config.sources.get(str(event.get("source") or ""))
        instance = config.etlworks.get(source.etlworks) if source and source.etlworks else None
        flow_id, audit_id = event.get("flow_id"), event.get("audit_id")
        if instance is None or not flow_id or not audit_id:
            return None
        return instance.execution_page(str(flow_id), str(audit_id))

    async def body(self, request: Request) -> bytes:
        """The request's body, :data:`MAX_BODY` at most, within the body timeout; raise
        :class:`TooLarge` or ``TimeoutError``."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            raise TooLarge
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.settings.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise TooLarge
                chunks.append(chunk)
        return b"".join(chunks)


def mount(path: str, app: ASGIApp) -> Mount:
    """Starlette's ``Mount``, taking every path under ``path``: its pattern's ``.`` would stop
    at a line feed (``%0A``), which would then miss the admin's guard and its JSON answers."""
    mounted = Mount(path, app=app)
    mounted.path_regex = re.compile(mounted.path_regex.pattern, re.DOTALL)
    return mounted


def reply(status: int, body: object, **headers: str) -> Response:
    """A JSON answer; values JSON cannot hold (a ``datetime``) are written as text."""
    text = json.dumps(body, default=str, ensure_ascii=False)
    return Response(text, status, headers or None, "application/json")
