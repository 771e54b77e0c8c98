"""The Etlworks API calls flowhooks makes: run a flow, read its executions, switch a schedule.

One :class:`EtlworksClient` is one Etlworks instance: a base URL (``https://app.etlworks.com/rest``)
and an API key, sent as ``Authorization: Bearer <key>``. The caller owns the
``httpx.AsyncClient`` the calls go through, as with the sinks.

Error contract (the sinks' one, see :mod:`workers.sinks`)::

    DeliveryError("etlworks", ...)   the one exception a call raises
      .retryable True    connection errors, timeouts (``timeout`` per attempt in all),
                         408, 425, 429, 5xx; ``.retry_after`` from ``Retry-After`` (seconds or
                         an HTTP date), as the shared classifier reads it
      .retryable False   401 "Etlworks rejected the API key", 403, 404 "no such flow N" (or
                         execution, or schedule), other 4xx, redirects (never followed), a 2xx
                         whose body is not what the call expects
      .status            the HTTP status, when there was an answer

A retried :meth:`~EtlworksClient.run_flow` may start the flow twice: a timeout or a 5xx says
nothing about whether Etlworks started it. A caller that must run a flow once passes a key of
its own as a run parameter and looks for it in :meth:`~EtlworksClient.executions` first.

The key is never in a URL, an exception, a repr or a log record: errors name the call and the
status, never a response body, and httpx's request logs are cut to the origin
(:func:`~workers.sinks.redact_http_logs`).
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from config.events import instant
from workers.sinks import DEADLINE, DeliveryError, check_response, encode_json, exchange

__all__ = ["MAX_RESPONSE", "SINK", "TERMINAL", "EtlworksClient", "Execution", "RunStarted"]

SINK = "etlworks"
"""The ``sink`` of every :class:`DeliveryError` raised here."""
TERMINAL = frozenset({"success", "warning", "error", "canceled"})
"""Execution statuses after which nothing changes; ``queued`` and ``running`` come before."""
MAX_RESPONSE = 4 * 1024 * 1024
"""Bytes of an answer read at most (a list of executions with their parameters can be long);
a longer one is a permanent error rather than a truncated list."""

_DETAILS = {401: "Etlworks rejected the API key", 403: "the API key may not do this"}
"""What a status means, said in the error next to it."""
_PAGES = ("executions", "content", "items", "data", "records")
"""Where a paged answer may hold its list."""
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+")
"""What an API key may hold to be sent in a header: visible ASCII."""


@dataclass(frozen=True)
class RunStarted:
    """Etlworks' answer to :meth:`EtlworksClient.run_flow`: the execution's audit id."""

    flow_id: str
    audit_id: str
    status: str | None
    """As Etlworks sent it (a word, or its numeric code as text), if it sent one."""


@dataclass(frozen=True)
class Execution:
    """One execution (audit record) of a flow. ``status`` is lower-case, one of ``queued``,
    ``running``, ``success``, ``warning``, ``error``, ``canceled`` (another word Etlworks may
    add is kept as sent). Fields the record does not carry are ``None`` or empty."""

    flow_id: str
    audit_id: str
    status: str
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The record as Etlworks sent it, unknown fields included."""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class EtlworksClient:
    """Calls to one Etlworks instance through ``client``; each attempt takes at most
    ``timeout`` seconds in all. Every method raises :class:`DeliveryError` (see the module)."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        client: httpx.AsyncClient,
        timeout: float = DEADLINE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._client = client

    def __repr__(self) -> str:
        return f"EtlworksClient({self.base_url!r}, timeout={self.timeout!r})"

    async def run_flow(self, flow_id: int | str, params: Mapping[str, str]) -> RunStarted:
        """Start flow ``flow_id`` with ``params`` (sent as a flat JSON object of strings)."""
        path = f"/v1/flows/{_segment(flow_id)}/run"
        answer = await self.request("POST", path, dict(params), not_found=f"no such flow {flow_id}")
        if not isinstance(answer, dict) or _text(answer.get("auditId")) is None:
            raise _unexpected("run answered without an auditId")
        status = answer.get("status")
        return RunStarted(
            flow_id=_text(answer.get("flowId")) or str(flow_id),
            audit_id=str(_text(answer["auditId"])),
            status=None if status is None else str(status),
        )

    async def execution(self, flow_id: int | str, audit_id: int | str) -> Execution:
        """The execution ``audit_id`` of flow ``flow_id``."""
        answer = await self.request(
            "GET",
            f"/v1/executions/{_segment(flow_id)}",
            params={"auditId": str(audit_id)},
            not_found=f"no such execution {audit_id} of flow {flow_id}",
        )
        if isinstance(answer, list) and len(answer) == 1:  # a list of the one asked for
            answer = answer[0]
        if not isinstance(answer, dict):
            raise _unexpected("execution is not a JSON object")
        return _execution(answer, str(flow_id), str(audit_id))

    async def executions(self, flow_id: int | str) -> list[Execution]:
        """The flow's recent executions, as Etlworks lists them (newest first), each with its
        run parameters when Etlworks records them."""
        path = f"/v1/executions/{_segment(flow_id)}"
        answer = await self.request("GET", path, not_found=f"no such flow {flow_id}")
        if isinstance(answer, dict):  # a page of them, or the latest one alone
            page = next((answer[k] for k in _PAGES if isinstance(answer.get(k), list)), None)
            answer = page if page is not None else [answer]
        if not isinstance(answer, list) or not all(isinstance(r, dict) for r in answer):
            raise _unexpected("executions are not a list of JSON objects")
        return [_execution(record, str(flow_id), None) for record in answer]

    async def history(
        self, since_ms: int, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[Execution], int | None]:
        """One page of the execution history of every flow: runs that ended at or after
        ``since_ms`` (Unix milliseconds), oldest first, and the number of them all from
        ``X-Total-Count`` when Etlworks sends it."""
        params = {"since": str(since_ms), "limit": str(limit), "offset": str(offset)}
        response = await self._send("GET", "/v1/executions", params=params)
        records = _objects(_decode(response), "executions")
        total = response.headers.get("x-total-count", "").strip()
        return [_execution(r, "", None) for r in records], int(total) if total.isdigit() else None

    async def flows(self) -> list[Mapping[str, Any]]:
        """Every flow as Etlworks lists it (``id``, ``name``, ``tags``, ...)."""
        return _objects(await self.request("GET", "/v1/flows"), "flows")

    async def webhooks(self) -> list[Mapping[str, Any]]:
        """Every webhook registration (without its secret, which Etlworks does not show)."""
        return _objects(await self.request("GET", "/v1/webhooks"), "webhooks")

    async def save_webhook(
        self, spec: Mapping[str, Any], webhook_id: int | str | None = None
    ) -> Mapping[str, Any]:
        """Create a webhook (``POST /v1/webhooks``), or replace registration ``webhook_id`` in
        place (``PUT /v1/webhooks/{id}``); the registration as Etlworks answers it."""
        if webhook_id is None:
            answer = await self.request("POST", "/v1/webhooks", dict(spec))
        else:
            path = f"/v1/webhooks/{_segment(webhook_id)}"
            answer = await self.request(
                "PUT", path, dict(spec), not_found=f"no such webhook {webhook_id}"
            )
        return answer if isinstance(answer, dict) else {}

    async def set_schedule(self, schedule_id: int | str, enabled: bool) -> None:
        """Enable or disable schedule ``schedule_id``."""
        verb = "enable" if enabled else "disable"
        path = f"/v1/schedules/{_segment(schedule_id)}/{verb}"
        await self.request("PUT", path, not_found=f"no such schedule {schedule_id}")

    async def request(
        self,
        method: str,
        path: str,
        json_body: object = None,
        *,
        params: Mapping[str, str] | None = None,
        not_found: str | None = None,
    ) -> Any:
        """Any other call: ``path`` is relative to the base URL (``/v1/...``), ``json_body``
        is sent as JSON unless ``None``. Returns the decoded JSON answer, ``None`` for an empty
        one. ``not_found`` says what a 404 means, in the error."""
        response = await self._send(method, path, json_body, params=params, not_found=not_found)
        return _decode(response)

    async def _send(
        self,
        method: str,
        path: str,
        json_body: object = None,
        *,
        params: Mapping[str, str] | None = None,
        not_found: str | None = None,
    ) -> httpx.Response:
        """:meth:`request`'s call, its answer checked but not decoded."""
        key = self._api_key.get_secret_value()
        if not _FIELD_VALUE.fullmatch(key):
            raise DeliveryError(SINK, "the API key cannot be sent in a header", retryable=False)
        headers = {"authorization": f"Bearer {key}", "accept": "application/json"}
        content = None
        if json_body is not None:
            content = encode_json(SINK, json_body)
            headers["content-type"] = "application/json"
        url = self.base_url + "/" + path.lstrip("/")
        # one more byte than kept, to tell an answer that is too long
        response = await exchange(
            SINK,
            self._client,
            method,
            url,
            content=content,
            headers=headers,
            params=params,
            deadline=self.timeout,
            max_body=MAX_RESPONSE + 1,
        )
        if len(response.content) > MAX_RESPONSE:
            reason = f"answer longer than {MAX_RESPONSE} bytes"
            raise DeliveryError(SINK, reason, retryable=False, status=response.status_code)
        status = response.status_code
        check_response(SINK, response, detail=not_found if status == 404 else _DETAILS.get(status))
        return response


