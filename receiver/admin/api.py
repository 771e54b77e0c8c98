"""The admin JSON API, ``/api``, described by its OpenAPI document (``/api/openapi.json``,
:mod:`receiver.admin.openapi`).

Every request needs ``Authorization: Bearer <FLOWHOOKS_ADMIN_TOKEN>``, else 401 with
``WWW-Authenticate`` before anything else is looked at. Input that cannot be used is a 400 with
``{"error": ...}``, a Redis that does not answer a 503 with ``Retry-After``; nothing a client
sends is a 500.
"""

import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps

from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from config import keys
from config.deadletters import Missing
from config.incidents import INCIDENT_ID
from config.routejobs import Busy
from config.schema import SOURCE_NAME
from receiver.admin import openapi_console, queries
from receiver.admin.queries import BadRequest
from receiver.admin.site import Admin, TooLarge, reply
from receiver.admin.store import NoSuchEvent, Store

log = logging.getLogger("flowhooks.admin")
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_KEY = 1000
"""The longest event id (or ref) looked up; no stored id is longer than a header allows."""
UNAUTHORIZED = {"www-authenticate": 'Bearer realm="flowhooks"'}


def build(admin: Admin) -> ASGIApp:
    api = _Api(admin)
    routes = [
        Route("/openapi.json", api.document, methods=["GET"]),
        Route("/events", _answers(api.events), methods=["GET"]),
        Route("/events/{key}", _answers(api.event), methods=["GET"]),
        Route("/events/{key}/replay", _answers(api.replay), methods=["POST"]),
        Route("/events/{source}/{id:path}/replay", _answers(api.replay), methods=["POST"]),
        Route("/events/{source}/{id:path}", _answers(api.event), methods=["GET"]),
        Route("/dlq", _answers(api.dead_letters), methods=["GET"]),
        Route("/dlq/replay", _answers(api.replay_dead_matching), methods=["POST"]),
        Route("/dlq/{job}/replay", _answers(api.replay_dead), methods=["POST"]),
        Route("/dlq/{job}", _answers(api.delete_dead), methods=["DELETE"]),
        Route("/silences", _answers(api.silences), methods=["GET"]),
        Route("/silences", _answers(api.add_silence), methods=["POST"]),
        Route("/silences/preview", _answers(api.preview_silence), methods=["GET"]),
        Route("/silences/{id}", _answers(api.expire_silence), methods=["DELETE"]),
        Route("/metrics/summary", _answers(api.summary), methods=["GET"]),
        Route("/overview", _answers(api.overview), methods=["GET"]),
        Route("/incidents", _answers(api.incidents), methods=["GET"]),
        Route("/incidents/{id}/acknowledge", _answers(api.acknowledge), methods=["POST"]),
        Route("/incidents/{id}/resolve", _answers(api.resolve), methods=["POST"]),
        Route("/deliveries", _answers(api.actions), methods=["GET"]),
        Route("/deliveries/{action}", _answers(api.attempts), methods=["GET"]),
        Route("/sessions", _answers(api.end_sessions), methods=["DELETE"]),
    ]
    router = Router(routes, redirect_slashes=False, default=_not_found)
    return _Guard(router, admin)


class _Guard:
    """Lets through only requests that carry the admin token."""

    def __init__(self, app: ASGIApp, admin: Admin) -> None:
        self.app = app
        self.admin = admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.admin.keys.bearer_ok(Headers(scope=scope)):
            remote = scope.get("client") or ("", 0)
            log.warning(
                "admin request refused",
                extra={"path": str(scope.get("path", ""))[:100], "remote": remote[0]},
            )
            response = reply(401, {"error": "unauthorized"}, **UNAUTHORIZED)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await reply(404, {"error": "not found"})(scope, receive, send)


def _answers(endpoint: Endpoint) -> Endpoint:
    """The answers every endpoint shares: 400 for input it cannot use, 503 while Redis does not
    answer."""

    @wraps(endpoint)
    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except BadRequest as exc:
            return reply(400, {"error": str(exc)})
        except RedisError as exc:
            log.error("admin request failed: Redis", extra={"reason": type(exc).__name__})
            return reply(503, {"error": "Redis is unavailable"}, **{"retry-after": "5"})

    return answer


