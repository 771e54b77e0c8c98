"""The admin web pages, ``/ui``: server-rendered (Jinja2, autoescaped, no script), behind the admin
token given once in a login form.

The login (throttled per client, with a CSRF token of its own) sets a session cookie
(``Secure``, ``HttpOnly``, ``SameSite=Strict``, path ``/ui``) holding a random session id kept
in Redis (:mod:`receiver.admin.sessions`); logging out ends it, and the admin can end them all.
Every POST form carries a CSRF token derived from the session (:mod:`receiver.admin.auth`).
Pages answer with a Content-Security-Policy that allows no script at all and forms only to
this site. Everything shown from an event is escaped by the templates; charts are SVG drawn
here (:mod:`receiver.admin.charts`).
"""

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from config import keys
from config.deadletters import Missing
from config.eventlog import Filters
from config.events import Event
from config.incidents import INCIDENT_ID
from config.matchers import Matcher
from config.routejobs import Busy
from config.schema import SOURCE_NAME
from receiver.admin import charts, queries, reports, sessions
from receiver.admin.auth import SESSION_ID, SESSION_SECONDS, new_id
from receiver.admin.queries import BadRequest
from receiver.admin.site import Admin, TooLarge
from receiver.admin.store import NoSuchEvent, Store

log = logging.getLogger("flowhooks.admin")
COOKIE = "flowhooks_session"
LOGIN_COOKIE = "flowhooks_login"
"""The login form's nonce, which its CSRF token is derived from."""
COOKIE_FLAGS: dict[str, Any] = {
    "path": "/ui",
    "secure": True,
    "httponly": True,
    "samesite": "strict",
}
PAGE_SIZE = 50
REFRESH_SECONDS = 10
OPEN = ("/login", "/style.css")
"""Paths under /ui served without a session."""
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}
NOTICES = {
    "replayed": "The event's route job is queued again.",
    "busy": "The event's route job is queued or running already.",
    "requeued": "The dead job is queued again.",
    "deleted": "The dead job is deleted.",
    "gone": "That job is no longer in the dead-letter registry.",
    "silenced": "The silence is added.",
    "expired": "The silence has ended.",
    "signed-out": "You are signed out.",
    "acknowledged": "The incident is acknowledged: no repeats until it resolves.",
    "resolved": "The incident is resolved.",
    "no-incident": "That incident is no longer open.",
    "changed": "The dead letters changed since the page was shown: check the count again.",
    "bulk": "{n} dead job(s) queued again.",
    "ended": "Every session has ended, yours too.",
}
"""What a redirect's ``?notice=`` may say: fixed texts, never the client's."""
Endpoint = Callable[[Request], Awaitable[Response]]


def build(admin: Admin) -> ASGIApp:
    pages = _Pages(admin)

    def page(path: str, endpoint: Endpoint, method: str = "GET") -> Route:
        return Route(path, _guarded(pages, endpoint, path in OPEN), methods=[method])

    routes = [
        page("/", pages.home),
        page("/login", pages.login_form),
        page("/login", pages.login, "POST"),
        page("/logout", pages.logout, "POST"),
        page("/sessions/end", pages.end_sessions, "POST"),
        page("/style.css", pages.style),
        page("/incidents", pages.incidents),
        page("/incidents/{id}/acknowledge", pages.acknowledge, "POST"),
        page("/incidents/{id}/resolve", pages.resolve, "POST"),
        page("/deliveries", pages.deliveries),
        page("/deliveries/{action}", pages.deliveries),
        page("/events", pages.events),
        page("/events/{source}/{id:path}/replay", pages.replay, "POST"),
        page("/events/{source}/{id:path}", pages.event),
        page("/dlq", pages.dead_letters),
        page("/dlq/replay", pages.replay_dead_matching, "POST"),
        page("/dlq/{job}/replay", pages.replay_dead, "POST"),
        page("/dlq/{job}/delete", pages.delete_dead, "POST"),
        page("/silences", pages.silences),
        page("/silences", pages.add_silence, "POST"),
        page("/silences/{id}/expire", pages.expire_silence, "POST"),
    ]
    return Router(routes, redirect_slashes=False, default=pages.not_found)


