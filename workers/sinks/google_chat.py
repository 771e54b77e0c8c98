"""Google Chat through a space's incoming webhook: POST a message holding one card (cards v2) to
the webhook URL, which is a secret (its ``key`` and ``token`` authorize it).

The card says what the Slack message says: a header (``title``, plain text), the text
(``text``, in the card's HTML subset: ``<b>``, ``<i>``, ``<a>``, ``<br>``), the error, the route
and a button per link. Event values are HTML-escaped, so ``<users/all>`` or ``<b>`` in a flow
name stays text; the message has no ``text`` of its own, where ``<users/all>`` would mention the
whole space. With ``thread: true`` (the default) a flow's messages share one thread
(``threadKey`` per source and flow), so its recovery answers its failure. A storm collapses
into one digest card.

A message takes 32,000 bytes at most: a card over :data:`LIMIT` has its error, then its text
(then a digest's lines) cut, with a line saying so.

Success is a 2xx. 429 (Google's ``RESOURCE_EXHAUSTED``, one message a second per space) and 5xx
are retried; 400, 403 and 404 are permanent. The answer's body is never quoted.
"""

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from config.sinks import GoogleChatAction
from workers.sinks import check_response, encode_json, post
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    MORE,
    Digest,
    Rendered,
    link_label,
    one_line,
    render_template,
    short_key,
    summary_line,
    truncate,
)

__all__ = ["DESTINATION", "send"]

LIMIT = 32_000
"""Bytes of the posted JSON at most."""
TITLE = 200
THREAD_KEY = 200
CUT = "<i>(Cut to fit the size Google Chat takes.)</i>"
REPLY = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"

TEXT = """\
{% if event.flow_name %}<b>Flow:</b> {{ event.flow_name }}\
{% if event.flow_id %} (id {{ event.flow_id }}){% endif %}
{% elif event.flow_id %}<b>Flow id:</b> {{ event.flow_id }}
{% endif %}\
<b>Status:</b> {{ event.status or event.kind }}
<b>Source:</b> {{ event.source }}
{% if event.audit_id %}<b>Audit id:</b> {{ event.audit_id }}
{% endif %}\
{% if duration %}<b>Duration:</b> {{ duration }}
{% endif %}\
{% if change %}<b>Changed:</b> {{ change }}
{% endif %}"""

TEMPLATES = {"title": "{{ headline }}: {{ name }}", "text": TEXT}


def _lines(text: str) -> str:
    """Lines of the card's HTML, its breaks as ``<br>``."""
    return "<br>".join(line for line in text.splitlines() if line.strip())


def _paragraph(text: str) -> dict[str, Any]:
    return {"textParagraph": {"text": text}}


def _message(
    title: str, widgets: list[dict[str, Any]], card_id: str, thread: str | None
) -> dict[str, Any]:
    card = {"header": {"title": title}, "sections": [{"widgets": widgets}]}
    message: dict[str, Any] = {"cardsV2": [{"cardId": card_id, "card": card}]}
    if thread is not None:
        message["thread"] = {"threadKey": thread}
    return message


