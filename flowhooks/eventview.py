"""Events and their timelines as text, for ``events list``, ``events show`` and ``events
tail``. Pure.

Timeline entries are shown as written (``stage`` and its fields), so a stage added later shows
up without a change here; only a delivery's route and action are put first, as
``route -> action``.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flowhooks.output import cell, table, when

LIST_HEADERS = ("RECEIVED", "SOURCE", "ID", "KIND", "STATUS", "FLOW", "FLOW NAME")
_HIDDEN = frozenset({"at", "stage", "route", "action", "delivery_id"})
"""Fields of an entry not shown as ``name=value``: its time and stage have columns, the route
and action lead, and a delivery id is for machines."""


def row(event: Mapping[str, Any]) -> list[object]:
    """An event as a row under :data:`LIST_HEADERS`."""
    return [
        when(event.get("received_at")),
        event.get("source"),
        event.get("id"),
        event.get("kind"),
        event.get("status"),
        event.get("flow_id"),
        event.get("flow_name"),
    ]


def listing(events: Sequence[Mapping[str, Any]]) -> str:
    return table(LIST_HEADERS, [row(e) for e in events])


def detail(entry: Mapping[str, Any]) -> str:
    """What a timeline entry says besides its time and stage, on one line."""
    parts = []
    if entry.get("route") is not None and entry.get("action") is not None:
        parts.append(f"{cell(entry['route'])} -> {cell(entry['action'])}")
    for name, value in entry.items():
        if name not in _HIDDEN and value is not None:
            parts.append(f"{name}={_value(value)}")
    return " ".join(parts)


def _value(value: object) -> str:
    if isinstance(value, Mapping) and "route" in value and "action" in value:
        kind = value.get("kind")
        return f"{cell(value['route'])} -> {cell(value['action'])}" + (
            f" ({cell(kind)})" if kind not in (None, "notify") else ""
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping | bool):
        return cell(json.dumps(value, default=str))
    text = cell(value)
    return json.dumps(text) if not text or any(c.isspace() for c in text) else text


def timeline(entries: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ("TIME", "STAGE", "DETAIL"),
        [(when(e.get("at")), e.get("stage"), detail(e)) for e in entries],
    )


_FIELDS = (
    ("source", "source"),
    ("id", "id"),
    ("event", "event"),
    ("kind", "kind"),
    ("status", "status"),
    ("flow_id", "flow"),
    ("flow_name", "flow name"),
    ("audit_id", "audit id"),
    ("error", "error"),
    ("tags", "tags"),
    ("params", "params"),
    ("triggered_by", "triggered by"),
    ("via", "via"),
    ("duration_ms", "duration ms"),
)
_TIMES = (
    ("started_at", "started"),
    ("finished_at", "finished"),
    ("sent_at", "sent"),
    ("received_at", "received"),
)


def story(event: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> str:
    """``events show``: the event's labels, its times, then its timeline."""
    fields = [(name, event.get(key)) for key, name in _FIELDS]
    fields += [(name, when(event[key])) for key, name in _TIMES if event.get(key)]
    shown = [(name, _field(value)) for name, value in fields if value not in (None, "", [], {})]
    width = max(len(name) for name, _ in shown)
    head = "\n".join(f"{name.ljust(width)}  {value}" for name, value in shown)
    return f"{head}\n\n{timeline(entries)}"


def _field(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{cell(k)}={cell(v)}" for k, v in value.items())
    return cell(value)
