"""The admin API's OpenAPI document, served at ``/api/openapi.json``. Written out here rather than
derived, so that it says what the endpoints (:mod:`receiver.admin.api`) answer, including every
error; the bounds and patterns are the constants :mod:`receiver.admin.queries` checks with, and
the tests run schemathesis against the served API with it."""

from typing import Any

from config.events import LABELS
from config.schema import SOURCE_NAME
from receiver.admin import queries
from receiver.admin.reports import FLOW_KINDS

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref("Error")}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


def _ok(description: str, schema: dict[str, Any], **headers: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


TOTAL = _header("How many there are in all, past this page", {"type": "integer", "minimum": 0})
COMMON = {
    "400": _error("A parameter or the body cannot be used; `error` says which and why"),
    "401": _error(
        "No `Authorization: Bearer` with the admin token",
        **{"WWW-Authenticate": _header("`Bearer`", {"type": "string"})},
    ),
    "503": _error(
        "Redis does not answer",
        **{"Retry-After": _header("Seconds", {"type": "string", "pattern": "^[0-9]+$"})},
    ),
}
NOT_FOUND = _error("No such thing")


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _instant(name: str, end: str) -> dict[str, Any]:
    return _query(
        name,
        f"Events received {end} this instant (included): an RFC 3339 date-time or Unix "
        "milliseconds",
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": queries.INSTANT},
                {"type": "string", "pattern": queries.EPOCH_MS},
            ]
        },
    )


PAGE = [
    _query(
        "limit",
        "How many to answer",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": queries.MAX_LIMIT,
            "default": queries.DEFAULT_LIMIT,
        },
    ),
    _query(
        "offset",
        "How many to skip",
        {"type": "integer", "minimum": 0, "maximum": queries.MAX_OFFSET, "default": 0},
    ),
]
SOURCE = {"type": "string", "pattern": SOURCE_NAME, "minLength": 1, "maxLength": queries.MAX_TEXT}
KEY = {"type": "string", "minLength": 1, "maxLength": 1000}
FORCE = _query(
    "force",
    "Also redo the deliveries that succeeded before (their `delivered` marks are removed)",
    {"type": "boolean", "default": False},
)


def _replay(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": "Queue the event's route job again: the event is routed by the rules "
            "in force. Deliveries that succeeded before are not redone unless `force=true`; "
            "suppressions (silences, mute intervals, repeat intervals) apply as at the first "
            "routing.",
            "operationId": summary.replace(" ", "_").lower(),
            "parameters": [*parameters, FORCE],
            "responses": {
                "202": _ok("The route job is queued", _ref("Replayed")),
                "404": NOT_FOUND,
                "409": _error(
                    "The event's route job is queued or running already, or (with an id alone) "
                    "several sources have an event with this id"
                ),
                **COMMON,
            },
        }
    }


def _event(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": summary.replace(" ", "_").lower(),
            "parameters": parameters,
            "responses": {
                "200": _ok("The event, how it was verified, and what it caused", _ref("Detail")),
                "404": NOT_FOUND,
                "409": _error("Several sources have an event with this id: name the source"),
                **COMMON,
            },
        }
    }


EVENT_PATH = [
    _path("source", "The source the event came in on", SOURCE),
    _path("id", "The event id", KEY),
]
KEY_PATH = [_path("key", "An event id, if no other source has it, or a ref `source:id`", KEY)]
JOB = _path("job", "The dead job's id", {"type": "string", "pattern": queries.JOB_ID})

