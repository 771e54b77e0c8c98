"""Loopback stand-ins for the services flowhooks delivers to, with the limits the real ones
have, served by a process of their own (:class:`Services`) so that the process measuring or
posting does not share their CPU. Every request is recorded with the time it arrived and what
it was answered; ``GET /records/{service}?since=N`` hands the records over from the N-th on.

- ``POST /hook/...``, any webhook endpoint: 200, or what :meth:`Services.answer_webhook` set
  (a 503, a 429 with ``Retry-After``) for as long as it is set. Records the event id and
  ``received_at`` of the notification's event and the ``Idempotency-Key``.
- ``POST /services/...``, a Slack incoming webhook: about one message a second with a burst of
  :data:`SLACK_BURST` tolerated (a leaky bucket); beyond that 429 ``rate_limited`` with
  ``Retry-After: 1``. 200 ``ok`` for a message with ``text`` or ``blocks``, else 400
  ``invalid_payload``. Records each message's text.
- ``POST /v2/enqueue``, PagerDuty's Events API v2: 202 ``{"status": "success", ...}`` for a valid
  event of the routing key it was started with, 400 otherwise; :data:`PAGERDUTY_PER_MINUTE`
  events a minute per routing key, beyond that 429. Tracks incidents per ``dedup_key``: a
  trigger opens one when none is open, a resolve closes the open one.
"""

import json
import multiprocessing
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support import free_port, wait_until

SLACK_RATE = 1.0
"""Messages a second a Slack incoming webhook takes in the long run."""
SLACK_BURST = 4
"""Messages in a row Slack takes before its rate applies."""
PAGERDUTY_PER_MINUTE = 120
"""Events a minute PagerDuty's Events API v2 takes per routing key."""
SLACK_PATH = "/services/T0STORM/B0STORM/slack-path-is-a-secret-Qe4"
PAGERDUTY_PATH = "/v2/enqueue"
WEBHOOK_PATH = "/hook/webhook-path-is-a-secret-Zu7"
SERVICES = ("webhook", "slack", "pagerduty")


@dataclass(frozen=True)
class Arrival:
    """A request at the webhook endpoint and what it was answered."""

    at: float
    status: int
    event_id: str | None
    received_at: float | None
    """When flowhooks received the event (its ``received_at``), as a Unix time."""
    idempotency_key: str | None


@dataclass(frozen=True)
class SlackPost:
    at: float
    status: int
    text: str


@dataclass(frozen=True)
class PagerDutyEvent:
    at: float
    status: int
    action: str
    dedup_key: str
    event_id: str | None
    """The flowhooks event a trigger is about (its ``custom_details.event_id``)."""
    opened: bool
    """This trigger opened an incident: none was open for its dedup key."""
    resolved: bool
    """This resolve closed the open incident of its dedup key."""


class LeakyBucket:
    """Slack's limit: ``burst`` messages at once, then ``rate`` a second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.level = 0.0
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.level = max(0.0, self.level - (now - self.updated) * self.rate)
        self.updated = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


class SlidingWindow:
    """PagerDuty's limit: at most ``limit`` events in any ``seconds``."""

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float]) -> None:
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self.taken: deque[float] = deque()

    def take(self) -> bool:
        now = self.clock()
        while self.taken and self.taken[0] <= now - self.seconds:
            self.taken.popleft()
        if len(self.taken) >= self.limit:
            return False
        self.taken.append(now)
        return True


@dataclass
class Far:
    """What the stand-ins know: their limits, incidents and records (one process, one loop)."""

    routing_key: str
    webhook_status: int = 200
    webhook_retry_after: str | None = None
    slack: LeakyBucket = field(
        default_factory=lambda: LeakyBucket(SLACK_RATE, SLACK_BURST, time.monotonic)
    )
    pagerduty: dict[str, SlidingWindow] = field(default_factory=dict)
    open_incidents: set[str] = field(default_factory=set)
    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in SERVICES}
    )

    def record(self, service: str, **fields: Any) -> None:
        self.records[service].append({"at": time.time(), **fields})


