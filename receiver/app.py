"""The receiver's composition root: ``create_app(settings, config)`` builds the Starlette app.

A webhook request goes through, in this order: unknown source (404) → size cap while streaming
(413; 408 for a body slower than the deadline) → verification of the raw bytes (401) →
content type (415) → parsing (400) → normalize → the durable write (503 if Redis cannot take
it) → 202, or 200 for a duplicate.

Besides ``/webhooks/{source}``, ``/healthz``, ``/readyz`` and ``/metrics``, it serves the admin
API and pages (:mod:`receiver.admin`) when an admin token is set.

The webhook endpoint is plain ASGI: it answers with two ``send`` calls, the bytes and headers
Starlette's ``Response`` would send (:mod:`receiver.answers`), without building a ``Request``
or a ``Response``; and the app (:class:`_App`) hands it the requests its route would match
before Starlette's middleware and router see them. Everything else, and whatever the app is
unsure of, goes through Starlette. That framework work was much of a bare Starlette endpoint's
CPU per request (README, Benchmarks).
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from config import keys, routejobs
from config.connections import connect_async
from config.events import dump_json
from config.schema import Config
from config.settings import Settings
from receiver import jobs, reload
from receiver.admin import api, pages
from receiver.admin.site import Admin, mount
from receiver.answers import Answer, answer, stored
from receiver.bodies import BodyReader, BodyTimeout, BodyTooLarge
from receiver.ingest import RQ_QUEUE_KEY, EventWriter, Unavailable, Unreplicated, first_entry
from receiver.metrics import ReceiverMetrics
from receiver.normalize import ETL_HEADERS, Unparseable, UnsupportedMediaType, fields, parse_body
from receiver.signatures import Rejected, compile_checks

log = logging.getLogger("flowhooks.receiver")


def create_app(
    settings: Settings,
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """Build the receiver. Redis is connected in the lifespan, so building opens no socket.

    With ``settings.admin_token`` it also serves the admin API (``/api``) and pages (``/ui``,
    :mod:`receiver.admin`); without one those paths do not exist (404).
    """
    receiver = _Receiver(settings, config, clock, ReceiverMetrics(registry or CollectorRegistry()))
    webhooks = Route("/webhooks/{source}", _Endpoint(receiver), methods=["GET", "POST"])
    routes: list[BaseRoute] = [
        webhooks,
        Route("/healthz", receiver.healthz),
        Route("/readyz", receiver.readyz),
        Route("/metrics", receiver.metrics_page),
    ]
    if receiver.admin is not None:  # without a token there is no admin side at all: 404
        routes += [
            mount("/api", api.build(receiver.admin)),
            mount("/ui", pages.build(receiver.admin)),
        ]
    return _App(receiver, webhooks, routes)


def _reply(status: int, body: dict[str, object], **headers: str) -> Response:
    return Response(json.dumps(body), status, headers or None, "application/json")


_ETL_NAMES = tuple((suffix, f"x-etl-webhook-{suffix}") for suffix in ETL_HEADERS)


class _Receiver:
    def __init__(
        self,
        settings: Settings,
        config: Config,
        clock: Callable[[], float],
        metrics: ReceiverMetrics,
    ) -> None:
        self.settings = settings
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.verifiers = {name: compile_checks(s.verify) for name, s in config.sources.items()}
        self.redis: Redis | None = None
        self.writer: EventWriter | None = None
        self.bodies = BodyReader(settings.max_body_bytes, settings.body_timeout)
        self._counters: dict[tuple[str, str], Any] = {}
        token = settings.admin_token
        current = lambda: self.config  # noqa: E731 (the config a reload put in place)
        self.admin = Admin(settings, token, clock, current) if token is not None else None

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        for name, source in self.config.sources.items():
            if source.allow_unsigned:
                log.warning("source accepts unsigned webhooks", extra={"source": name})
        self.redis = connect_async(
            settings,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=min(settings.redis_timeout, 2.0),
            # No client-side retries: a write retried after a lost reply would answer its
            # own event as a duplicate. The sender's retry after a 503 is the retry.
            retry=Retry(NoBackoff(), 0),
        )
        self.writer = EventWriter(
            self.redis,
            dedup_ttl=settings.dedup_ttl,
            retention=settings.event_retention,
            job_template=jobs.template(routejobs.TIMEOUT, settings.event_retention),
            deadline=settings.redis_timeout,
            on_commit=self._committed,
            clock=self.clock,
            min_replicas=settings.redis_min_replicas,
            replica_wait=settings.replica_wait,
        )
        log.info(
            "receiver ready",
            extra={"redis": settings.redis_location, "sources": sorted(self.verifiers)},
        )
        watchdog = asyncio.create_task(self.bodies.watch())
        reloads = self.metrics.config_reloads
        reloading = asyncio.create_task(reload.watch(settings.config, self._use, reloads))
        admin = self.admin.lifespan() if self.admin is not None else nullcontext()
        try:
            async with admin:
                yield
        finally:
            watchdog.cancel()
            reloading.cancel()
            await self.writer.aclose()
            await self.redis.aclose()

    def _use(self, config: Config) -> None:
        """Serve ``config`` from the next request on (a reload: :mod:`receiver.reload`). The
        request path reads its sources through ``verifiers`` alone, replaced in one step."""
        for name, source in config.sources.items():
            if source.allow_unsigned and name not in self.verifiers:
                log.warning("source accepts unsigned webhooks", extra={"source": name})
        self.verifiers = {name: compile_checks(s.verify) for name, s in config.sources.items()}
        self.config = config

    def _count(self, source: str, outcome: str) -> None:
        counter = self._counters.get((source, outcome))
        if counter is None:
            counter = self._counters[source, outcome] = self.metrics.requests.labels(
                source, outcome
            )
        counter.inc()

    def _refuse(
        self, source: str, outcome: str, status: int, message: str, **headers: str
    ) -> Answer:
        log.info("webhook refused", extra={"source": source, "outcome": outcome, "status": status})
        self._count(source, outcome)
        return answer(status, {"error": message}, **headers)

    def _committed(self, results: list[tuple[str, bool]]) -> None:
        """One log line per Redis round trip (group commit), naming every event it stored as
        ``source:id``: a line per event would cost more than the rest of accepting it."""
        self.metrics.commit_batch.observe(len(results))
        stored = [ref for ref, new in results if new]
        duplicates = [ref for ref, new in results if not new]
        log.info("events stored", extra={"events": stored, "duplicates": duplicates})

    async def webhook(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request to ``/webhooks/{name}`` (the ASGI endpoint of the route).

        An exception is answered 500 and raised again, as Starlette's error middleware does
        (which the requests :class:`_App` takes past it never reach).
        """
        try:
            answer = await self._answer(name, scope, receive)
        except Exception:
            await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise
        await answer(send)

    async def _answer(self, name: str, scope: Scope, receive: Receive) -> Answer:
        if scope["method"] == "HEAD":  # Starlette adds HEAD to GET routes; it is no delivery
            return answer(405, {"error": "method not allowed"}, allow="GET, POST")
        verifier = self.verifiers.get(name)
        if verifier is None:
            # The name is the client's text: no metric label for it, and only a bounded log.
            log.info("webhook refused", extra={"outcome": "unknown_source", "path": name[:100]})
            self._count("", "unknown_source")
            return answer(404, {"error": "unknown source"})
        headers = _header_lists(scope)
        try:
            body = await self.bodies.read(receive, _one(headers, "content-length"))
        except BodyTooLarge:
            return self._refuse(name, "too_large", 413, "body too large", connection="close")
        except BodyTimeout:
            message = "body not received in time"
            return self._refuse(name, "body_timeout", 408, message, connection="close")
        try:
            verified = verifier.verify(headers, body, self.clock())
        except Rejected as rejected:
            extra = {"source": name, "check": rejected.check, "reason": rejected.reason}
            log.warning("webhook rejected", extra=extra)
            self.metrics.verification_failures.labels(name, rejected.reason).inc()
            self._count(name, "rejected")
            return answer(401, {"error": "unauthorized"})
        try:
            payload = parse_body(_one(headers, "content-type"), body)
        except UnsupportedMediaType:
            message = "send application/json or form-encoded data"
            return self._refuse(name, "unsupported_media_type", 415, message)
        except Unparseable as exc:
            return self._refuse(name, "unparseable", 400, str(exc))
        return await self._accept(
            scope, name=name, headers=headers, body=body, payload=payload, verified=verified
        )

    async def _accept(
        self,
        scope: Scope,
        *,
        name: str,
        headers: dict[str, list[str]],
        body: bytes,
        payload: object,
        verified: list[str],
    ) -> Answer:
        received_at = datetime.fromtimestamp(self.clock(), UTC)
        etl = {suffix: v[0] for suffix, header in _ETL_NAMES if (v := headers.get(header))}
        delivery = headers.get("webhook-id")
        event = fields(
            name,
            payload,
            etl_headers=etl,
            body=body,
            received_at=received_at,
            delivery_id=delivery[0] if delivery else None,
        )
        event_id: str = event["id"]
        client = scope.get("client")
        entry = first_entry(received_at.isoformat(), verified, client[0] if client else None)
        assert self.writer is not None
        started = time.perf_counter()
        try:
            # Serialized without the Event model: dump_json writes the bytes it would.
            record = dump_json(event)
            new = await self.writer.store(keys.ref(name, event_id), record, entry)
        except Unavailable as exc:
            failed = {"source": name, "event_id": event_id, "reason": str(exc)}
            log.error("event not stored", extra=failed)
            self._count(name, "unreplicated" if isinstance(exc, Unreplicated) else "unavailable")
            retry = str(self.settings.retry_after)
            return answer(503, {"error": "temporarily unavailable"}, **{"retry-after": retry})
        self.metrics.enqueue_seconds.observe(time.perf_counter() - started)
        if not new:
            self.metrics.duplicates.labels(name).inc()
            self._count(name, "duplicate")
        else:
            self._count(name, "accepted")
        return stored(event_id, new)

    async def healthz(self, request: Request) -> Response:
        return _reply(200, {"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when Redis answers and, with ``FLOWHOOKS_REDIS_MIN_REPLICAS``, has that many
        replicas in sync: without them no webhook could be acknowledged."""
        required = self.settings.redis_min_replicas
        try:
            assert self.redis is not None
            async with asyncio.timeout(2):
                await self.redis.ping()
                replicas = _online(await self.redis.info("replication")) if required else 0
        except (RedisError, TimeoutError, AssertionError):
            return _reply(
                503, {"status": "unavailable", "redis": "unreachable", "config": "loaded"}
            )
        if replicas < required:
            body = {"status": "unavailable", "redis": "too few replicas", "config": "loaded"}
            return _reply(503, {**body, "replicas": replicas, "required": required})
        return _reply(200, {"status": "ok", "redis": "ok", "config": "loaded"})

    async def metrics_page(self, request: Request) -> Response:
        if self.redis is not None:
            try:
                async with asyncio.timeout(1):
                    self.metrics.queue_depth.set(await self.redis.llen(RQ_QUEUE_KEY))
            except (RedisError, TimeoutError):
                pass  # the gauge keeps its last value; /readyz says Redis is gone
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _online(replication: dict[str, Any]) -> int:
    """Replicas in sync, from ``INFO replication`` (``slaveN: {..., state: online}``)."""
    return sum(
        1
        for key, value in replication.items()
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )


def _one(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _header_lists(scope: Scope) -> dict[str, list[str]]:
    raw = scope["headers"]
    out = {name.decode("latin-1").lower(): [value.decode("latin-1")] for name, value in raw}
    if len(out) == len(raw):
        return out  # the usual: no header sent twice
    out = {}
    for name, value in raw:
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


class _Endpoint:
    """The route's endpoint: an object, not a function, so Starlette calls it as ASGI."""

    def __init__(self, receiver: _Receiver) -> None:
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.receiver.webhook(scope["path_params"]["source"], scope, receive, send)


class _App(Starlette):
    """Starlette, except that the requests the webhook route would take go straight to its
    endpoint, past Starlette's middleware and router.

    Only what the route itself would take, told by its own pattern: HTTP, one of its methods,
    no ``root_path`` to strip. Anything else goes through Starlette (its 405s, redirects and
    404s, the other routes, and the webhook route too).
    """

    def __init__(self, receiver: _Receiver, webhooks: Route, routes: list[BaseRoute]) -> None:
        super().__init__(routes=routes, lifespan=receiver.lifespan)
        self.receiver = receiver
        self.pattern = webhooks.path_regex
        self.methods = webhooks.methods or set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in self.methods
            and not scope.get("root_path")
            and (match := self.pattern.match(scope["path"])) is not None
        ):
            await self.receiver.webhook(match["source"], scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
