"""Opsgenie's Alert API v2: a failure creates an alert, the flow's next success closes it.

The alert's ``alias`` is per source and flow by default (as PagerDuty's ``dedup_key`` is), so a
flow's repeated failures fold into one open alert and the close finds it: Opsgenie's failure
notification opens an incident. The API key (a secret) goes in the ``Authorization: GenieKey``
header at send time, never into a rendered payload, a job or a timeline.

The rendered payload says what to do (``"action": "create"`` or ``"close"``); the rest is the
body Opsgenie takes. Create is ``POST {base}/v2/alerts``, close is ``POST
{base}/v2/alerts/{alias}/close?identifierType=alias``. Opsgenie's limits are kept: a message of
130 characters, an alias of 512, a description of 15,000, 20 tags of 50 characters, details of
8,000 characters in all (values are strings).

Opsgenie answers 202 when it has taken the request (it processes it later). 429 and 5xx are
retried, with ``Retry-After`` when given; 400, 401, 403, 404 and 422 are permanent. The answer's
body is never quoted.
"""

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from config.sinks import OpsgenieAction
from workers.sinks import DeliveryError, check_response, encode_json, post
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    MORE,
    Digest,
    Rendered,
    fit,
    one_line,
    render_template,
    short_key,
    summary_line,
    template_context,
    truncate,
)

__all__ = ["DESTINATION", "send"]

MESSAGE = 130
ALIAS = 512
DESCRIPTION = 15_000
TAGS = 20
TAG = 50
DETAILS = 8_000
"""Characters of all the details' keys and values together."""
DETAIL = 2_000
"""Characters of one detail's value at most (the error excerpt's)."""
BASES = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}

DESCRIPTION_TEXT = """\
{{ headline }}: {{ name }}

Flow:      {{ event.flow_name or "-" }}{% if event.flow_id %} (id {{ event.flow_id }}){% endif %}
Status:    {{ event.status or event.kind }}
Source:    {{ event.source }}
Audit id:  {{ event.audit_id or "-" }}
Duration:  {{ duration or "-" }}
Route:     {{ route }}
{% if change %}Changed:   {{ change }}
{% endif %}\
{% if excerpt %}
Error:
{{ excerpt }}
{% endif %}\
{% for label, url in links.items() %}
{{ "Open execution" if label == "execution" else label }}: {{ url }}
{% endfor %}"""

TEMPLATES = {
    "message": "{{ headline }}: {{ name }} ({{ event.source }})",
    "alias": "flowhooks:{{ event.source }}:"
    "{% if event.flow_id %}{{ event.flow_id }}"
    "{% elif event.kind == 'expectation.missed' %}expect:{{ event.entity_id }}"
    "{% elif event.kind == 'webhook.missing' %}webhooks"
    "{% else %}event:{{ event.id }}{% endif %}",
    "description": DESCRIPTION_TEXT,
}


def _render(action: Acting, name: str, context: Mapping[str, Any]) -> str:
    return render_template(action, name, context, TEMPLATES)


def _settings(action: Acting) -> OpsgenieAction:
    settings = action.settings
    assert isinstance(settings, OpsgenieAction)
    return settings


def _alias(action: Acting, context: Mapping[str, Any]) -> str:
    return short_key(_render(action, "alias", context), ALIAS, "opsgenie template 'alias'")


def _tags(settings: OpsgenieAction, event: Mapping[str, Any]) -> list[str]:
    given = [*settings.tags, *(event.get("tags") or []), "flowhooks"]
    tags: list[str] = []
    for tag in given:
        text = truncate(one_line(str(tag)), TAG)
        if text and text not in tags:
            tags.append(text)
    return tags[:TAGS]


def _details(values: Mapping[str, Any]) -> dict[str, str]:
    """String values, none empty, each within :data:`DETAIL`, all within :data:`DETAILS`."""
    details: dict[str, str] = {}
    room = DETAILS
    for key, value in values.items():
        if value in (None, "", [], {}):
            continue
        text = truncate(value if isinstance(value, str) else str(value), min(DETAIL, room))
        if room - len(key) - len(text) < 0:
            break
        details[key] = text
        room -= len(key) + len(text)
    return details