def _segment(value: object) -> str:
    """A value as one path segment of a link (a ``/`` in an event id included)."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("receiver.admin", "templates"),
        autoescape=True,
    )
    env.filters["segment"] = _segment
    # JSON as text, which autoescaping then escapes (``tojson`` would show ``\u003c`` for ``<``)
    env.filters["json"] = lambda value, indent=None: json.dumps(
        value, indent=indent, ensure_ascii=False, sort_keys=True, default=str
    )
    env.filters["duration"] = reports.duration
    env.filters["readable"] = reports.readable
    env.filters["minutes"] = lambda m: reports.duration(int(m) * 60)
    env.filters["kindclass"] = lambda kind: re.sub(r"[^a-z]+", "-", str(kind or "other"))
    return env


def _guarded(pages: "_Pages", endpoint: Endpoint, open_: bool) -> Endpoint:
    """The endpoint behind the session (unless ``open_``), with the pages' headers, and the
    page every endpoint shows for input it cannot use or a Redis that does not answer."""

    async def answer(request: Request) -> Response:
        try:
            session = await pages.session(request)
            if not open_ and not session:
                response: Response = RedirectResponse("/ui/login", 303)
            else:
                request.state.session = session
                response = await endpoint(request)
        except BadRequest as exc:
            response = pages.render(request, "error.html", 400, message=str(exc))
        except RedisError as exc:
            log.error("admin page failed: Redis", extra={"reason": type(exc).__name__})
            message = "Redis is unavailable; try again in a moment."
            response = pages.render(request, "error.html", 503, message=message)
        response.headers.update(HEADERS)
        return response

    return answer


class _Pages:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.run = admin.run
        self.env = environment()
        self._style = self.env.loader.get_source(self.env, "style.css")[0]  # type: ignore[union-attr]

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = getattr(request.state, "session", "")
        context.setdefault("refresh", None)
        context.setdefault("notice", _notice(request))
        text = self.env.get_template(name).render(
            csrf=self.admin.keys.csrf(session) if session else "",
            signed_in=bool(session) and name != "login.html",
            **context,
        )
        return Response(text, status, media_type="text/html; charset=utf-8")

    async def session(self, request: Request) -> str:
        """The request's session id, when the session is alive; else ''. Raise ``RedisError``."""
        given = request.cookies.get(COOKIE) or ""
        if not re.fullmatch(SESSION_ID, given):
            return ""
        name = self.admin.keys.session_name(given)
        return given if await self.admin.redis(sessions.alive, name) else ""

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        page = self.render(request, "error.html", 404, message="There is no such page.")
        page.headers.update(HEADERS)
        await page(scope, receive, send)

    async def _form(self, request: Request) -> dict[str, list[str]]:
        """The POSTed form, after its CSRF token was checked; raise :class:`BadRequest`."""
        try:
            body = await self.admin.body(request)
        except (TooLarge, TimeoutError):
            raise BadRequest("the form could not be read") from None
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        given = (form.get("csrf") or [""])[0]
        session = request.state.session
        if not session or not self.admin.keys.csrf_ok(session, given):
            raise BadRequest("the form has expired: reload the page and try again")
        return form

    # sign in and out

    async def home(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("minutes", "notice"))
        minutes = queries.minutes(queries.one(params, "minutes"))
        found = await self.run(Store.overview, minutes)
        drawn = {
            name: charts.bars(found[name], title)
            for name, title in (
                ("received", "Events received"),
                ("delivered", "Deliveries made"),
                ("failed", "Delivery failures"),
            )
        }
        return self.render(
            request,
            "overview.html",
            o=found,
            charts=drawn,
            spans=queries.SPANS,
            refresh=REFRESH_SECONDS,
        )

    async def style(self, request: Request) -> Response:
        return Response(self._style, media_type="text/css")

    async def login_form(self, request: Request) -> Response:
        return self._login_page(request, 200)

    def _login_page(self, request: Request, status: int, failed: str = "") -> Response:
        """The login form, with a fresh nonce in its cookie and the CSRF token derived from it."""
        nonce = new_id()
        page = self.render(
            request,
            "login.html",
            status,
            failed=failed,
            login_csrf=self.admin.keys.login_csrf(nonce),
        )
        page.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, **COOKIE_FLAGS)
        return page

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = await self.admin.redis(sessions.refused_for, client)
        if wait:
            log.warning("admin login throttled", extra={"remote": client})
            failed = f"Too many failed sign-ins: try again in {wait} s."
            page = self._login_page(request, 429, failed)
            page.headers["retry-after"] = str(wait)
            return page
        try:
            body = await self.admin.body(request)
        except (TooLarge, TimeoutError):
            raise BadRequest("the form could not be read") from None
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if not self.admin.keys.login_csrf_ok(nonce, (form.get("csrf") or [""])[0]):
            return self._login_page(request, 400, "The form has expired: sign in again.")
        if not self.admin.keys.token_ok((form.get("token") or [""])[0]):
            await self.admin.redis(sessions.failed, client)
            log.warning("admin login refused", extra={"remote": client})
            return self._login_page(request, 401, "That is not the admin token.")
        session = new_id()
        name = self.admin.keys.session_name(session)
        await self.admin.redis(sessions.start, name, self.admin.clock(), SESSION_SECONDS)
        await self.admin.redis(sessions.succeeded, client)
        log.info("admin signed in", extra={"remote": client})
        response = RedirectResponse("/ui/", 303)
        response.set_cookie(COOKIE, session, max_age=SESSION_SECONDS, **COOKIE_FLAGS)
        response.delete_cookie(LOGIN_COOKIE, **COOKIE_FLAGS)
        return response

    async def logout(self, request: Request) -> Response:
        await self._form(request)
        name = self.admin.keys.session_name(request.state.session)
        await self.admin.redis(sessions.end, name)
        response = RedirectResponse("/ui/login?notice=signed-out", 303)
        response.delete_cookie(COOKIE, **COOKIE_FLAGS)
        return response

    async def end_sessions(self, request: Request) -> Response:
        await self._form(request)
        ended = await self.admin.redis(sessions.end_all, self.admin.clock())
        log.info("admin sessions ended", extra={"sessions": ended})
        response = RedirectResponse("/ui/login?notice=ended", 303)
        response.delete_cookie(COOKIE, **COOKIE_FLAGS)
        return response

    # incidents

    async def incidents(self, request: Request) -> Response:
        found = await self.run(Store.incidents)
        now = self.admin.clock()
        return self.render(request, "incidents.html", rows=found, now=now, refresh=REFRESH_SECONDS)

    async def acknowledge(self, request: Request) -> Response:
        form = await self._form(request)
        by = (form.get("by") or [""])[0].strip()[: queries.MAX_TEXT] or "console"
        incident_id = request.path_params["id"]
        done = bool(re.fullmatch(INCIDENT_ID, incident_id)) and await self.run(
            Store.acknowledge, incident_id, by
        )
        if done:
            log.info("incident acknowledged", extra={"incident": incident_id, "author": by})
        return RedirectResponse(
            f"/ui/incidents?notice={'acknowledged' if done else 'no-incident'}", 303
        )

    async def resolve(self, request: Request) -> Response:
        await self._form(request)
        incident_id = request.path_params["id"]
        done = bool(re.fullmatch(INCIDENT_ID, incident_id)) and await self.run(
            Store.resolve, incident_id
        )
        if done:
            log.info("incident resolved by hand", extra={"incident": incident_id})
        return RedirectResponse(
            f"/ui/incidents?notice={'resolved' if done else 'no-incident'}", 303
        )

    # deliveries

    async def deliveries(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("outcome",))
        outcome = queries.one(params, "outcome") or None
        queries.choice(outcome, "outcome", queries.OUTCOMES)
        actions = await self.run(Store.actions)
        action = request.path_params.get("action") or (actions[0] if actions else None)
        if action is not None and action not in actions:
            return self.render(request, "error.html", 404, message="No such action has deliveries.")
        found = await self.run(Store.attempts, action, outcome) if action else []
        return self.render(
            request,
            "deliveries.html",
            actions=actions,
            action=action,
            outcome=outcome,
            outcomes=queries.OUTCOMES,
            rows=found[: PAGE_SIZE * 4],
            total=len(found),
        )

    # events

    async def events(self, request: Request) -> Response:
        params = {k: v for k, v in _params(request).items() if v != [""]}
        form = {name: (params.get(name) or [""])[0] for name in (*queries.EVENT_FILTERS, "q")}
        paused = (params.pop("refresh", None) or [""])[0] == "off"
        page = queries.integer(
            queries.one(params, "page"), "page", default=1, low=1, high=queries.MAX_OFFSET
        )
        try:
            filters = _filters(params)
            text = queries.text(queries.one(params, "q"), "q")
        except BadRequest as exc:
            return self.render(
                request,
                "events.html",
                400,
                error=str(exc),
                form=form,
                **_choices(),
                rows=[],
                total=0,
                page=1,
                pages=1,
                links={},
                paused=paused,
            )
        offset = (page - 1) * PAGE_SIZE
        total, rows = await self.run(Store.events, filters, PAGE_SIZE, offset, text)
        kept = {name: value for name, value in form.items() if value}
        return self.render(
            request,
            "events.html",
            error=None,
            form=form,
            **_choices(),
            rows=[_row(r) for r in rows],
            total=total,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            links=_links(kept, page, total, paused),
            paused=paused,
            refresh=None if paused else REFRESH_SECONDS,
        )

    async def _stored(self, request: Request) -> str | None:
        source, event_id = request.path_params["source"], request.path_params["id"]
        if not re.fullmatch(SOURCE_NAME, source) or not 0 < len(event_id) <= 1000:
            return None
        refs = await self.run(Store.find, event_id, source)
        return refs[0] if refs else None

    async def event(self, request: Request) -> Response:
        ref = await self._stored(request)
        found = await self.run(Store.event, ref) if ref else None
        if found is None:
            return self.render(request, "error.html", 404, message="There is no such event.")
        return self.render(
            request,
            "event.html",
            detail=found,
            views=_views(found),
            etlworks=self.admin.execution_page(found["event"]),
            silence=urlencode({"matchers": "\n".join(_silence_matchers(found["event"]))}),
        )

    async def replay(self, request: Request) -> Response:
        form = await self._form(request)
        ref = await self._stored(request)
        if ref is None:
            return self.render(request, "error.html", 404, message="There is no such event.")
        force = (form.get("force") or [""])[0] == "true"
        try:
            await self.run(Store.replay, ref, force=force)
        except NoSuchEvent:
            return self.render(request, "error.html", 404, message="There is no such event.")
        except Busy:
            notice = "busy"
        else:
            source, event_id = keys.split_ref(ref)
            extra = {"source": source, "event_id": event_id, "force": force}
            log.info("event replayed", extra=extra)
            notice = "replayed"
        source, event_id = keys.split_ref(ref)
        page = f"/ui/events/{_segment(source)}/{_segment(event_id)}?notice={notice}"
        return RedirectResponse(page, 303)

    # dead letters

    async def dead_letters(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("action", "reason", "notice", "n"))
        action, reason = _dead_filters(params)
        total, rows = await self.run(Store.dead_letters, queries.MAX_LIMIT, 0)
        filtered = action is not None or reason is not None
        if filtered:
            rows = await self.run(Store.dead_matching, action, reason)
        return self.render(
            request,
            "dlq.html",
            rows=rows,
            total=total,
            filtered=filtered,
            matched=len(rows) if filtered else total,
            form={"action": action or "", "reason": reason or ""},
            refresh=None if filtered else REFRESH_SECONDS,
        )

    async def replay_dead_matching(self, request: Request) -> Response:
        """Replay what the filters select, if it is still as many as the page showed."""
        form = await self._form(request)
        action, reason = _dead_filters(form)
        kept = urlencode({k: v for k, v in (("action", action), ("reason", reason)) if v})
        expected = queries.one(form, "expected") or ""
        found = await self.run(Store.dead_matching, action, reason)
        if str(len(found)) != expected:
            return RedirectResponse(f"/ui/dlq?{kept}&notice=changed", 303)
        replayed, gone = await self.run(Store.replay_matching, action, reason)
        extra = {"action": action, "reason": reason, "replayed": replayed, "gone": gone}
        log.info("dead letters replayed", extra=extra)
        return RedirectResponse(f"/ui/dlq?notice=bulk&n={replayed}", 303)

    async def _dead(
        self, request: Request, call: Callable[[Store, str], None], done: str
    ) -> Response:
        await self._form(request)
        job_id = request.path_params["job"]
        try:
            queries.path_value(job_id, "job", queries.JOB_ID)
            await self.run(call, job_id)
        except (BadRequest, Missing):
            return RedirectResponse("/ui/dlq?notice=gone", 303)
        log.info(f"dead letter {done}", extra={"job_id": job_id})
        return RedirectResponse(f"/ui/dlq?notice={done}", 303)

    async def replay_dead(self, request: Request) -> Response:
        return await self._dead(request, Store.replay_dead, "requeued")

    async def delete_dead(self, request: Request) -> Response:
        return await self._dead(request, Store.delete_dead, "deleted")

    # silences

    async def silences(self, request: Request) -> Response:
        params = _params(request)
        queries.known(params, ("all", "matchers", "notice"))
        ended = queries.one(params, "all") == "true"
        found = await self.run(Store.silences, ended=ended)
        given = queries.one(params, "matchers")
        form, preview, error = {}, None, None
        if given is not None:
            form = {"matchers": given[: queries.MAX_MATCHER * queries.MAX_MATCHERS]}
            matchers = _lines(form["matchers"])
            try:
                preview = await self.run(Store.silence_preview, matchers, PREVIEW_HOURS)
            except ValueError as exc:
                error = str(exc)
        return self.render(
            request,
            "silences.html",
            silences=found,
            ended=ended,
            error=error,
            form=form,
            preview=preview,
            preview_hours=PREVIEW_HOURS,
        )

    async def add_silence(self, request: Request) -> Response:
        form = {k: v[0] for k, v in (await self._form(request)).items()}
        matchers = _lines(form.get("matchers", ""))
        body: dict[str, Any] = {
            "matchers": matchers,
            "duration": form.get("duration", "").strip(),
            "author": form.get("author", "").strip(),
            "comment": form.get("comment", ""),
        }
        try:
            fields = queries.new_silence(body)
            made = await self.run(Store.add_silence, **fields)
        except ValueError as exc:  # BadRequest, or a matcher create refused
            found = await self.run(Store.silences, ended=False)
            return self.render(
                request,
                "silences.html",
                400,
                silences=found,
                ended=False,
                error=str(exc),
                form=form,
            )
        log.info("silence added", extra={"silence_id": made["id"], "author": made["author"]})
        return RedirectResponse("/ui/silences?notice=silenced", 303)

    async def expire_silence(self, request: Request) -> Response:
        await self._form(request)
        silence_id = request.path_params["id"]
        if re.fullmatch(queries.SILENCE_ID, silence_id):
            ended = await self.run(Store.expire_silence, silence_id)
            if ended is not None:
                log.info("silence expired", extra={"silence_id": silence_id})
        return RedirectResponse("/ui/silences?notice=expired", 303)