def app(far: Far) -> Starlette:
    async def webhook(request: Request) -> Response:
        body = await request.body()
        event = _object(_json(body).get("event"))
        status = far.webhook_status
        far.record(
            "webhook",
            status=status,
            event_id=event.get("id"),
            received_at=_instant(event.get("received_at")),
            idempotency_key=request.headers.get("idempotency-key"),
        )
        headers = {}
        if status != 200 and far.webhook_retry_after is not None:
            headers["retry-after"] = far.webhook_retry_after
        return Response(b"" if status == 200 else b"unavailable", status, headers=headers)

    async def slack(request: Request) -> Response:
        message = _json(await request.body())
        text = message.get("text")
        if not isinstance(text, str) and not message.get("blocks"):
            far.record("slack", status=400, text="")
            return Response(b"invalid_payload", 400)
        if not far.slack.take():
            far.record("slack", status=429, text="")
            return Response(b"rate_limited", 429, headers={"retry-after": "1"})
        blocks = json.dumps(message.get("blocks") or [])
        far.record("slack", status=200, text=text if isinstance(text, str) else blocks)
        return Response(b"ok", 200)

    async def pagerduty(request: Request) -> Response:
        event = _json(await request.body())
        action, key = event.get("event_action"), event.get("dedup_key")
        details = _object(_object(event.get("payload")).get("custom_details"))
        valid = (
            event.get("routing_key") == far.routing_key
            and action in ("trigger", "acknowledge", "resolve")
            and isinstance(key, str)
            and bool(key)
        )
        fields = {"action": str(action), "dedup_key": str(key), "event_id": details.get("event_id")}
        if not valid:
            far.record("pagerduty", status=400, opened=False, resolved=False, **fields)
            invalid = {"status": "invalid event", "message": "Event object is invalid"}
            return JSONResponse(invalid, 400)
        window = far.pagerduty.setdefault(
            far.routing_key, SlidingWindow(PAGERDUTY_PER_MINUTE, 60.0, time.monotonic)
        )
        if not window.take():
            far.record("pagerduty", status=429, opened=False, resolved=False, **fields)
            return JSONResponse({"status": "throttle event", "message": "Too many requests"}, 429)
        opened = action == "trigger" and key not in far.open_incidents
        resolved = action == "resolve" and key in far.open_incidents
        if opened:
            far.open_incidents.add(str(key))
        if resolved:
            far.open_incidents.discard(str(key))
        far.record("pagerduty", status=202, opened=opened, resolved=resolved, **fields)
        answer = {"status": "success", "message": "Event processed", "dedup_key": key}
        return JSONResponse(answer, 202)

    async def answer(request: Request) -> Response:
        wanted = _json(await request.body())
        far.webhook_status = int(wanted.get("status", 200))
        retry_after = wanted.get("retry_after")
        far.webhook_retry_after = None if retry_after is None else str(retry_after)
        return Response(b"", 204)

    async def records(request: Request) -> Response:
        service = request.path_params["service"]
        if service not in far.records:
            return Response(b"", 404)
        since = int(request.query_params.get("since", "0"))
        return JSONResponse(far.records[service][since:])

    return Starlette(
        routes=[
            Route("/hook/{path:path}", webhook, methods=["POST"]),
            Route("/services/{path:path}", slack, methods=["POST"]),
            Route(PAGERDUTY_PATH, pagerduty, methods=["POST"]),
            Route("/control/webhook", answer, methods=["POST"]),
            Route("/records/{service}", records, methods=["GET"]),
        ]
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return _object(value)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _instant(value: object) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None


KEEP_ALIVE = 75
"""Seconds an idle connection is kept open, as the services' load balancers do (uvicorn's
default, 5 s, would have a client reuse connections closed under it)."""


def serve(port: int, routing_key: str) -> None:
    """The stand-ins' process."""
    uvicorn.run(
        app(Far(routing_key)),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
    )


class Services:
    """The stand-ins' process, and what they recorded so far (:meth:`fetch` brings it up to
    date): :attr:`webhook`, :attr:`slack` and :attr:`pagerduty`, in arrival order."""

    def __init__(self, routing_key: str) -> None:
        self.port = free_port()
        self.process = multiprocessing.get_context("spawn").Process(
            target=serve, args=(self.port, routing_key), daemon=True
        )
        # a connection of its own for each call: polling, they are far apart
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        self.client = httpx.Client(base_url=self.url(""), timeout=10, limits=no_reuse)
        self.webhook: list[Arrival] = []
        self.slack: list[SlackPost] = []
        self.pagerduty: list[PagerDutyEvent] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer_webhook(self, status: int, retry_after: int | None = None) -> None:
        """Answer the webhook endpoint's requests with ``status`` (and ``Retry-After``) from
        now on; 200 again with ``status=200``."""
        self.client.post("/control/webhook", json={"status": status, "retry_after": retry_after})

    def fetch(self) -> None:
        self.webhook += [Arrival(**r) for r in self._since("webhook", len(self.webhook))]
        self.slack += [SlackPost(**r) for r in self._since("slack", len(self.slack))]
        self.pagerduty += [
            PagerDutyEvent(**r) for r in self._since("pagerduty", len(self.pagerduty))
        ]

    def _since(self, service: str, count: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/records/{service}", params={"since": count})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def __enter__(self) -> "Services":
        self.process.start()
        if not wait_until(self._answers, 20, interval=0.1):
            self.process.terminate()
            raise RuntimeError("the service stand-ins did not start")
        return self

    def _answers(self) -> bool:
        try:
            self.client.get("/records/webhook", params={"since": 0})
        except httpx.HTTPError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.process.terminate()
        self.process.join(10)