def _widgets(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    widgets: list[dict[str, Any]] = message["cardsV2"][0]["card"]["sections"][0]["widgets"]
    return widgets


def _size(message: Mapping[str, Any]) -> int:
    return len(encode_json("google_chat", message))


def _cut(text: str, keep: int) -> str:
    """Card HTML cut to ``keep`` characters with "…", never inside a tag or an entity."""
    cut = text[: max(keep, 0)]
    for opening, closing in (("<", ">"), ("&", ";")):
        start = cut.rfind(opening)
        if start != -1 and closing not in cut[start:]:
            cut = cut[:start]
    return cut.rstrip() + "…"


def _fit(message: dict[str, Any], cuttable: list[int]) -> dict[str, Any]:
    """``message`` within :data:`LIMIT`: the widgets at ``cuttable`` (in that order) cut as far
    as needed, and a line saying so."""
    if _size(message) <= LIMIT:
        return message
    widgets = _widgets(message)
    widgets.append(_paragraph(CUT))
    for index in cuttable:
        over = _size(message) - LIMIT
        if over > 0:  # "…" is six bytes as JSON escapes it
            paragraph = widgets[index]["textParagraph"]
            paragraph["text"] = _cut(paragraph["text"], len(paragraph["text"]) - over - 6)
    return message


def _buttons(links: Mapping[str, str]) -> list[dict[str, Any]]:
    if not links:
        return []
    buttons = [
        {"text": link_label(name), "onClick": {"openLink": {"url": url}}}
        for name, url in links.items()
    ]
    return [{"buttonList": {"buttons": buttons}}]


def _thread(action: Acting, event: Mapping[str, Any]) -> str | None:
    settings = action.settings
    if not isinstance(settings, GoogleChatAction) or not settings.thread:
        return None
    flow = event.get("flow_id") or f"event:{event.get('id')}"
    return short_key(f"flowhooks:{event.get('source')}:{flow}", THREAD_KEY, "thread key")


def _google_chat(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    title = one_line(render_template(action, "title", context, TEMPLATES))
    title = truncate(title or f"{context['headline']}: {context['name']}", TITLE)
    widgets = []
    cuttable = []
    text = _lines(render_template(action, "text", context, TEMPLATES, html=True))
    if text:
        widgets.append(_paragraph(text))
        cuttable.append(len(widgets) - 1)
    if context["excerpt"]:
        widgets.append(_paragraph("<b>Error</b><br>" + _lines(html.escape(context["excerpt"]))))
        cuttable.insert(0, len(widgets) - 1)
    widgets.append(_paragraph(f"<i>Route: {html.escape(context['route'])}</i>"))
    widgets += _buttons(context["links"])
    card_id = "recovered" if context["resolved"] else "notification"
    message = _fit(_message(title, widgets, card_id, _thread(action, event)), cuttable)
    return Rendered("google_chat", message, summary_line(title))


def _google_chat_digest(action: Acting, digest: Digest) -> Rendered:
    lines = []
    for line, url in zip(digest.lines, digest.links, strict=True):
        link = f' <a href="{html.escape(url)}">open</a>' if url else ""
        lines.append(f"• {html.escape(line)}{link}")
    footer = f"Route: {html.escape(digest.route)}"
    if digest.more(len(lines)):
        footer += " · " + MORE.format(digest.more(len(lines)))
    widgets = [_paragraph("<br>".join(lines)), _paragraph(f"<i>{footer}</i>")]
    title = truncate(digest.head, TITLE)
    message = _fit(_message(title, widgets, "digest", None), [0])
    return Rendered("google_chat", message, summary_line(f"digest: {digest.head}"))


def _with_note(rendered: Rendered, note: str) -> Rendered:
    """The card with ``note`` as one more line."""
    payload = rendered.payload
    if not isinstance(payload, dict):
        return rendered
    message = {**payload, "cardsV2": [dict(payload["cardsV2"][0])]}
    card = dict(message["cardsV2"][0]["card"])
    widgets = [*card["sections"][0]["widgets"], _paragraph(html.escape(note))]
    card["sections"] = [{**card["sections"][0], "widgets": widgets}]
    message["cardsV2"][0]["card"] = card
    return Rendered("google_chat", _fit(message, []), rendered.summary)


async def send(
    action: GoogleChatAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Post ``payload`` (a message with a card, and its thread) and return the status. Raises
    :class:`~workers.sinks.DeliveryError`. ``delivery_id`` is not sent: a webhook's
    ``messageId`` must be ``client-`` and 63 characters at most, and a repeated one is an
    error rather than a no-op."""
    url = action.webhook_url.get_secret_value()
    if "thread" in payload:
        url += ("&" if "?" in url else "?") + urlencode({"messageReplyOption": REPLY})
    headers = {"content-type": "application/json; charset=UTF-8"}
    response = await post("google_chat", client, url, encode_json("google_chat", payload), headers)
    check_response("google_chat", response)
    return response.status_code


DESTINATION = Destination(
    name="google_chat",
    settings=GoogleChatAction,
    render=_google_chat,
    digest=_google_chat_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    note=_with_note,
    pace=1.0,
)