PREVIEW_HOURS = 24
"""How far back the silence form counts the events a silence would have matched."""
SILENCED_LABELS = ("source", "flow_id", "flow_name")
"""The labels "silence this flow" fills the silence form with, those the event has."""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _silence_matchers(event: Mapping[str, Any]) -> list[str]:
    """Matchers for the event's flow, as a silence takes them."""
    labels = [(name, event.get(name)) for name in SILENCED_LABELS]
    if event.get("flow_id"):  # the flow's id names it; its name may change
        labels = [(n, v) for n, v in labels if n != "flow_name"]
    return [str(Matcher(name, "=", str(value), None)) for name, value in labels if value]


def _notice(request: Request) -> str | None:
    """The redirect's notice: a fixed text, with a count where it has one."""
    text = NOTICES.get(request.query_params.get("notice", ""))
    count = request.query_params.get("n", "")
    if text is None or "{n}" not in text:
        return text
    return text.format(n=int(count)) if count.isdigit() and len(count) < 10 else None


def _dead_filters(params: Mapping[str, list[str]]) -> tuple[str | None, str | None]:
    """The dead letters' ``action`` and ``reason`` filters ('' is none)."""
    action = queries.one(params, "action") or None
    reason = queries.one(params, "reason") or None
    return queries.text(action, "action", SOURCE_NAME), queries.text(reason, "reason")


