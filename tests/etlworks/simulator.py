"""An Etlworks stand-in that runs fake flows and sends signed webhooks, always driven over HTTP.

It serves, under ``/rest`` as Etlworks does, the slice of the API flowhooks uses, with Bearer
auth (a wrong key is 401, an unknown flow, execution or schedule 404)::

    POST /v1/flows/{id}/run                  flat JSON {name: value} → {flowId, auditId, status}
    GET  /v1/flows  /v1/flows/{id}           the configured flows
    GET  /v1/executions/{id}[?auditId=A]     one execution, or the flow's runs newest first
    GET  /v1/executions?since=MS&limit=&offset=
                                             the execution history: runs that ended at or after
                                             MS, oldest first, a page at a time (at most
                                             ``page_limit``), the count in ``X-Total-Count``
    PUT  /v1/schedules/{id}/enable|disable   → {id, enabled}
    POST /v1/webhooks                        {name, description, url, method, secret, events,
                                             flowIncludes, flowExcludes, enabled}
    PUT  /v1/webhooks/{id}                   the same fields: the registration replaced
    DELETE /v1/webhooks/{id}                 gone
    GET  /v1/webhooks                        the registrations, without their secrets
    GET  /v1/audit?resourceType=flow&since=T the changes made since T (ISO 8601 or epoch ms),
                                             oldest first: {resourceType, resourceId,
                                             resourceName, user, action, timestamp}

A run gets an audit id, is ``queued`` for its flow's ``queued`` seconds, ``running`` for its
``duration``, then ends with the flow's next scripted outcome; every state change is timed by
the simulator's clock, ``speed`` times faster than the wall clock (a run that ends by its
duration lasts exactly that, in the records). A flow with a ``start`` also runs by itself, as a
scheduled flow does: that long after the simulator starts serving, then every ``every``. When a
run starts and when
it ends, every registered webhook whose filters match gets a ``FLOW_STARTED`` /
``FLOW_SUCCESS`` / ``FLOW_FAILED`` / ``FLOW_WARNING`` / ``FLOW_CANCELED`` POST (see
:meth:`Simulator.payload`), HMAC-SHA256 hex of the raw body in ``X-Etl-Webhook-Signature``.

Webhooks may be lost on purpose: with :attr:`Simulator.lose_webhooks` set, a run's webhooks
are not sent at all (they are counted in :attr:`Simulator.lost`), as when Etlworks stops
sending them; a disabled registration sends nothing either.

Tests configure it in-process (:meth:`Simulator.add_flow`, :meth:`Simulator.script`), read
what happened (:attr:`Simulator.calls`, :meth:`Simulator.count`, :meth:`Simulator.runs`,
:attr:`Simulator.deliveries`, :attr:`Simulator.schedules`) and drive it only over HTTP.
:func:`serve_simulator` serves one on a free loopback port in a thread; for a demo::

    python -m tests.etlworks.simulator --port 8900 --flows flows.yaml

A ``${VAR}`` the file names and the environment lacks is reported in one line (exit 2).
"""

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

log = logging.getLogger("tests.etlworks.simulator")

API_KEY = "sim-api-key-Rk4Tq9Wz2Lm"
"""The key a simulator accepts unless it is given another."""
OUTCOMES = ("success", "warning", "error", "canceled")
EVENTS = {
    "success": "FLOW_SUCCESS",
    "warning": "FLOW_WARNING",
    "error": "FLOW_FAILED",
    "canceled": "FLOW_CANCELED",
}
"""The webhook event each outcome sends."""
STARTED = "FLOW_STARTED"
"""The webhook event sent when a run starts running."""


