"""The console's part of the admin API's OpenAPI document (:mod:`receiver.admin.openapi`): the
overview, incidents, deliveries per action, dead letters replayed in bulk, the silence preview
and the end of every session."""

from typing import Any

from receiver.admin import openapi, queries
from receiver.admin.openapi import (
    COMMON,
    NOT_FOUND,
    PAGE,
    SOURCE,
    TOTAL,
    _nullable,
    _ok,
    _path,
    _query,
    _ref,
)

_INT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
_COUNTS = {"type": "array", "items": _INT}
INCIDENT_ID = _path("id", "The incident's id, as listed", {"type": "string", "minLength": 1})
TEXT = {"type": "string", "minLength": 1, "maxLength": queries.MAX_TEXT}


def _object(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **optional},
    }


SCHEMAS: dict[str, Any] = {
    "Overview": _object(
        {
            "minutes": {"type": "integer"},
            "since": _STRING,
            "until": _STRING,
            "received": _COUNTS,
            "delivered": _COUNTS,
            "failed": _COUNTS,
            "failuresByFlow": {
                "type": "array",
                "items": _object(
                    {"source": _STRING, "flow_id": _STRING, "flow_name": _STRING, "failures": _INT}
                ),
            },
            "queue": _object(
                {
                    "depth": _INT,
                    "oldestAgeSeconds": _nullable("number"),
                    "scheduled": _INT,
                    "running": _INT,
                }
            ),
            "workers": {
                "type": "array",
                "items": _object(
                    {
                        "name": _STRING,
                        "state": _STRING,
                        "beating": {"type": "boolean"},
                        "currentJob": _nullable("string"),
                        "lastHeartbeat": _nullable("string"),
                        "heartbeatAgeSeconds": _nullable("number"),
                    }
                ),
            },
            "scheduler": _object({"holder": _nullable("string"), "ttlSeconds": _INT}),
            "deadLetters": _INT,
            "incidents": _object({"open": _INT, "acknowledged": _INT}),
            "silences": _object({"active": _INT}),
            "sessions": _INT,
            "lanes": {
                "type": "array",
                "description": "The lanes of the actions that have had to wait: deliveries "
                "waiting, the oldest one's age, the circuit breaker, a pause left",
                "items": _object(
                    {
                        "action": _STRING,
                        "backlog": _INT,
                        "oldestSeconds": {"type": "number"},
                        "circuit": {"type": "string", "enum": ["closed", "half_open", "open"]},
                        "pausedForSeconds": _nullable("number"),
                    }
                ),
            },
        }
    ),
    "Incident": _object(
        {
            "id": _STRING,
            "source": _STRING,
            "flow_id": _STRING,
            "flow_name": _STRING,
            "route": _STRING,
            "action": _STRING,
            "opened_at": _NUMBER,
            "last_notified_at": _NUMBER,
            "event": _STRING,
            "failures": _INT,
            "acknowledged": {"type": "boolean"},
            "acked_at": _nullable("number"),
            "acked_by": _nullable("string"),
        }
    ),
    "Attempt": {
        **_object({"at": _STRING, "stage": _STRING, "ref": _STRING}),
        "description": "One attempt as the event's timeline has it: outcome, status, "
        "duration_ms, attempt, error or reason, route, kind, delivery_id",
    },
}

