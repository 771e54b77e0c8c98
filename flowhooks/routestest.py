"""``flowhooks routes test``: what a rule set does with an event, by the code the worker runs.

The event is what a user has at hand: labels on the command line, as amtool takes them
(:func:`labelled`), or a file holding a raw Etlworks webhook body as received (normalized
exactly as the receiver does, for ``--source``) or a canonical event as ``flowhooks events
show -o json`` prints it (its ``event`` part, or the whole output).
"""

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from config.base import DERIVED
from config.events import LABELS, Event
from config.inhibit import Inhibitor
from config.schema import Config
from config.silences import Silence
from flowhooks.output import block
from receiver.normalize import Unparseable, normalize, parse_body
from workers.delivery import Incident, Planned, labels_of, plan
from workers.rendering import RenderError, render
from workers.routing import match


def load_event(
    text: str,
    source: str | None,
    received_at: datetime,
    sources: Collection[str] | None = None,
) -> dict[str, Any]:
    """A canonical event from a file's text; raise ``ValueError`` saying what is wrong. A raw
    body arrives on ``source``, which must be one of ``sources`` when they are given."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("the event file is not JSON") from None
    if isinstance(data, dict) and isinstance(data.get("event"), dict) and "timeline" in data:
        data = data["event"]  # `flowhooks events show` output
    if isinstance(data, dict) and {"id", "source", "kind", "received_at"} <= data.keys():
        return Event.model_validate(data).model_dump(mode="json")
    if source is None:
        raise ValueError("a raw Etlworks body needs --source, the source it would arrive on")
    if sources is not None and source not in sources:
        # the receiver answers 404 for it: no event ever arrives on it
        raise ValueError(f"no source {source!r} in the config (known: {', '.join(sources)})")
    body = text.encode()
    try:
        payload = parse_body("application/json", body)
    except Unparseable as exc:  # what the receiver answers 400 for
        raise ValueError(f"the receiver would refuse this body: {exc}") from None
    event = normalize(source, payload, etl_headers={}, body=body, received_at=received_at)
    return event.model_dump(mode="json")


LABELLED_ID = "routes-test"
"""The id of an event made of labels that name none."""


def labelled(labels: Sequence[tuple[str, str]], received_at: datetime) -> dict[str, Any]:
    """A canonical event with these ``(name, value)`` labels (``tags`` may repeat), the others
    empty; raise ``ValueError`` naming a label that is unknown, missing or of a bad value."""
    fields: dict[str, Any] = {"id": LABELLED_ID, "source": "", "event": "", "tags": []}
    derived: dict[str, str] = {}
    known = (*LABELS, *DERIVED, "tags")
    for name, value in labels:
        if name == "tags":
            fields["tags"].append(value)
        elif name in DERIVED:
            derived[name] = value
        elif name in LABELS:
            fields[name] = value
        else:
            raise ValueError(f"unknown label {name!r} (known: {', '.join(known)})")
    if "kind" not in fields:
        raise ValueError("an event needs its kind, e.g. kind=flow.failed")
    try:
        event = Event.model_validate({**fields, "received_at": received_at})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValueError(f"{first['loc'][0]}: {first['msg']}") from None
    return event.model_dump(mode="json") | derived


@dataclass(frozen=True)
class Report:
    routes: list[str]
    planned: list[Planned]
    rendered: dict[str, Any]
    inhibitors: Sequence[Inhibitor] = ()
    """The open incidents that may inhibit, as read from Redis."""

    @property
    def firing(self) -> list[str]:
        return sorted({p.action for p in self.planned if p.suppressed is None})


def run(
    config: Config,
    event: Mapping[str, Any],
    *,
    at: datetime,
    silences: Sequence[Silence] = (),
    incidents: Sequence[Incident] = (),
    inhibitors: Sequence[Inhibitor] = (),
) -> Report:
    labels, tags = labels_of(event)
    routes = [m.path for m in match(config.routes, labels, tags)]
    planned = plan(
        config, event, at=at, silences=silences, incidents=incidents, inhibitors=inhibitors
    )
    rendered: dict[str, Any] = {}
    for p in planned:
        action = config.actions[p.action]
        key = f"{p.route} -> {p.action}" + (" (resolve)" if p.kind == "resolve" else "")
        try:
            rendered[key] = render(
                action, event, resolved=p.kind == "resolve", route=p.route
            ).payload
        except RenderError as exc:
            rendered[key] = {"error": str(exc)}
    return Report(routes, planned, rendered, inhibitors)


def document(report: Report) -> dict[str, Any]:
    """The report as ``routes test -o json`` prints it."""
    deliveries = [
        {
            "route": p.route,
            "action": p.action,
            "kind": p.kind,
            "delivery_id": p.delivery_id,
            "suppressed": p.suppressed,
            "detail": p.detail,
        }
        for p in report.planned
    ]
    return {
        "routes": report.routes,
        "deliveries": deliveries,
        "firing": report.firing,
        "rendered": report.rendered,
        "inhibiting": [
            {"incident": i.key, "event": i.ref, **i.to_json()} for i in report.inhibitors
        ],
    }


def describe(report: Report) -> str:
    lines = ["matched routes:"] + [f"  {r}" for r in report.routes]
    lines.append("deliveries:")
    if not report.planned:
        lines.append("  (none: the matched routes name no actions)")
    for p in report.planned:
        what = f"  {p.route} -> {p.action}"
        if p.kind == "resolve":
            what += " (resolves the open incident)"
        if p.kind == "group":
            what += " (grouped into a digest)"
        if p.suppressed == "inhibited":
            by = next((i.describe() for i in report.inhibitors if i.ref == p.detail), p.detail)
            what += f"  SUPPRESSED: inhibited (by {by})"
        elif p.suppressed:
            what += f"  SUPPRESSED: {p.suppressed}" + (f" ({p.detail})" if p.detail else "")
        lines.append(what)
    if report.inhibitors:
        lines.append("open incidents that may inhibit (read from Redis):")
        lines.extend(f"  {i.key}: {i.describe()}" for i in report.inhibitors)
    lines.append("rendered:")
    for key, payload in report.rendered.items():
        text = payload if isinstance(payload, str) else json.dumps(payload, indent=2)
        lines.append(f"  {key}:")
        lines.extend(f"    {line}" for line in block(text).splitlines())
    return "\n".join(lines)


def parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