def _create(
    settings: OpsgenieAction,
    *,
    message: str,
    alias: str,
    description: str,
    details: Mapping[str, Any],
    event: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "create",
        "message": truncate(one_line(message), MESSAGE),
        "alias": alias,
        "description": truncate(description, DESCRIPTION),
        "priority": settings.priority,
        "tags": _tags(settings, event),
        "details": _details(details),
        "source": "flowhooks",
    }
    if event.get("flow_name"):
        body["entity"] = truncate(str(event["flow_name"]), ALIAS)
    if settings.responders:
        body["responders"] = [
            {"type": r.type, "username" if r.type == "user" else "name": r.name}
            for r in settings.responders
        ]
    return body


def _opsgenie(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    alias = _alias(action, context)
    if context["resolved"]:
        note = truncate(f"{context['headline']}: {context['name']}", 1000)
        close = {"action": "close", "alias": alias, "source": "flowhooks", "note": note}
        return Rendered("opsgenie", close, summary_line(f"close {alias}"))
    settings = _settings(action)
    message = one_line(_render(action, "message", context))
    message = message or f"{context['headline']}: {context['name']}"
    details = {
        "event_id": event.get("id"),
        "flow_id": event.get("flow_id"),
        "flow_name": event.get("flow_name"),
        "audit_id": event.get("audit_id"),
        "status": event.get("status"),
        "kind": event.get("kind"),
        "source": event.get("source"),
        "route": context["route"],
        "duration": context["duration"],
        "change": context["change"],
        **{f"link {name}": url for name, url in context["links"].items()},
        "error": context["excerpt"],
    }
    description = _render(action, "description", context)
    body = _create(
        settings,
        message=message,
        alias=alias,
        description=description,
        details=details,
        event=event,
    )
    return Rendered("opsgenie", body, summary_line(f"create {alias}: {body['message']}"))


def _opsgenie_digest(action: Acting, digest: Digest) -> Rendered:
    if digest.common("source") is not None and digest.common("flow_id"):
        context = template_context(
            digest.last, resolved=False, route=digest.route, links=None, digest=digest
        )
        alias = _alias(action, context)
    else:
        values = ",".join(f"{key}={value}" for key, value in digest.group.items())
        alias = short_key(f"flowhooks:digest:{digest.route}:{values}", ALIAS, "opsgenie alias")
    lines = fit(digest.lines, DESCRIPTION - len(digest.head) - 2, "\n")
    description = "\n".join([digest.head, "", *lines])
    if digest.more(len(lines)):
        description += "\n" + MORE.format(digest.more(len(lines)))
    details = {"count": len(digest.events), "route": digest.route, **digest.group}
    body = _create(
        _settings(action),
        message=digest.head,
        alias=alias,
        description=description,
        details=details,
        event=digest.last,
    )
    return Rendered("opsgenie", body, summary_line(f"create {alias}: digest: {digest.head}"))


def _request(settings: OpsgenieAction, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and body of the request ``payload`` asks for."""
    base = (settings.url or BASES[settings.region]).rstrip("/")
    body = {key: value for key, value in payload.items() if key != "action"}
    if payload.get("action") == "close":
        alias = quote(str(payload["alias"]), safe="")
        del body["alias"]
        return f"{base}/v2/alerts/{alias}/close?identifierType=alias", body
    if payload.get("action") == "create":
        return f"{base}/v2/alerts", body
    raise DeliveryError("opsgenie", "the payload is neither a create nor a close", retryable=False)


async def send(
    action: OpsgenieAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Create or close the alert ``payload`` describes and return the status. Raises
    :class:`~workers.sinks.DeliveryError`. Opsgenie folds a create into the open alert of its
    alias, so ``delivery_id`` is not sent."""
    url, body = _request(action, payload)
    headers = {
        "content-type": "application/json",
        "authorization": f"GenieKey {action.api_key.get_secret_value()}",
    }
    response = await post("opsgenie", client, url, encode_json("opsgenie", body), headers)
    check_response("opsgenie", response)
    return response.status_code


DESTINATION = Destination(
    name="opsgenie",
    settings=OpsgenieAction,
    render=_opsgenie,
    digest=_opsgenie_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    pace=0.5,
    incidents=True,
)