def _params(request: Request) -> dict[str, list[str]]:
    query = request.query_params
    return {name: query.getlist(name) for name in query}


class _Api:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.run = admin.run
        self._document = json.dumps(openapi_console.document())

    async def document(self, request: Request) -> Response:
        return Response(self._document, media_type="application/json")

    # events

    async def events(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, (*queries.EVENT_FILTERS, "q", "limit", "offset"))
        filters = queries.event_filters(params)
        text = queries.text(queries.one(params, "q"), "q")
        limit, offset = queries.page(params)
        total, found = await self.run(Store.events, filters, limit, offset, text)
        return reply(200, found, **{"x-total-count": str(total)})

    async def _ref(self, request: Request) -> str | Response:
        """The ref the path names, or the answer when it names none or several."""
        path = request.path_params
        if "key" in path:
            given = path["key"]
            found = len(given) <= MAX_KEY
            refs = await self.run(Store.find, given) if found else []
        elif re_ok(SOURCE_NAME, path["source"]) and 0 < len(path["id"]) <= MAX_KEY:
            refs = await self.run(Store.find, path["id"], path["source"])
        else:
            refs = []
        if not refs:
            return reply(404, {"error": "no such event"})
        if len(refs) > 1:
            message = "events of several sources have this id: name the source"
            return reply(409, {"error": message, "refs": refs})
        return refs[0]

    async def event(self, request: Request) -> Response:
        queries.known(_params(request), ())
        ref = await self._ref(request)
        if isinstance(ref, Response):
            return ref
        found = await self.run(Store.event, ref)
        if found is None:  # expired meanwhile
            return reply(404, {"error": "no such event"})
        return reply(200, found)

    async def replay(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("force",))
        force = queries.flag(queries.one(params, "force"), "force")
        ref = await self._ref(request)
        if isinstance(ref, Response):
            return ref
        try:
            done = await self.run(Store.replay, ref, force=force)
        except NoSuchEvent:
            return reply(404, {"error": "no such event"})
        except Busy:
            return reply(409, {"error": "the event's route job is queued or running already"})
        source, event_id = keys.split_ref(ref)
        extra = {"source": source, "event_id": event_id, "force": force}
        log.info("event replayed", extra={**extra, "forgotten": len(done.forgotten)})
        body = {"ref": ref, "job": done.job_id, "force": force, "forgotten": list(done.forgotten)}
        return reply(202, body)

    async def summary(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("windowHours",))
        hours = queries.window_hours(queries.one(params, "windowHours"))
        return reply(200, await self.run(Store.summary, hours))

    async def overview(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("minutes",))
        minutes = queries.minutes(queries.one(params, "minutes"))
        return reply(200, await self.run(Store.overview, minutes))

    # incidents

    async def incidents(self, request: Request) -> Response:
        queries.known(_params(request), ())
        return reply(200, await self.run(Store.incidents))

    async def acknowledge(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("by",))
        by = queries.text(queries.one(params, "by"), "by") or "api"
        incident_id = request.path_params["id"]
        if re_ok(INCIDENT_ID, incident_id) and await self.run(Store.acknowledge, incident_id, by):
            log.info("incident acknowledged", extra={"incident": incident_id, "author": by})
            return reply(200, {"id": incident_id, "acknowledged": True, "by": by})
        return reply(404, {"error": "no such open incident"})

    async def resolve(self, request: Request) -> Response:
        queries.known(_params(request), ())
        incident_id = request.path_params["id"]
        if re_ok(INCIDENT_ID, incident_id) and await self.run(Store.resolve, incident_id):
            log.info("incident resolved by hand", extra={"incident": incident_id})
            return reply(200, {"id": incident_id, "resolved": True})
        return reply(404, {"error": "no such open incident"})

    # deliveries

    async def actions(self, request: Request) -> Response:
        queries.known(_params(request), ())
        return reply(200, await self.run(Store.actions))

    async def attempts(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("outcome", "limit", "offset"))
        outcome = queries.choice(queries.one(params, "outcome"), "outcome", queries.OUTCOMES)
        limit, offset = queries.page(params)
        action = queries.path_value(request.path_params["action"], "action", SOURCE_NAME)
        found = await self.run(Store.attempts, action, outcome)
        page = found[offset : offset + limit]
        return reply(200, page, **{"x-total-count": str(len(found))})

    # sessions

    async def end_sessions(self, request: Request) -> Response:
        queries.known(_params(request), ())
        ended = await self.run(Store.end_sessions)
        log.info("admin sessions ended", extra={"sessions": ended})
        return reply(200, {"ended": ended})

    # dead letters

    async def dead_letters(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("limit", "offset"))
        limit, offset = queries.page(params)
        total, found = await self.run(Store.dead_letters, limit, offset)
        return reply(200, found, **{"x-total-count": str(total)})

    async def replay_dead_matching(self, request: Request) -> Response:
        """Replay every dead job of ``action`` whose reason contains ``reason``; with
        ``dryRun=true`` only count them."""
        params = _params(request)
        queries.known(params, ("action", "reason", "dryRun"))
        action = queries.text(queries.one(params, "action"), "action", SOURCE_NAME)
        reason = queries.text(queries.one(params, "reason"), "reason")
        if queries.flag(queries.one(params, "dryRun"), "dryRun"):
            found = await self.run(Store.dead_matching, action, reason)
            return reply(200, {"matched": len(found), "jobs": [d["job"] for d in found]})
        replayed, gone = await self.run(Store.replay_matching, action, reason)
        extra = {"action": action, "reason": reason, "replayed": replayed, "gone": gone}
        log.info("dead letters replayed", extra=extra)
        return reply(200, {"replayed": replayed, "gone": gone})

    async def _dead(
        self, request: Request, call: Callable[[Store, str], None], done: str
    ) -> Response:
        queries.known(_params(request), ())
        job_id = request.path_params["job"]
        try:
            queries.path_value(job_id, "job", queries.JOB_ID)
            await self.run(call, job_id)
        except (BadRequest, Missing):
            return reply(404, {"error": "no such job in the dead-letter registry"})
        log.info(f"dead letter {done}", extra={"job_id": job_id})
        return reply(200, {"job": job_id, done: True})

    async def replay_dead(self, request: Request) -> Response:
        return await self._dead(request, Store.replay_dead, "requeued")

    async def delete_dead(self, request: Request) -> Response:
        return await self._dead(request, Store.delete_dead, "deleted")

    # silences

    async def silences(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("all",))
        ended = queries.flag(queries.one(params, "all"), "all")
        return reply(200, await self.run(Store.silences, ended=ended))

    async def add_silence(self, request: Request) -> Response:
        queries.known(_params(request), ())
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return reply(415, {"error": "send application/json"})
        try:
            body = json.loads(await self.admin.body(request), parse_constant=_no_constant)
        except TooLarge:
            return reply(413, {"error": "body too large"})
        except TimeoutError:
            return reply(408, {"error": "body not received in time"})
        except (ValueError, RecursionError):
            raise BadRequest("the body is not JSON") from None
        fields = queries.new_silence(body)
        try:
            made = await self.run(Store.add_silence, **fields)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        log.info("silence added", extra={"silence_id": made["id"], "author": made["author"]})
        return reply(201, made)

    async def preview_silence(self, request: Request) -> Response:
        """How many events of the last ``hours`` (24) the ``matcher`` list would match."""
        params = _params(request)
        queries.known(params, ("matcher", "hours"))
        matchers = params.get("matcher") or []
        if not 1 <= len(matchers) <= queries.MAX_MATCHERS:
            raise BadRequest(f"matcher: give 1 to {queries.MAX_MATCHERS}")
        hours = queries.window_hours(queries.one(params, "hours"))
        try:
            found = await self.run(Store.silence_preview, matchers, hours)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return reply(200, {"matchers": matchers, "windowHours": hours, "matched": found})

    async def expire_silence(self, request: Request) -> Response:
        queries.known(_params(request), ())
        silence_id = request.path_params["id"]
        if re_ok(queries.SILENCE_ID, silence_id):
            ended = await self.run(Store.expire_silence, silence_id)
            if ended is not None:
                log.info("silence expired", extra={"silence_id": silence_id})
                return reply(200, ended)
        return reply(404, {"error": "no such silence"})


def re_ok(pattern: str, value: str) -> bool:
    try:
        queries.path_value(value, "", pattern)
    except BadRequest:
        return False
    return True


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
