"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received"):
POST a message holding one Adaptive Card to the webhook URL, which is a secret.

The card says what the Slack message says: a title (``title``; green when recovered, red for a
failure), the text (``text``), the error in monospace, the route, and a button per link. A
storm collapses into one digest card. Template values are escaped for the card's markdown (a
backslash before each markdown character, so ``**`` or ``[x](url)`` in a flow name stays text,
and ``<`` and ``>`` so ``<at>`` mentions nobody).

Teams takes a message of about 28 KB at most: a card over :data:`LIMIT` bytes has its error,
then its text (then a digest's lines) cut, with a visible line saying so.

Any 2xx is success (Workflows answer 202). 429 (with ``Retry-After``) and 5xx are retried; other
4xx (400 a card Teams cannot read, 413 too large) are permanent. The answer's body is never
quoted.
"""

from collections.abc import Mapping
from typing import Any

import httpx

from config.sinks import TeamsAction
from workers.sinks import check_response, encode_json, post
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    MORE,
    Digest,
    Rendered,
    escaping,
    link_label,
    markdown_escape,
    one_line,
    render_template,
    summary_line,
    truncate,
)

__all__ = ["DESTINATION", "send"]

LIMIT = 28 * 1024
"""Bytes of the posted JSON at most."""
TITLE = 200
CUT = "(Cut to fit the size Teams takes.)"
CARD = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
FAILURES = frozenset(
    {"flow.failed", "flow.timeout", "join.expired", "expectation.missed", "webhook.missing"}
)


TEXT = """\
{% if event.flow_name %}**Flow:** {{ event.flow_name }}\
{% if event.flow_id %} (id {{ event.flow_id }}){% endif %}
{% elif event.flow_id %}**Flow id:** {{ event.flow_id }}
{% endif %}\
**Status:** {{ event.status or event.kind }}
**Source:** {{ event.source }}
{% if event.audit_id %}**Audit id:** {{ event.audit_id }}
{% endif %}\
{% if duration %}**Duration:** {{ duration }}
{% endif %}\
{% if change %}**Changed:** {{ change }}
{% endif %}"""

TEMPLATES = {"title": "{{ headline }}: {{ name }}", "text": TEXT}


def _render(action: Acting, name: str, context: Mapping[str, Any]) -> str:
    return render_template(action, name, context, TEMPLATES, finalize=escaping(markdown_escape))


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _paragraphs(text: str) -> str:
    """Lines as paragraphs: the card's markdown joins single line breaks."""
    return "\n\n".join(line for line in text.splitlines() if line.strip())


def _color(event: Mapping[str, Any], resolved: bool) -> str:
    if resolved:
        return "Good"
    kind = event.get("kind")
    return "Attention" if kind in FAILURES else "Warning" if kind == "flow.warning" else "Default"


def _message(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{"contentType": CARD, "contentUrl": None, "content": card}],
    }


def _size(message: Mapping[str, Any]) -> int:
    return len(encode_json("teams", message))


def _cut(text: str, keep: int) -> str:
    """Escaped markdown cut to ``keep`` characters with "…", never after a lone backslash."""
    cut = text[: max(keep, 0)]
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut.rstrip() + "…"


def _fit(message: dict[str, Any], cuttable: list[int]) -> dict[str, Any]:
    """``message`` within :data:`LIMIT`: the body's blocks at ``cuttable`` (in that order) cut
    as far as needed, and a line saying so."""
    if _size(message) <= LIMIT:
        return message
    body: list[dict[str, Any]] = message["attachments"][0]["content"]["body"]
    body.append(_block(CUT, isSubtle=True, size="Small"))
    for index in cuttable:
        over = _size(message) - LIMIT
        if over > 0:  # "…" is six bytes as JSON escapes it
            text = body[index]["text"]
            body[index]["text"] = _cut(text, len(text) - over - 6)
    return message


def _actions(links: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {"type": "Action.OpenUrl", "title": link_label(name), "url": url}
        for name, url in links.items()
    ]


def _teams(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    title = one_line(_render(action, "title", context))
    title = truncate(title or markdown_escape(f"{context['headline']}: {context['name']}"), TITLE)
    color = _color(event, context["resolved"])
    body = [_block(title, size="Large", weight="Bolder", color=color)]
    cuttable = []
    text = _paragraphs(_render(action, "text", context))
    if text:
        body.append(_block(text))
        cuttable.append(len(body) - 1)
    if context["excerpt"]:
        body.append(_block("**Error**"))
        body.append(_block(markdown_escape(context["excerpt"]), fontType="Monospace"))
        cuttable.insert(0, len(body) - 1)
    body.append(_block(f"Route: {markdown_escape(context['route'])}", isSubtle=True, size="Small"))
    message = _fit(_message(body, _actions(context["links"])), cuttable)
    return Rendered("teams", message, summary_line(title.replace("\\", "")))


def _line(line: str, url: str | None) -> str:
    link = f" [open]({url})" if url and "(" not in url and ")" not in url else ""
    return f"- {markdown_escape(line)}{link}"


def _teams_digest(action: Acting, digest: Digest) -> Rendered:
    lines = [_line(line, url) for line, url in zip(digest.lines, digest.links, strict=True)]
    footer = f"Route: {markdown_escape(digest.route)}"
    if digest.more(len(lines)):
        footer += " · " + MORE.format(digest.more(len(lines)))
    body = [
        _block(truncate(markdown_escape(digest.head), TITLE), size="Large", weight="Bolder"),
        _block("\n".join(lines)),
        _block(footer, isSubtle=True, size="Small"),
    ]
    message = _fit(_message(body, []), [1])
    return Rendered("teams", message, summary_line(f"digest: {digest.head}"))


def _with_note(rendered: Rendered, note: str) -> Rendered:
    """The card with ``note`` as one more line."""
    payload = rendered.payload
    if not isinstance(payload, dict):
        return rendered
    content = payload["attachments"][0]["content"]
    body = [*content["body"], _block(markdown_escape(note), isSubtle=True)]
    message = _message(body, list(content.get("actions") or []))
    return Rendered("teams", _fit(message, []), rendered.summary)


async def send(
    action: TeamsAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Post ``payload`` (a message with an Adaptive Card) and return the status. Raises
    :class:`~workers.sinks.DeliveryError`. Teams has no idempotency key, so ``delivery_id`` is
    not sent."""
    url = action.webhook_url.get_secret_value()
    headers = {"content-type": "application/json"}
    response = await post("teams", client, url, encode_json("teams", payload), headers)
    check_response("teams", response)
    return response.status_code


DESTINATION = Destination(
    name="teams",
    settings=TeamsAction,
    render=_teams,
    digest=_teams_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    note=_with_note,
    pace=1.0,
)
