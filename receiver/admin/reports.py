"""What the admin API and pages show: one event with its timeline taken apart (:func:`detail`),
a list row (:func:`row`), the numbers of a window (:func:`summary`), a silence. Pure.

Timeline entries are shown as written, grouped by their ``stage``, so a stage added later (an
Etlworks run, a synthetic follow-up) shows up without a change here; entries that name a
``delivery_id`` (a notification, an action) are also gathered per delivery, in order.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from config.eventlog import StoredEvent
from config.silences import Silence

FLOW_KINDS = ("flow.succeeded", "flow.warning", "flow.failed", "flow.canceled", "flow.timeout")
"""Kinds that report how a run ended (``flow.running`` does not)."""
SUCCEEDED = frozenset({"flow.succeeded"})
FAILED = frozenset({"flow.failed", "flow.timeout"})


def row(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event for a list: everything but the payload as received."""
    return {name: value for name, value in event.items() if name != "raw"}


def readable(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A timeline entry's own fields as a person reads them: names with spaces, durations in
    words (``duration_ms``, ``wait_s``), lists joined, anything nested as JSON."""
    return [_readable(name, value) for name, value in fields.items()]


def _readable(name: str, value: Any) -> tuple[str, str]:
    label = name.replace("_", " ")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and name.endswith("_ms"):
        return label.removesuffix(" ms"), duration(value / 1000)
    if number and name.endswith("_s"):
        return label.removesuffix(" s"), duration(float(value))
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return label, ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return label, json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return label, "" if value is None else str(value)


def _entries(timeline: Iterable[object]) -> list[dict[str, Any]]:
    """The entries, each a mapping with a ``stage`` (an entry another version wrote oddly is
    kept, as stage ``unknown``)."""
    out = []
    for entry in timeline:
        fields = dict(entry) if isinstance(entry, Mapping) else {"value": entry}
        fields["stage"] = str(fields.get("stage") or "unknown")
        out.append(fields)
    return out


def detail(stored: StoredEvent) -> dict[str, Any]:
    timeline = _entries(stored.timeline)
    stages: dict[str, list[dict[str, Any]]] = {}
    for entry in timeline:
        stages.setdefault(entry["stage"], []).append(entry)
    received = stages.get("received", [None])[0]
    routed = stages.get("routed", [])
    return {
        "ref": stored.ref,
        "event": stored.event,
        "verification": None
        if received is None
        else {
            "verified": [str(v) for v in received.get("verified") or []],
            "remote": received.get("remote"),
            "at": received.get("at"),
        },
        "routes": [str(r) for r in routed[-1].get("routes") or []] if routed else [],
        "deliveries": deliveries(timeline),
        "stages": stages,
        "timeline": timeline,
    }


def deliveries(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per delivery the timeline names: what it is, its last outcome, every entry."""
    found: dict[str, dict[str, Any]] = {}
    for entry in timeline:
        did = entry.get("delivery_id")
        if not isinstance(did, str):
            continue
        item = found.setdefault(
            did,
            {
                "delivery_id": did,
                "route": entry.get("route"),
                "action": entry.get("action"),
                "kind": entry.get("kind"),
                "outcome": None,
                "attempts": [],
            },
        )
        item["attempts"].append(entry)
        if entry.get("outcome") is not None:
            item["outcome"] = entry.get("outcome")
    return list(found.values())


def summary(events: Iterable[StoredEvent]) -> dict[str, Any]:
    """Runs by outcome and their durations, over the events that report how a run ended, and
    the delivery attempts of every event by outcome."""
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    durations: list[int] = []
    for stored in events:
        kind = stored.event.get("kind")
        if kind in FLOW_KINDS:
            kinds[kind] += 1
            duration = stored.event.get("duration_ms")
            if isinstance(duration, int) and not isinstance(duration, bool) and duration >= 0:
                durations.append(duration)
        for entry in _entries(stored.timeline):
            if entry["stage"] == "delivery" and entry.get("outcome") is not None:
                outcomes[str(entry["outcome"])] += 1
    durations.sort()
    return {
        "total": sum(kinds.values()),
        "succeeded": sum(kinds[k] for k in SUCCEEDED),
        "failed": sum(kinds[k] for k in FAILED),
        "byKind": {k: kinds[k] for k in FLOW_KINDS},
        "avgDurationMs": round(sum(durations) / len(durations)) if durations else None,
        "p95DurationMs": durations[math.ceil(0.95 * len(durations)) - 1] if durations else None,
        "deliveries": dict(sorted(outcomes.items())),
    }


def silence(found: Silence, now: datetime) -> dict[str, Any]:
    return {
        "id": found.id,
        "matchers": list(found.matchers),
        "startsAt": found.starts_at.isoformat(),
        "endsAt": found.ends_at.isoformat(),
        "author": found.author,
        "comment": found.comment,
        "state": found.state(now),
    }


def duration(seconds: float | None) -> str:
    """A duration as a person says it: ``450 ms``, ``12 s``, ``2 min``, ``1 h 5 min``,
    ``3 d 4 h``; '' for none."""
    if seconds is None or isinstance(seconds, bool) or not math.isfinite(seconds):
        return ""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s") if seconds < 10 else f"{round(seconds)} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    whole, parts = round(seconds), []
    for name, size in units:
        if whole >= size:
            parts.append(f"{whole // size} {name}")
            whole %= size
    return " ".join(parts[:2])