def _objects(answer: Any, what: str) -> list[Mapping[str, Any]]:
    """A list of JSON objects, as a list or a page of one."""
    if isinstance(answer, dict):
        answer = next((answer[k] for k in _PAGES if isinstance(answer.get(k), list)), None)
    if not isinstance(answer, list) or not all(isinstance(r, dict) for r in answer):
        raise _unexpected(f"{what} are not a list of JSON objects")
    return answer


def _decode(response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        failure = _unexpected("answer is not JSON", response.status_code)
    raise failure


def _unexpected(what: str, status: int | None = None) -> DeliveryError:
    return DeliveryError(SINK, f"unexpected answer: {what}", retryable=False, status=status)


def _segment(value: int | str) -> str:
    """An id as one path segment, so that no value can reach another endpoint."""
    text = str(value).strip()
    if not text:
        raise DeliveryError(SINK, "an empty id", retryable=False)
    return quote(text, safe="")


def _execution(record: Mapping[str, Any], flow_id: str, audit_id: str | None) -> Execution:
    audit = _text(record.get("auditId")) or audit_id
    status = _first_text(record, "status", "executionStatus")
    if audit is None or status is None:
        raise _unexpected("an execution without auditId or status")
    started = instant(_first(record, "started", "startedAt", "startTime"))
    finished = instant(_first(record, "finished", "finishedAt", "endTime", "ended"))
    return Execution(
        flow_id=_text(record.get("flowId")) or flow_id,
        audit_id=audit,
        status=_STATUS_SPELLINGS.get(status.lower(), status.lower()),
        error=_first_text(record, "error", "errorMessage", "exception", "exceptionMessage"),
        started_at=started,
        finished_at=finished,
        duration_ms=_duration(_first(record, "durationMs", "duration"), started, finished),
        params=_params(_first(record, "parameters", "params", "runParameters")),
        raw=record,
    )


_STATUS_SPELLINGS = {"cancelled": "canceled", "succeeded": "success", "failed": "error"}


def _first(record: Mapping[str, Any], *names: str) -> Any:
    return next((record[n] for n in names if record.get(n) not in (None, "")), None)


def _first_text(record: Mapping[str, Any], *names: str) -> str | None:
    return next((t for n in names if (t := _text(record.get(n))) is not None), None)


def _text(value: Any) -> str | None:
    """Text or a number as text; anything else (or only whitespace) ``None``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip() or None


def _duration(value: Any, started: datetime | None, finished: datetime | None) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if started is not None and finished is not None and finished >= started:
        return int((finished - started).total_seconds() * 1000)
    return None


def _params(value: Any) -> dict[str, str]:
    """Run parameters, as ``{name: value}`` or ``[{name, value}]``; values as text."""
    if isinstance(value, list):
        value = {p.get("name"): p.get("value") for p in value if isinstance(p, dict)}
    if not isinstance(value, dict):
        return {}
    return {
        str(k): v if isinstance(v, str) else json.dumps(v)
        for k, v in value.items()
        if k is not None
    }
