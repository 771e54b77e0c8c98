"""Turn a verified Etlworks webhook into the canonical :class:`~config.events.Event`. Pure.

Etlworks sends two families of payloads, as JSON or form-encoded bodies, or (for GET
deliveries) only headers:

* ``Flow.Executed`` style: ``{"eventId", "eventType", "webhookId", "entityId", "entity": {...},
  "entityUrl": ".../v1/flows/{flowId}?auditId={auditId}", "timestamp": <ms>}``, the execution
  status inside ``entity``;
* ``FLOW_FAILED`` / ``FLOW_SUCCESS`` style: the event name says the outcome, the flow's fields at
  the top level.

Unknown shapes are kept whole in ``raw`` with ``kind`` ``other``: stored, never refused.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from pydantic_core import from_json

from config.events import Event, Kind, Status, instant

MAX_DEPTH = 64
MAX_ID = 200
ETL_HEADERS = ("event-id", "event", "id", "entity-id", "entity-url")
"""The ``X-Etl-Webhook-*`` headers Etlworks sends with every delivery, GET or POST."""


class UnsupportedMediaType(Exception):
    """The body is neither JSON nor form-encoded (415)."""


class Unparseable(Exception):
    """The body claims a media type it does not parse as (400)."""


def parse_body(content_type: str | None, body: bytes) -> Any:
    """Decode a verified body: JSON or ``application/x-www-form-urlencoded``; ``None`` if empty."""
    if not body:
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            # pydantic's parser takes what json.loads takes, as the same values, in a third of
            # the time; what it refuses (besides what json.loads refuses too: lone surrogates,
            # a BOM, nesting past its own limit) json.loads decides. Tests hold them to that.
            payload = from_json(body)
        except ValueError:
            payload = _loads(body)
        # Only a body with that many brackets can nest too deep, only one with a \u escape
        # can hold a lone surrogate: most bodies skip the walk. (Counted on the bytes: in
        # UTF-8 no other character's encoding holds an ASCII byte.)
        if body.count(b"[") + body.count(b"{") >= MAX_DEPTH or b"\\u" in body:
            _check(payload)
    elif media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            form = parse_qs(text, keep_blank_values=True, strict_parsing=True, errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise Unparseable("body is not valid form data") from None
        payload = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    else:
        raise UnsupportedMediaType(media or "no content type")
    return payload


def _loads(body: bytes) -> Any:
    """``json.loads`` of a body that must be UTF-8 JSON; raise :class:`Unparseable`."""
    try:
        return json.loads(body.decode("utf-8"))  # strict: JSON is UTF-8, no encoded surrogates
    except ValueError:  # UnicodeDecodeError included
        raise Unparseable("body is not valid JSON") from None
    except RecursionError:
        raise Unparseable(f"body nests deeper than {MAX_DEPTH} levels") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check(payload: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and text that is not Unicode: JSON's
    ``\\ud800`` escapes can carry lone surrogates, which no UTF-8 encoder (and so no later
    ``json.dumps`` of the event) accepts."""
    stack = [(payload, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise Unparseable(f"body nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((key, level) for key in item)
            stack.extend((value, level + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, level + 1) for value in item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise Unparseable("body is not valid Unicode text")


def normalize(
    source: str,
    payload: Any,
    *,
    etl_headers: Mapping[str, str],
    body: bytes,
    received_at: datetime,
    delivery_id: str | None = None,
) -> Event:
    """Build the canonical event. ``etl_headers`` maps the suffixes of :data:`ETL_HEADERS`
    (``event-id``, ``event``, …) to their values; ``delivery_id`` is a Standard Webhooks
    ``webhook-id`` when the source uses that scheme. Never raises on odd payloads."""
    values = fields(
        source,
        payload,
        etl_headers=etl_headers,
        body=body,
        received_at=received_at,
        delivery_id=delivery_id,
    )
    # Every value is built with its field's type, so validation would only cost time (this
    # runs once per request); tests check the output validates.
    return Event.model_construct(**values)


def fields(
    source: str,
    payload: Any,
    *,
    etl_headers: Mapping[str, str],
    body: bytes,
    received_at: datetime,
    delivery_id: str | None = None,
) -> dict[str, Any]:
    """What :func:`normalize` makes the event of: every field of :class:`Event`, in its order,
    each value of its field's type. The receiver stores these as they are
    (:func:`config.events.dump_json`), without building the model. Never raises."""
    top = payload if isinstance(payload, dict) else {}
    entity = _mapping(top.get("entity"))
    here = (entity, top)  # where execution details are looked for, most specific first
    # The headers' texts (a POST from Etlworks has none of these headers).
    heard = {k: t for k, v in etl_headers.items() if (t := _text(v))} if etl_headers else _NONE
    url = heard.get("entity-url") or _text(top.get("entityUrl"))
    name = (
        heard.get("event")
        or _first_text((top,), "eventType", "event", "eventName", "type")
        or "unknown"
    )
    status = _status(_first_text(here, "status", "executionStatus", "state"))
    kind = _kind(name, status)
    if status is None:
        status = _STATUS_OF_KIND.get(kind)
    started = instant(_first(here, "started", "startedAt", "startTime", "start"))
    finished = instant(_first(here, "finished", "finishedAt", "endTime", "ended", "end"))
    return {
        "id": _event_id(source, top, etl_headers, delivery_id, body),
        "source": source,
        "event": name,
        "kind": kind,
        "status": status,
        "flow_id": _first_text(here, "flowId", "flow_id") or _from_url(url, _FLOW_IN_URL),
        "flow_name": _first_text(here, "flowName", "flow_name")
        or (_first_text((entity,), "name") if name.startswith("Flow.") else None),
        "audit_id": _first_text(here, "auditId", "audit_id", "executionId")
        or _from_url(url, _AUDIT_IN_URL),
        "webhook_id": heard.get("id") or _first_text((top,), "webhookId"),
        "entity_id": heard.get("entity-id") or _first_text((top,), "entityId"),
        "entity_url": url,
        "tags": _tags(_first(here, "tags", "flowTags")),
        "params": _params(_first(here, "params", "parameters", "runParameters")),
        "error": _first_text(here, "error", "errorMessage", "exception", "exceptionMessage")
        if status in ("error", "warning", "canceled", None)
        else None,
        "started_at": started,
        "finished_at": finished,
        "duration_ms": _duration(_first(here, "durationMs", "duration"), started, finished),
        "sent_at": instant(top.get("timestamp")),
        "received_at": received_at,
        "triggered_by": None,
        "chain_depth": 0,
        "via": None,
        "raw": payload,
    }


_EVENT_KINDS: dict[str, Kind] = {
    "flow_failed": "flow.failed",
    "flow_error": "flow.failed",
    "flow_success": "flow.succeeded",
    "flow_succeeded": "flow.succeeded",
    "flow_completed": "flow.succeeded",
    "flow_warning": "flow.warning",
    "flow_canceled": "flow.canceled",
    "flow_cancelled": "flow.canceled",
    "flow_started": "flow.running",
    "flow_running": "flow.running",
    "flow_timeout": "flow.timeout",
}
_STATUS_KINDS: dict[Status, Kind] = {
    "success": "flow.succeeded",
    "warning": "flow.warning",
    "error": "flow.failed",
    "canceled": "flow.canceled",
    "running": "flow.running",
    "queued": "flow.running",
}
_STATUS_OF_KIND: dict[Kind, Status] = {
    "flow.succeeded": "success",
    "flow.warning": "warning",
    "flow.failed": "error",
    "flow.canceled": "canceled",
    "flow.running": "running",
}
_STATUS_WORDS: dict[str, Status] = {
    **{w: "success" for w in ("success", "succeeded", "successful", "ok", "completed", "done")},
    **{w: "error" for w in ("error", "failed", "failure", "fail", "exception")},
    **{w: "warning" for w in ("warning", "warnings", "success_with_warnings")},
    **{w: "canceled" for w in ("canceled", "cancelled", "stopped", "killed", "aborted")},
    **{w: "running" for w in ("running", "started", "in_progress", "executing")},
    **{w: "queued" for w in ("queued", "pending", "scheduled", "waiting")},
}


_RESOURCE_EVENT = re.compile(r"[a-z]+_(created|updated|deleted|changed|enabled|disabled)")


def _kind(name: str, status: Status | None) -> Kind:
    key = name.strip().lower().replace(".", "_").replace("-", "_")
    if key in _EVENT_KINDS:
        return _EVENT_KINDS[key]
    if key.startswith("flow_execut") or key in ("flow_finished", "flow_ended"):
        return _STATUS_KINDS.get(status, "other") if status else "other"
    if _RESOURCE_EVENT.fullmatch(key):
        return "resource.changed"
    return "other"


def _status(word: str | None) -> Status | None:
    if word is None:
        return None
    return _STATUS_WORDS.get(word.strip().lower().replace(" ", "_").replace("-", "_"))


def _event_id(
    source: str,
    top: Mapping[str, Any],
    etl_headers: Mapping[str, str],
    delivery_id: str | None,
    body: bytes,
) -> str:
    given = (
        _id(etl_headers.get("event-id"))
        or _id(top.get("eventId"))
        or _id(top.get("event_id"))
        or _id(delivery_id)
    )
    if given and len(given) <= MAX_ID and given.isprintable():
        return given
    # Each part is length-prefixed, and the headers that stand in for an empty body are marked
    # as such, so no two different (source, id, body) deliveries hash the same bytes.
    parts = [source.encode(), (given or "").encode()]
    if body:
        parts += [b"body", body]
    else:
        parts += [b"headers", json.dumps(sorted(etl_headers.items())).encode()]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


def _id(value: Any) -> str | None:
    """An id as sent: text or a whole number. A float is no id: ``1e400`` and ``1e401`` both
    read as ``inf``, and two events must not share an id by rounding."""
    if type(value) is int:
        return str(value)
    return _text(value) if type(value) is str else None


def _mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


def _first(maps: Iterable[Mapping[str, Any]], *names: str) -> Any:
    for mapping in maps:
        for name in names:
            value = mapping.get(name)
            # Not None, "", [] or {}: what `value not in (None, "", [], {})` says, without
            # building that tuple and comparing with each of its items.
            if value or (value is not None and not isinstance(value, _EMPTIABLE)):
                return value
    return None


_EMPTIABLE = (str, list, dict)
_NONE: Mapping[str, str] = {}


_SCALARS = (int, float, str)


def _text(value: Any) -> str | None:
    """A label's text: strings stripped, numbers as written, anything else ``None``."""
    if type(value) is str:
        text = value.strip()
    elif isinstance(value, _SCALARS) and not isinstance(value, bool):
        text = str(value).strip()
    else:
        return None
    # "" is ASCII: None. A replacement keeps the length, so non-empty text stays non-empty.
    return (text or None) if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _first_text(maps: Iterable[Mapping[str, Any]], *names: str) -> str | None:
    for mapping in maps:
        for name in names:
            value = mapping.get(name)
            if value is not None and (text := _text(value)) is not None:
                return text
    return None


_FLOW_IN_URL = re.compile(r"/flows/(\d+)")
_AUDIT_IN_URL = re.compile(r"[?&]auditId=([^&#]+)")


def _from_url(url: str | None, pattern: re.Pattern[str]) -> str | None:
    match = pattern.search(url) if url else None
    return match.group(1) if match else None


_DIGITS = re.compile(r"[0-9]+")
_NUMBERS = (int, float)


def _digits(value: Any) -> bool:
    """An ASCII number: ``str.isdigit`` also admits ``²``, which ``int()`` refuses."""
    return isinstance(value, str) and _DIGITS.fullmatch(value.strip()) is not None


def _duration(value: Any, started: datetime | None, finished: datetime | None) -> int | None:
    if isinstance(value, _NUMBERS) and not isinstance(value, bool) and 0 <= value < 10**12:
        return int(value)
    if _digits(value) and len(value.strip()) < 13:
        return int(value)
    if started and finished and finished >= started:
        return int((finished - started).total_seconds() * 1000)
    return None


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):
        return [tag for item in value.split(",") if (tag := _text(item))]
    if isinstance(value, list):
        return [tag for v in value if (tag := _text(v.get("name") if isinstance(v, dict) else v))]
    return []


def _params(value: Any) -> dict[str, str]:
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):  # JSON in a form field
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    if isinstance(value, list):
        pairs = [(p.get("name"), p.get("value")) for p in value if isinstance(p, dict)]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        return {}
    out: dict[str, str] = {}
    for key, val in pairs:
        name = _text(key)
        if name is not None:
            try:
                text = val if isinstance(val, str) else json.dumps(val)
            except (ValueError, TypeError, RecursionError):
                continue
            out[name] = text if text.isascii() else _SURROGATE.sub("\ufffd", text)
    return out