_STRING = {"type": "string"}
_TEXTS = {"type": "array", "items": _STRING}
ENTRY = {
    "type": "object",
    "description": "One timeline entry as written: `at`, `stage` and the stage's own fields",
    "required": ["stage"],
    "properties": {"at": _STRING, "stage": _STRING},
    "additionalProperties": True,
}
EVENT_FIELDS: dict[str, Any] = {
    "id": _STRING,
    "source": _STRING,
    "event": _STRING,
    "kind": {"type": "string", "enum": list(queries.KINDS)},
    "status": {"type": ["string", "null"], "enum": [*queries.STATUSES, None]},
    **{
        name: _nullable("string")
        for name in (
            *LABELS[LABELS.index("flow_id") :],
            "started_at",
            "finished_at",
            "sent_at",
            "triggered_by",
            "via",
        )
    },
    "chain_depth": {"type": "integer"},
    "tags": _TEXTS,
    "params": {"type": "object", "additionalProperties": _STRING},
    "duration_ms": _nullable("integer"),
    "received_at": _STRING,
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _STRING, "refs": _TEXTS},
    },
    "Event": {
        "type": "object",
        "description": "The canonical event, without the payload as received",
        "required": ["id", "source", "event", "kind", "received_at"],
        "properties": EVENT_FIELDS,
    },
    "StoredEvent": {
        "type": "object",
        "description": "The canonical event; `raw` is the verified payload as received",
        "required": ["id", "source", "event", "kind", "received_at"],
        "properties": {**EVENT_FIELDS, "raw": {}},
    },
    "Entry": ENTRY,
    "Delivery": {
        "type": "object",
        "description": "One (event, route, action) delivery: its last outcome and every "
        "timeline entry naming it (attempts with outcome, status, `duration_ms`)",
        "required": ["delivery_id", "route", "action", "kind", "outcome", "attempts"],
        "properties": {
            "delivery_id": _STRING,
            "route": {},
            "action": {},
            "kind": {},
            "outcome": {},
            "attempts": {"type": "array", "items": _ref("Entry")},
        },
    },
    "Detail": {
        "type": "object",
        "required": [
            "ref",
            "event",
            "verification",
            "routes",
            "deliveries",
            "stages",
            "timeline",
        ],
        "properties": {
            "ref": _STRING,
            "event": _ref("StoredEvent"),
            "verification": {
                "description": "The checks of the source that passed, and the sender's address",
                "type": ["object", "null"],
                "required": ["verified", "remote", "at"],
                "properties": {"verified": _TEXTS, "remote": {}, "at": {}},
            },
            "routes": {"description": "The routes the last routing matched", **_TEXTS},
            "deliveries": {"type": "array", "items": _ref("Delivery")},
            "stages": {
                "type": "object",
                "description": "The timeline by stage (`received`, `picked_up`, `routed`, "
                "`delivery`, `suppressed`, `replayed`, and any later kind)",
                "additionalProperties": {"type": "array", "items": _ref("Entry")},
            },
            "timeline": {"type": "array", "items": _ref("Entry")},
        },
    },
    "Replayed": {
        "type": "object",
        "required": ["ref", "job", "force", "forgotten"],
        "properties": {
            "ref": _STRING,
            "job": _STRING,
            "force": {"type": "boolean"},
            "forgotten": {"description": "Deliveries whose success was forgotten", **_TEXTS},
        },
    },
    "DeadLetter": {
        "type": "object",
        "required": ["job", "task", "failed_at", "reason"],
        "properties": {
            "job": _STRING,
            "task": _nullable("string"),
            "ref": {},
            "route": {},
            "action": {},
            "kind": {},
            "attempt": {},
            "failed_at": _nullable("string"),
            "reason": _STRING,
        },
    },
    "DeadLetterDone": {
        "type": "object",
        "required": ["job"],
        "properties": {
            "job": _STRING,
            "requeued": {"type": "boolean"},
            "deleted": {"type": "boolean"},
        },
    },
    "Silence": {
        "type": "object",
        "required": ["id", "matchers", "startsAt", "endsAt", "author", "comment", "state"],
        "properties": {
            "id": _STRING,
            "matchers": _TEXTS,
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {"type": "string", "format": "date-time"},
            "author": _STRING,
            "comment": _STRING,
            "state": {"type": "string", "enum": ["active", "pending", "expired"]},
        },
    },
    "NewSilence": {
        "type": "object",
        "description": 'Matchers as in routes (`label="value"`, `!=`, `=~`, `!~`), all of '
        "which an event must match; a duration or an end",
        "required": ["matchers", "comment", "author"],
        "additionalProperties": False,
        "oneOf": [{"required": ["duration"]}, {"required": ["endsAt"]}],
        "properties": {
            "matchers": {
                "type": "array",
                "minItems": 1,
                "maxItems": queries.MAX_MATCHERS,
                "items": {"type": "string", "minLength": 1, "maxLength": queries.MAX_MATCHER},
            },
            "duration": {
                "description": "From now: `30m`, `2h`, `1h30m`, `7d`, or seconds",
                "oneOf": [
                    {"type": "string", "pattern": queries.DURATION},
                    {"type": "number", "exclusiveMinimum": 0},
                ],
            },
            "endsAt": {"type": "string", "format": "date-time", "pattern": queries.INSTANT},
            "comment": {"type": "string", "maxLength": queries.MAX_COMMENT},
            "author": {"type": "string", "minLength": 1, "maxLength": queries.MAX_TEXT},
        },
    },
    "Summary": {
        "type": "object",
        "description": "Over the events received in the window: runs that ended "
        f"({', '.join(FLOW_KINDS)}), `succeeded` (flow.succeeded), `failed` (flow.failed, "
        "flow.timeout), the average and 95th percentile (nearest rank) of their "
        "`duration_ms` where the event has one, and every delivery attempt by outcome",
        "required": [
            "windowHours",
            "since",
            "until",
            "total",
            "succeeded",
            "failed",
            "byKind",
            "avgDurationMs",
            "p95DurationMs",
            "deliveries",
        ],
        "properties": {
            "windowHours": {"type": "number"},
            "since": _STRING,
            "until": _STRING,
            "total": {"type": "integer", "minimum": 0},
            "succeeded": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
            "byKind": {"type": "object", "additionalProperties": {"type": "integer"}},
            "avgDurationMs": _nullable("integer"),
            "p95DurationMs": _nullable("integer"),
            "deliveries": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flowhooks admin API",
            "version": "1",
            "description": "Stored events, their timelines and replays, the dead letters, "
            "silences and a summary. Every request needs `Authorization: Bearer` with "
            "FLOWHOOKS_ADMIN_TOKEN; the API is not served without one.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _ok("The document", {"type": "object"}), **COMMON},
                }
            },
            "/api/events": {
                "get": {
                    "summary": "Stored events, newest first",
                    "operationId": "list_events",
                    "parameters": [
                        _query("source", "Of this source", SOURCE),
                        _query(
                            "kind", "Of this kind", {"type": "string", "enum": list(queries.KINDS)}
                        ),
                        _query(
                            "flow_id",
                            "Of this flow",
                            {"type": "string", "minLength": 1, "maxLength": queries.MAX_TEXT},
                        ),
                        _query(
                            "status",
                            "With this execution status",
                            {"type": "string", "enum": list(queries.STATUSES)},
                        ),
                        _instant("since", "at or after"),
                        _instant("until", "at or before"),
                        _query(
                            "q",
                            "Whose id, flow name, flow id or error contains this (case aside)",
                            {"type": "string", "minLength": 1, "maxLength": queries.MAX_TEXT},
                        ),
                        *PAGE,
                    ],
                    "responses": {
                        "200": _ok(
                            "One page of events",
                            {"type": "array", "items": _ref("Event")},
                            **{"X-Total-Count": TOTAL},
                        ),
                        **COMMON,
                    },
                }
            },
            "/api/events/{key}": _event("Event by id", KEY_PATH),
            "/api/events/{key}/replay": _replay("Replay event by id", KEY_PATH),
            "/api/events/{source}/{id}": _event("Event", EVENT_PATH),
            "/api/events/{source}/{id}/replay": _replay("Replay event", EVENT_PATH),
            "/api/dlq": {
                "get": {
                    "summary": "Dead letters, newest first",
                    "description": "Deliveries and route jobs that failed for good",
                    "operationId": "list_dead_letters",
                    "parameters": PAGE,
                    "responses": {
                        "200": _ok(
                            "One page of dead letters",
                            {"type": "array", "items": _ref("DeadLetter")},
                            **{"X-Total-Count": TOTAL},
                        ),
                        **COMMON,
                    },
                }
            },
            "/api/dlq/{job}/replay": {
                "post": {
                    "summary": "Queue a dead job again",
                    "description": "Deliveries that succeeded since are not redone",
                    "operationId": "replay_dead_letter",
                    "parameters": [JOB],
                    "responses": {
                        "200": _ok("Queued", _ref("DeadLetterDone")),
                        "404": NOT_FOUND,
                        **COMMON,
                    },
                }
            },
            "/api/dlq/{job}": {
                "delete": {
                    "summary": "Delete a dead job",
                    "operationId": "delete_dead_letter",
                    "parameters": [JOB],
                    "responses": {
                        "200": _ok("Deleted", _ref("DeadLetterDone")),
                        "404": NOT_FOUND,
                        **COMMON,
                    },
                }
            },
            "/api/silences": {
                "get": {
                    "summary": "Silences not yet ended",
                    "operationId": "list_silences",
                    "parameters": [
                        _query(
                            "all",
                            "Also those that ended (kept a week)",
                            {"type": "boolean", "default": False},
                        ),
                    ],
                    "responses": {
                        "200": _ok("Silences", {"type": "array", "items": _ref("Silence")}),
                        **COMMON,
                    },
                },
                "post": {
                    "summary": "Add a silence",
                    "operationId": "add_silence",
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": _ref("NewSilence")}},
                    },
                    "responses": {
                        "201": _ok("The silence", _ref("Silence")),
                        "408": _error("The body was not received in time"),
                        "413": _error("The body is larger than 64 KiB"),
                        "415": _error("The body is not application/json"),
                        **COMMON,
                    },
                },
            },
            "/api/silences/{id}": {
                "delete": {
                    "summary": "Expire a silence",
                    "description": "It ends now, and stays listed with `all=true`",
                    "operationId": "expire_silence",
                    "parameters": [
                        _path("id", "The silence's id", {"type": "string", "minLength": 1}),
                    ],
                    "responses": {
                        "200": _ok("The silence, ended", _ref("Silence")),
                        "404": NOT_FOUND,
                        **COMMON,
                    },
                }
            },
            "/api/metrics/summary": {
                "get": {
                    "summary": "Runs, durations and deliveries over a window",
                    "operationId": "summary",
                    "parameters": [
                        _query(
                            "windowHours",
                            "The window, ending now",
                            {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "maximum": queries.MAX_WINDOW_HOURS,
                                "default": 24,
                            },
                        ),
                    ],
                    "responses": {"200": _ok("The numbers", _ref("Summary")), **COMMON},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
    }