@dataclass
class Flow:
    """A fake flow. ``outcomes`` are consumed one a run, the last one repeating; a ``duration``
    of ``None`` runs until :meth:`Simulator.finish` ends it. Times are simulated seconds."""

    id: int
    name: str
    duration: float | None = 0.0
    outcomes: list[str] = field(default_factory=lambda: ["success"])
    tags: list[str] = field(default_factory=list)
    queued: float = 0.0
    error: str = "Database connection lost: ORA-03113 end-of-file on channel"
    """The error text of a run ending in ``error`` or ``warning``."""
    start: float | None = None
    """When the flow first runs by itself, as a scheduled flow does: simulated seconds after
    the simulator starts serving; ``None``: only when the API runs it."""
    every: float | None = None
    """After its first run by itself, it runs again every this many simulated seconds."""

    def __post_init__(self) -> None:
        unknown = [o for o in self.outcomes if o not in OUTCOMES]
        if not self.outcomes or unknown:
            raise ValueError(f"flow {self.id}: outcomes must be some of {', '.join(OUTCOMES)}")
        if self.every is not None and (self.start is None or self.every <= 0):
            raise ValueError(f"flow {self.id}: every needs a start, and must be above 0")

    def next_outcome(self) -> str:
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "tags": list(self.tags)}


@dataclass
class Run:
    """One execution of a flow; ``outcome`` is what it will end with (or ended with)."""

    flow: Flow
    audit_id: int
    params: dict[str, str]
    outcome: str
    status: str = "queued"
    started: int | None = None
    finished: int | None = None
    error: str | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def duration_ms(self) -> int | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def record(self) -> dict[str, Any]:
        """The run as the executions API answers it."""
        return {
            "auditId": self.audit_id,
            "flowId": self.flow.id,
            "flowName": self.flow.name,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "durationMs": self.duration_ms,
            "error": self.error,
            "parameters": dict(self.params),
        }


@dataclass(frozen=True)
class Webhook:
    """A registration: ``includes`` / ``excludes`` hold flow ids or name patterns (``*``);
    no includes means every flow."""

    id: int
    url: str
    secret: str = field(repr=False)
    events: frozenset[str]
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    name: str = ""
    description: str = ""
    method: str = "POST"
    enabled: bool = True

    def wants(self, event: str, flow: Flow) -> bool:
        def named(patterns: tuple[str, ...]) -> bool:
            return any(p == str(flow.id) or fnmatchcase(flow.name, p) for p in patterns)

        included = not self.includes or named(self.includes)
        return self.enabled and event in self.events and included and not named(self.excludes)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "method": self.method,
            "enabled": self.enabled,
            "events": sorted(self.events),
            "flowIncludes": list(self.includes),
            "flowExcludes": list(self.excludes),
        }


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver a webhook: ``status`` is the receiver's answer, ``None`` when
    there was none (``failure`` says why)."""

    webhook_id: int
    url: str
    event: str
    event_id: str
    audit_id: int
    attempt: int
    status: int | None
    failure: str | None = None
    body: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Reply = int | tuple[int, Mapping[str, str]] | tuple[int, Mapping[str, str], Any]
"""A scripted HTTP answer: a status (with an Etlworks-style error body), a status with headers,
or a status with headers and a JSON body."""


@dataclass(frozen=True)
class Stall:
    """A scripted delay: the request waits ``seconds`` (wall clock), then gets ``then``, or is
    handled as usual."""

    seconds: float
    then: Reply | None = None


Answer = Reply | Stall | None
"""One request's scripted answer; ``None`` handles it as usual."""


@dataclass(frozen=True)
class Call:
    """A request the API received; ``path`` is relative to ``/rest``, ``route`` is its template
    with ``{id}`` (``POST /v1/flows/{id}/run``)."""

    method: str
    path: str
    route: str
    query: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


Handler = Callable[[Request], Awaitable[Response]]