PATHS: dict[str, Any] = {
    "/api/overview": {
        "get": {
            "summary": "The system at a glance",
            "description": "Events received, deliveries made and failed per minute (the oldest "
            "first), failures by flow, the queue, workers, scheduler, dead letters, incidents, "
            "silences and sessions",
            "operationId": "overview",
            "parameters": [
                _query(
                    "minutes",
                    "The window, ending now",
                    {"type": "integer", "minimum": 5, "maximum": queries.MAX_MINUTES},
                )
            ],
            "responses": {"200": _ok("The overview", _ref("Overview")), **COMMON},
        }
    },
    "/api/incidents": {
        "get": {
            "summary": "Open incidents, the most recently notified first",
            "operationId": "list_incidents",
            "responses": {
                "200": _ok("Incidents", {"type": "array", "items": _ref("Incident")}),
                **COMMON,
            },
        }
    },
    "/api/incidents/{id}/acknowledge": {
        "post": {
            "summary": "Acknowledge an incident",
            "description": "Its flow's failures notify no repeats until the flow succeeds",
            "operationId": "acknowledge_incident",
            "parameters": [INCIDENT_ID, _query("by", "Who acknowledges (default: api)", TEXT)],
            "responses": {
                "200": _ok(
                    "Acknowledged",
                    _object({"id": _STRING, "acknowledged": {"type": "boolean"}, "by": _STRING}),
                ),
                "404": NOT_FOUND,
                **COMMON,
            },
        }
    },
    "/api/incidents/{id}/resolve": {
        "post": {
            "summary": "Resolve an incident by hand",
            "description": "It is forgotten without a notification; the flow's next failure "
            "is notified again",
            "operationId": "resolve_incident",
            "parameters": [INCIDENT_ID],
            "responses": {
                "200": _ok("Resolved", _object({"id": _STRING, "resolved": {"type": "boolean"}})),
                "404": NOT_FOUND,
                **COMMON,
            },
        }
    },
    "/api/deliveries": {
        "get": {
            "summary": "The actions that have delivery attempts recorded",
            "operationId": "list_delivery_actions",
            "responses": {
                "200": _ok("Action names", {"type": "array", "items": _STRING}),
                **COMMON,
            },
        }
    },
    "/api/deliveries/{action}": {
        "get": {
            "summary": "An action's latest delivery attempts, newest first",
            "operationId": "list_attempts",
            "parameters": [
                _path("action", "The action's name", SOURCE),
                _query(
                    "outcome", "Of this outcome", {"type": "string", "enum": list(queries.OUTCOMES)}
                ),
                *PAGE,
            ],
            "responses": {
                "200": _ok(
                    "One page of attempts",
                    {"type": "array", "items": _ref("Attempt")},
                    **{"X-Total-Count": TOTAL},
                ),
                **COMMON,
            },
        }
    },
    "/api/dlq/replay": {
        "post": {
            "summary": "Replay dead letters in bulk",
            "description": "Every dead job of `action` whose reason contains `reason`; with "
            "neither, all. With `dryRun=true`, only how many (and which) it would replay",
            "operationId": "replay_dead_letters",
            "parameters": [
                _query("action", "Of this action", SOURCE),
                _query("reason", "Whose reason contains this (case aside)", TEXT),
                _query("dryRun", "Count only", {"type": "boolean", "default": False}),
            ],
            "responses": {
                "200": _ok(
                    "Replayed, or counted",
                    {
                        "anyOf": [
                            _object({"replayed": _INT, "gone": _INT}),
                            _object({"matched": _INT, "jobs": {"type": "array", "items": _STRING}}),
                        ]
                    },
                ),
                **COMMON,
            },
        }
    },
    "/api/silences/preview": {
        "get": {
            "summary": "How many recent events a silence would match",
            "operationId": "preview_silence",
            "parameters": [
                {
                    "name": "matcher",
                    "in": "query",
                    "required": True,
                    "description": 'A matcher such as flow_id="7", once per matcher',
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": queries.MAX_MATCHERS,
                        "items": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": queries.MAX_MATCHER,
                        },
                    },
                    "style": "form",
                    "explode": True,
                },
                _query(
                    "hours",
                    "How far back",
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": queries.MAX_WINDOW_HOURS,
                        "default": 24,
                    },
                ),
            ],
            "responses": {
                "200": _ok(
                    "The count",
                    _object(
                        {
                            "matchers": {"type": "array", "items": _STRING},
                            "windowHours": _NUMBER,
                            "matched": _INT,
                        }
                    ),
                ),
                **COMMON,
            },
        }
    },
    "/api/sessions": {
        "delete": {
            "summary": "End every session of the pages",
            "operationId": "end_sessions",
            "responses": {
                "200": _ok("How many were signed in", _object({"ended": _INT})),
                **COMMON,
            },
        }
    },
}


def document() -> dict[str, Any]:
    """The whole document: :func:`receiver.admin.openapi.document` and the console's part."""
    found = openapi.document()
    found["paths"].update(PATHS)
    found["components"]["schemas"].update(SCHEMAS)
    found["info"]["description"] += (
        " The console's overview, incidents, deliveries per action, bulk replays of dead "
        "letters, silence previews and sessions too."
    )
    return found
