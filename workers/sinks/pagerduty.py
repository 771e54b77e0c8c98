"""PagerDuty Events API v2: POST the rendered event to ``action.url`` with the ``routing_key``
(a secret) inserted at send time, so the key is never part of a rendered payload, a job or a
timeline.

A failure triggers, keyed by ``dedup_key`` (per source and flow by default), and the flow's next
success resolves the same key: PagerDuty's failure notification opens an incident. Repeats fold
by the key, so a storm does not collapse here.

202 is success, 400 (an invalid event) is permanent, 429 and 5xx are retried. The response body
is never quoted: it describes a request that held the key.
"""

from collections.abc import Mapping
from typing import Any

import httpx

from config.sinks import PagerDutyAction
from workers.sinks import check_response, encode_json, post
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    Digest,
    Rendered,
    event_time,
    fit,
    link_label,
    one_line,
    present,
    render_template,
    short_key,
    summary_line,
    template_context,
    truncate,
)

__all__ = ["DESTINATION", "send"]

SUMMARY = 1024
DEDUP_KEY = 255
MORE = "… and {} more"


TEMPLATES = {
    "summary": "{{ headline }}: {{ name }} ({{ event.source }})"
    "{% if excerpt %}: {{ excerpt }}{% endif %}",
    "dedup_key": "flowhooks:{{ event.source }}:"
    "{% if event.flow_id %}{{ event.flow_id }}"
    "{% elif event.kind == 'expectation.missed' %}expect:{{ event.entity_id }}"
    "{% elif event.kind == 'webhook.missing' %}webhooks"
    "{% else %}event:{{ event.id }}{% endif %}",
}


def _render(action: Acting, name: str, context: Mapping[str, Any]) -> str:
    return render_template(action, name, context, TEMPLATES)


def _dedup_key(text: str) -> str:
    return short_key(text, DEDUP_KEY, "pagerduty template 'dedup_key'")


def _severity(action: Acting) -> str:
    settings = action.settings
    return settings.severity if isinstance(settings, PagerDutyAction) else "error"


def _pd_links(links: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"href": url, "text": link_label(name)} for name, url in links.items()]


def _pagerduty(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    key = _dedup_key(_render(action, "dedup_key", context))
    if context["resolved"]:
        return Rendered(
            "pagerduty", {"event_action": "resolve", "dedup_key": key}, f"resolve {key}"
        )
    summary = one_line(_render(action, "summary", context))
    summary = truncate(summary or f"{context['headline']}: {context['name']}", SUMMARY)
    details = {
        "event_id": event.get("id"),
        "event": event.get("event"),
        "flow_id": event.get("flow_id"),
        "flow_name": event.get("flow_name"),
        "audit_id": event.get("audit_id"),
        "status": event.get("status"),
        "error": context["excerpt"],
        "duration": context["duration"],
        "change": context["change"],
        "tags": event.get("tags"),
        "params": event.get("params"),
        "route": context["route"],
    }
    payload = {
        "summary": summary,
        "source": f"flowhooks/{event.get('source')}",
        "severity": _severity(action),
        "timestamp": event_time(event),
        "component": event.get("flow_name"),
        "group": event.get("source"),
        "class": event.get("kind"),
        "custom_details": present(details),
    }
    body: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": present(payload),
        "client": "flowhooks",
    }
    if context["links"]:
        body["links"] = _pd_links(context["links"])
    return Rendered("pagerduty", body, summary_line(f"trigger {key}: {summary}"))


def _pagerduty_digest(action: Acting, digest: Digest) -> Rendered:
    if digest.common("source") is not None and digest.common("flow_id"):
        context = template_context(
            digest.last, resolved=False, route=digest.route, links=None, digest=digest
        )
        key = _dedup_key(_render(action, "dedup_key", context))
    else:
        values = ",".join(f"{key}={value}" for key, value in digest.group.items())
        key = _dedup_key(f"flowhooks:digest:{digest.route}:{values}")
    lines = fit(digest.lines, SUMMARY - len(digest.head) - 2, "; ")
    summary = digest.head + (": " + "; ".join(lines) if lines else "")
    if digest.more(len(lines)):
        summary += "; " + MORE.format(digest.more(len(lines)))
    details = {
        "count": len(digest.events),
        "group": dict(digest.group),
        "route": digest.route,
        "events": digest.lines,
        "more": digest.more(len(digest.lines)),
    }
    source = digest.common("source")
    payload = {
        "summary": truncate(summary, SUMMARY),
        "source": f"flowhooks/{source}" if source else "flowhooks",
        "severity": _severity(action),
        "timestamp": event_time(digest.last),
        "component": digest.common("flow_name"),
        "group": source,
        "class": digest.common("kind"),
        "custom_details": present(details),
    }
    body = {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": present(payload),
        "client": "flowhooks",
    }
    return Rendered("pagerduty", body, summary_line(f"trigger {key}: digest: {digest.head}"))


async def send(
    action: PagerDutyAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Send ``payload`` (``event_action``, ``dedup_key``, ``payload``, ``links``…, without
    ``routing_key``) and return the status. Raises :class:`~workers.sinks.DeliveryError`."""
    event = {**payload, "routing_key": action.routing_key.get_secret_value()}
    headers = {"content-type": "application/json"}
    response = await post("pagerduty", client, action.url, encode_json("pagerduty", event), headers)
    check_response("pagerduty", response)
    return response.status_code


DESTINATION = Destination(
    name="pagerduty",
    settings=PagerDutyAction,
    render=_pagerduty,
    digest=_pagerduty_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    pace=0.5,
    incidents=True,
)