class Simulator:
    """The state of one simulated Etlworks; :attr:`app` serves it. Methods may be called from
    any thread; runs and webhooks live in the serving thread's event loop."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        flows: Iterable[Flow] = (),
        schedules: Mapping[int, bool] | None = None,
        speed: float = 1.0,
        webhook_attempts: int = 3,
        webhook_retry_delay: float = 1.0,
        first_audit_id: int = 1001,
        page_limit: int = 100,
    ) -> None:
        self.api_key = api_key
        self.page_limit = page_limit
        """The most items a page of the execution history holds, whatever ``limit`` asks."""
        self.lose_webhooks = False
        """Set: no webhook is sent (each one that would have been is counted in :attr:`lost`)."""
        self.lost = 0
        self.speed = speed
        self.webhook_attempts = webhook_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.url = ""
        """The API's base URL (``http://127.0.0.1:PORT/rest``), once served."""
        self.flows: dict[int, Flow] = {f.id: f for f in flows}
        self.schedules: dict[int, bool] = dict(schedules or {})
        """Schedule id → enabled; only these exist."""
        self.webhooks: list[Webhook] = []
        self.changes: list[dict[str, Any]] = []
        """The audit log, oldest first (:meth:`change`)."""
        self.calls: list[Call] = []
        self.deliveries: list[Delivery] = []
        self._runs: dict[int, Run] = {}
        self._scripts: dict[str, deque[Answer]] = {}
        self._audit_ids = itertools.count(first_audit_id)
        self._webhook_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._epoch, self._start = time.time(), time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = Starlette(routes=self._routes(), lifespan=self._lifespan)

    # Configuring, from a test.

    def add_flow(self, flow_id: int, name: str, **fields: Any) -> Flow:
        """Add (or replace) a flow; ``fields`` are :class:`Flow`'s."""
        flow = Flow(flow_id, name, **fields)
        with self._lock:
            self.flows[flow_id] = flow
        return flow

    def script(self, key: str, answers: Iterable[Answer]) -> None:
        """Queue answers for the requests ``key`` names: ``"METHOD /v1/..."``, either one path
        (``POST /v1/flows/101/run``) or a route (``POST /v1/flows/{id}/run``), the former
        answered first. Scripted answers come before authentication."""
        with self._lock:
            self._scripts.setdefault(key, deque()).extend(answers)

    def add_webhook(self, spec: Mapping[str, Any], replacing: int | None = None) -> Webhook:
        """Register a webhook as ``POST /v1/webhooks`` does, or replace registration
        ``replacing`` as ``PUT /v1/webhooks/{id}`` does; ``ValueError`` for a bad one,
        ``KeyError`` for an unknown ``replacing``."""
        url, secret, events = spec.get("url"), spec.get("secret"), spec.get("events")
        includes, excludes = spec.get("flowIncludes") or [], spec.get("flowExcludes") or []
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be a non-empty string")
        if not _strings(events) or not events:
            raise ValueError("events must be a non-empty list of event names")
        if not _strings(includes, int) or not _strings(excludes, int):
            raise ValueError("flowIncludes and flowExcludes must be lists of ids or names")
        texts = {k: spec.get(k, "") for k in ("name", "description")}
        if not _strings(texts.values()) or not isinstance(spec.get("enabled", True), bool):
            raise ValueError("name and description must be strings, enabled true or false")
        with self._lock:
            if replacing is not None and replacing not in {h.id for h in self.webhooks}:
                raise KeyError(replacing)
            hook = Webhook(
                replacing if replacing is not None else next(self._webhook_ids),
                url,
                secret,
                frozenset(events),
                tuple(str(i) for i in includes),
                tuple(str(e) for e in excludes),
                name=str(texts["name"]),
                description=str(texts["description"]),
                method=str(spec.get("method") or "POST"),
                enabled=bool(spec.get("enabled", True)),
            )
            self.webhooks = [h for h in self.webhooks if h.id != replacing] + [hook]
        return hook

    def remove_webhook(self, webhook_id: int) -> bool:
        """Delete a registration as ``DELETE /v1/webhooks/{id}`` does; whether there was one."""
        with self._lock:
            kept = [h for h in self.webhooks if h.id != webhook_id]
            found = len(kept) < len(self.webhooks)
            self.webhooks = kept
        return found

    def change(self, flow_id: int, user: str, action: str, at_ms: int | None = None) -> None:
        """Record in the audit log that ``user`` changed flow ``flow_id`` (``action``: create,
        update, delete…) at ``at_ms`` (the simulated clock's now unless given)."""
        flow = self.flows.get(flow_id)
        record = {
            "resourceType": "flow",
            "resourceId": flow_id,
            "resourceName": flow.name if flow else None,
            "user": user,
            "action": action,
            "timestamp": self.now_ms() if at_ms is None else at_ms,
        }
        with self._lock:
            self.changes.append(record)

    def finish(self, audit_id: int, outcome: str | None = None) -> None:
        """End run ``audit_id`` now (a ``duration=None`` flow's runs wait for this), with
        ``outcome`` instead of the scripted one if given."""
        run = self._runs[audit_id]
        if outcome is not None:
            run.outcome = outcome
        assert self._loop is not None, "the simulator is not served"
        self._loop.call_soon_threadsafe(run.release.set)

    # Reading what happened.

    def count(self, key: str) -> int:
        """Requests received for ``key`` (a path or a route, as in :meth:`script`)."""
        with self._lock:
            calls = list(self.calls)
        return sum(1 for c in calls if key in (c.key, c.route))

    def runs(self, flow_id: int | None = None) -> list[Run]:
        """Runs started, oldest first, of one flow or of all."""
        with self._lock:
            runs = list(self._runs.values())
        return [r for r in runs if flow_id is None or r.flow.id == flow_id]

    def run(self, audit_id: int) -> Run:
        return self._runs[audit_id]

    def settled(self) -> bool:
        """Whether every run has ended and every webhook delivery is done."""
        return not self._tasks

    def now_ms(self) -> int:
        """The simulated clock, in Unix milliseconds: ``speed`` times the wall clock's pace."""
        return int((self._epoch + (time.monotonic() - self._start) * self.speed) * 1000)

    # The webhook payload.

    def payload(self, hook: Webhook, event: str, run: Run, event_id: str) -> dict[str, Any]:
        """A ``FLOW_*`` webhook body: the flow's fields at the top level, times in ms."""
        flow = run.flow
        return {
            "eventId": event_id,
            "eventType": event,
            "webhookId": hook.id,
            "entityId": run.audit_id,
            "entityUrl": f"{self.url}/v1/flows/{flow.id}?auditId={run.audit_id}",
            "timestamp": self.now_ms(),
            "flowId": flow.id,
            "flowName": flow.name,
            "auditId": run.audit_id,
            "status": run.status,
            "error": run.error,
            "started": run.started,
            "finished": run.finished,
            "durationMs": run.duration_ms,
            "tags": list(flow.tags),
            "parameters": dict(run.params),
        }

    # Serving.

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self._http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        scheduled = [
            asyncio.create_task(self._scheduled(flow))
            for flow in self.flows.values()
            if flow.start is not None
        ]
        try:
            yield
        finally:
            for task in [*scheduled, *self._tasks]:
                task.cancel()
            await asyncio.gather(*scheduled, *self._tasks, return_exceptions=True)
            await self._http.aclose()

    async def _scheduled(self, flow: Flow) -> None:
        """Run ``flow`` by itself at its ``start``, then every ``every`` (simulated seconds)."""
        assert flow.start is not None
        await asyncio.sleep(flow.start / self.speed)
        while True:
            run = self._start_run(flow, {})
            log.info("flow %s (%s) run %s queued by its schedule", flow.id, flow.name, run.audit_id)
            if flow.every is None:
                return
            await asyncio.sleep(flow.every / self.speed)

    def _routes(self) -> list[BaseRoute]:
        endpoints: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/flows/{id}/run", self._run_flow),
            ("GET", "/v1/flows", self._list_flows),
            ("GET", "/v1/flows/{id}", self._get_flow),
            ("GET", "/v1/executions", self._history),
            ("GET", "/v1/executions/{id}", self._executions),
            ("PUT", "/v1/schedules/{id}/enable", self._schedule(True)),
            ("PUT", "/v1/schedules/{id}/disable", self._schedule(False)),
            ("POST", "/v1/webhooks", self._register_webhook),
            ("GET", "/v1/webhooks", self._list_webhooks),
            ("PUT", "/v1/webhooks/{id}", self._update_webhook),
            ("DELETE", "/v1/webhooks/{id}", self._delete_webhook),
            ("GET", "/v1/audit", self._audit),
        ]
        routes: list[BaseRoute] = [
            Route(path, self._endpoint(method, path, handler), methods=[method])
            for method, path, handler in endpoints
        ]
        return [Mount("/rest", routes=routes)]

    def _endpoint(self, method: str, template: str, handler: Handler) -> Handler:
        route = f"{method} {template}"

        async def endpoint(request: Request) -> Response:
            path = request.url.path.removeprefix("/rest")
            call = Call(
                method,
                path,
                route,
                request.url.query,
                dict(request.headers),
                await request.body(),
            )
            with self._lock:
                self.calls.append(call)
            answer = self._next_answer(call)
            if isinstance(answer, Stall):
                await asyncio.sleep(answer.seconds)
                answer = answer.then
            if answer is not None:
                return _scripted(answer, path)
            if not self._authorized(request):
                return _error(401, "Etlworks rejected the credentials", path)
            return await handler(request)

        return endpoint

    def _next_answer(self, call: Call) -> Answer:
        with self._lock:
            for key in (call.key, call.route):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        good = hmac.compare_digest(token.encode(), self.api_key.encode())
        return scheme.lower() == "bearer" and good

    def _flow(self, request: Request) -> Flow | None:
        try:
            return self.flows.get(int(request.path_params["id"]))
        except ValueError:
            return None

    async def _run_flow(self, request: Request) -> Response:
        flow = self._flow(request)
        if flow is None:
            return _error(404, "no such flow", request.url.path)
        body = await request.body()
        try:
            params = json.loads(body) if body.strip() else {}
        except ValueError:
            params = None
        if not isinstance(params, dict) or not _strings(params.values()):
            return _error(400, "the body must be a JSON object of strings", request.url.path)
        run = self._start_run(flow, params)
        log.info("flow %s (%s) run %s queued", flow.id, flow.name, run.audit_id)
        return JSONResponse({"flowId": flow.id, "auditId": run.audit_id, "status": run.status})

    def _start_run(self, flow: Flow, params: dict[str, str]) -> Run:
        with self._lock:
            run = Run(flow, next(self._audit_ids), params, flow.next_outcome())
            self._runs[run.audit_id] = run
        self._spawn(self._execute(run))
        return run

    async def _list_flows(self, request: Request) -> Response:
        return JSONResponse([f.describe() for f in self.flows.values()])

    async def _get_flow(self, request: Request) -> Response:
        flow = self._flow(request)
        if flow is None:
            return _error(404, "no such flow", request.url.path)
        return JSONResponse(flow.describe())

    async def _executions(self, request: Request) -> Response:
        flow = self._flow(request)
        if flow is None:
            return _error(404, "no such flow", request.url.path)
        runs = self.runs(flow.id)
        audit_id = request.query_params.get("auditId")
        if audit_id is None:
            return JSONResponse([r.record() for r in reversed(runs)])
        found = [r for r in runs if str(r.audit_id) == audit_id]
        if not found:
            return _error(404, "no such execution", request.url.path)
        return JSONResponse(found[0].record())

    async def _history(self, request: Request) -> Response:
        query = request.query_params
        try:
            since = int(query.get("since", "0"))
            limit = min(int(query.get("limit", str(self.page_limit))), self.page_limit)
            offset = int(query.get("offset", "0"))
        except ValueError:
            return _error(400, "since, limit and offset must be integers", request.url.path)
        if limit < 1 or offset < 0:
            return _error(400, "limit must be above 0, offset not below", request.url.path)
        ended = sorted(
            (r for r in self.runs() if r.finished is not None and r.finished >= since),
            key=lambda r: (r.finished or 0, r.audit_id),
        )
        page = [r.record() for r in ended[offset : offset + limit]]
        return JSONResponse(page, headers={"X-Total-Count": str(len(ended))})

    def _schedule(self, enabled: bool) -> Handler:
        async def switch(request: Request) -> Response:
            try:
                schedule_id = int(request.path_params["id"])
            except ValueError:
                schedule_id = -1
            with self._lock:
                if schedule_id not in self.schedules:
                    return _error(404, "no such schedule", request.url.path)
                self.schedules[schedule_id] = enabled
            return JSONResponse({"id": schedule_id, "enabled": enabled})

        return switch

    async def _register_webhook(self, request: Request) -> Response:
        try:
            spec = json.loads(await request.body())
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            hook = self.add_webhook(spec)
        except ValueError as exc:
            return _error(400, str(exc), request.url.path)
        return JSONResponse(hook.describe())

    async def _list_webhooks(self, request: Request) -> Response:
        return JSONResponse([h.describe() for h in self.webhooks])

    async def _update_webhook(self, request: Request) -> Response:
        try:
            spec = json.loads(await request.body())
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            hook = self.add_webhook(spec, replacing=int(request.path_params["id"]))
        except KeyError:
            return _error(404, "no such webhook", request.url.path)
        except ValueError as exc:
            return _error(400, str(exc), request.url.path)
        return JSONResponse(hook.describe())

    async def _delete_webhook(self, request: Request) -> Response:
        try:
            found = self.remove_webhook(int(request.path_params["id"]))
        except ValueError:
            found = False
        if not found:
            return _error(404, "no such webhook", request.url.path)
        return Response(status_code=204)

    async def _audit(self, request: Request) -> Response:
        kind = request.query_params.get("resourceType")
        since = _instant_ms(request.query_params.get("since"))
        if since is None:
            return _error(400, "since must be an ISO 8601 time or epoch milliseconds", "/v1/audit")
        with self._lock:
            changes = list(self.changes)
        found = [
            c
            for c in changes
            if (kind is None or c["resourceType"] == kind) and c["timestamp"] >= since
        ]
        return JSONResponse(found)

    # Runs and webhooks, in the serving loop.

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait(self, seconds: float | None, run: Run) -> None:
        """``seconds`` of simulated time, or until :meth:`finish`; forever for ``None``."""
        if seconds is None:
            await run.release.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.release.wait(), seconds / self.speed)

    async def _execute(self, run: Run) -> None:
        await self._wait(run.flow.queued, run)
        run.status, run.started = "running", self.now_ms()
        self._notify(STARTED, run)
        if not run.release.is_set():
            await self._wait(run.flow.duration, run)
        run.finished = self.now_ms()
        if not run.release.is_set() and run.flow.duration is not None:
            # Exactly its duration, whatever the timer's slack: tests may compare it.
            run.finished = run.started + round(run.flow.duration * 1000)
        run.error = run.flow.error if run.outcome in ("error", "warning") else None
        run.status = run.outcome
        log.info("flow %s run %s ended: %s", run.flow.id, run.audit_id, run.status)
        self._notify(EVENTS[run.outcome], run)

    def _notify(self, event: str, run: Run) -> None:
        for hook in list(self.webhooks):
            if hook.wants(event, run.flow) and self.lose_webhooks:
                with self._lock:
                    self.lost += 1
            elif hook.wants(event, run.flow):
                event_id = str(uuid.uuid4())
                body = json.dumps(self.payload(hook, event, run, event_id)).encode()
                self._spawn(self._deliver(hook, event, run.audit_id, event_id, body))

    async def _deliver(
        self, hook: Webhook, event: str, audit_id: int, event_id: str, body: bytes
    ) -> None:
        assert self._http is not None
        signature = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Etl-Webhook-Signature": signature,
            "X-Etl-Webhook-Event-Id": event_id,
            "X-Etl-Webhook-Event": event,
            "X-Etl-Webhook-Id": str(hook.id),
            "X-Etl-Webhook-Entity-Id": str(audit_id),
            "X-Etl-Webhook-Entity-URL": json.loads(body)["entityUrl"],
        }
        for attempt in range(1, self.webhook_attempts + 1):
            status, failure = None, None
            try:
                response = await self._http.post(hook.url, content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            delivery = Delivery(
                hook.id, hook.url, event, event_id, audit_id, attempt, status, failure, body
            )
            with self._lock:
                self.deliveries.append(delivery)
            log.info("webhook %s %s to %s: %s", hook.id, event, hook.url, status or failure)
            if delivery.ok:
                return
            if attempt < self.webhook_attempts:
                await asyncio.sleep(self.webhook_retry_delay)


def _strings(values: object, *also: type) -> bool:
    """Whether ``values`` is a collection of strings (or of the ``also`` types)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return False
    return all(isinstance(v, (str, *also)) and not isinstance(v, bool) for v in values)


def _instant_ms(value: str | None) -> int | None:
    """``since`` as epoch milliseconds: digits as they are, else an ISO 8601 time."""
    if value is None:
        return 0
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _error(status: int, message: str, path: str) -> Response:
    """An error in the shape Etlworks answers with."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    body = {"status": status, "error": phrase, "message": message}
    return JSONResponse({**body, "path": path}, status_code=status)


def _scripted(answer: Reply, path: str) -> Response:
    if isinstance(answer, int):
        return _error(answer, "scripted", path)
    status, headers, *body = answer
    if not body:
        response = _error(status, "scripted", path)
        response.headers.update(headers)
        return response
    return JSONResponse(body[0], status_code=status, headers=dict(headers))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_simulator(*flows: Flow, port: int | None = None, **options: Any) -> Iterator[Simulator]:
    """A :class:`Simulator` with ``flows`` (and ``options``, its keyword arguments) served
    by uvicorn on a loopback port (free, unless given) in a thread, for the ``with`` block."""
    simulator = Simulator(flows=flows, **options)
    port = port or _free_port()
    config = uvicorn.Config(
        simulator.app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="etlworks-simulator")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Etlworks simulator did not start")
        time.sleep(0.01)
    simulator.url = f"http://127.0.0.1:{port}/rest"
    try:
        yield simulator
    finally:
        server.should_exit = True
        thread.join(10)


def load(path: Path, **options: Any) -> Simulator:
    """A simulator from a YAML file: ``flows`` (a list of :class:`Flow` fields), ``schedules``
    (id: enabled), ``webhooks`` (as ``POST /v1/webhooks`` takes them), ``api_key`` and
    ``speed``. Text ``${VAR}`` in a key or secret is read from the environment. Raise
    ``ValueError`` naming the file and what is wrong with it."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        simulator = Simulator(
            api_key=_expand(str(spec.get("api_key", API_KEY)), "api_key"),
            flows=[Flow(**f) for f in spec.get("flows", [])],
            schedules={int(k): bool(v) for k, v in (spec.get("schedules") or {}).items()},
            speed=float(spec.get("speed", 1.0)),
            **options,
        )
        for i, hook in enumerate(spec.get("webhooks", [])):
            secret = _expand(str(hook.get("secret")), f"webhooks[{i}].secret")
            simulator.add_webhook({**hook, "secret": secret})
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    except (yaml.YAMLError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return simulator


def _expand(text: str, where: str) -> str:
    unset = [name for name in re.findall(r"\$\{(\w+)\}", text) if not os.environ.get(name)]
    if unset:
        raise ValueError(f"{where}: environment variable {', '.join(unset)} is not set")
    return os.path.expandvars(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--flows", type=Path, help="a YAML file of flows, schedules, webhooks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # Audit ids that no earlier run of the simulator gave out, as Etlworks never reuses one:
    # flowhooks routes the outcome of a (flow, audit id) once, in a Redis that outlives this.
    first = int(time.time())
    try:
        simulator = (
            load(args.flows, first_audit_id=first)
            if args.flows
            else Simulator(first_audit_id=first)
        )
    except ValueError as exc:
        parser.exit(2, f"simulator: {exc}\n")
    simulator.url = f"http://{args.host}:{args.port}/rest"
    log.info("Etlworks simulator at %s, flows %s", simulator.url, sorted(simulator.flows))
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