def _params(request: Request) -> dict[str, list[str]]:
    query = request.query_params
    return {name: query.getlist(name) for name in query}


def _filters(params: Mapping[str, list[str]]) -> Filters:
    """The API's filters, read more leniently: an instant may also be a date-time without a
    zone (UTC), as a person types it."""
    given = {name: values for name, values in params.items() if name in queries.EVENT_FILTERS}
    for name in ("since", "until"):
        value = queries.one(given, name)
        if value is not None:
            given[name] = [str(_lenient_ms(value, name))]
    return queries.event_filters(given)


def _lenient_ms(text: str, name: str) -> int:
    try:
        return queries.instant_ms(text, name)
    except BadRequest:
        pass
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"{name}: must be a date-time such as 2026-05-09T12:00") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    try:
        ms = int(at.timestamp() * 1000)
    except (OverflowError, ValueError):
        raise BadRequest(f"{name}: must be a date-time such as 2026-05-09T12:00") from None
    if ms < 0:
        raise BadRequest(f"{name}: must not be before 1970")
    return ms


def _choices() -> dict[str, Any]:
    return {"kinds": queries.KINDS, "statuses": queries.STATUSES}


def _row(event: Mapping[str, Any]) -> dict[str, Any]:
    return {**event, "received": str(event.get("received_at") or "")[:19].replace("T", " ")}


def _links(kept: dict[str, str], page: int, total: int, paused: bool) -> dict[str, str]:
    base = {**kept, **({"refresh": "off"} if paused else {})}
    links = {
        "pause": "?" + urlencode({**kept, "refresh": "off"}),
        "resume": "?" + urlencode(kept),
    }
    if page > 1:
        links["newer"] = "?" + urlencode({**base, "page": page - 1})
    if page * PAGE_SIZE < total:
        links["older"] = "?" + urlencode({**base, "page": page + 1})
    return links


def _views(detail: Mapping[str, Any]) -> dict[str, Any]:
    """What the event page shows besides the detail itself: the event's labels in order, and
    each timeline entry's own fields."""
    event = detail["event"]
    shown = [name for name in _SHOWN if event.get(name) not in (None, "", [], {}, 0)]
    labels = [(name, event.get(name)) for name in shown]
    entries = [
        {
            "at": str(entry.get("at", "")),
            "stage": entry["stage"],
            "fields": {k: v for k, v in entry.items() if k not in ("at", "stage")},
        }
        for entry in detail["timeline"]
    ]
    return {"labels": labels, "entries": entries}


_SHOWN = tuple(name for name in Event.model_fields if name != "raw")
"""The event's fields, in the model's order; ``raw`` has a section of its own."""
