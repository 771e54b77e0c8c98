"""Slack incoming webhooks: POST a Block Kit message to the webhook URL, which is a secret.

The message: a header (``title``), a section (``text``), the error in a code block, a context
line with the route and links. Template values are escaped for mrkdwn (``&``, ``<``, ``>``), so
``<!channel>`` in a flow name mentions nobody. A storm collapses into one digest message.

Success is a 200 whose body is ``ok``. Slack's errors (400 ``invalid_payload``, 403
``action_prohibited``, 404 ``no_service``, 410 ``channel_is_archived``…) are permanent; 429 (with
``Retry-After``) and 5xx are retried. Slack's error code is kept in the reason: it is a short
lowercase word, checked to be one and not to be part of the URL.
"""

import re
from collections.abc import Mapping
from typing import Any

import httpx

from config.sinks import SlackAction
from workers.sinks import check_response, encode_json, post
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    Digest,
    Rendered,
    escape_within,
    escaping,
    link_label,
    mrkdwn,
    one_line,
    pack,
    render_template,
    summary_line,
    truncate,
)

__all__ = ["DESTINATION", "send"]

BLOCKS = 50
SECTION = 3000
HEADER = 150
FALLBACK = 3000
LINK_MAX = 500
"""The longest link a digest line carries."""
MORE = "… and {} more"
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{1,63}")


TEXT = """\
{% if event.flow_name %}*Flow:* {{ event.flow_name }}\
{% if event.flow_id %} (id {{ event.flow_id }}){% endif %}
{% elif event.flow_id %}*Flow id:* {{ event.flow_id }}
{% endif %}\
*Status:* {{ event.status or event.kind }}
*Source:* {{ event.source }}
{% if event.audit_id %}*Audit id:* {{ event.audit_id }}
{% endif %}\
{% if duration %}*Duration:* {{ duration }}
{% endif %}\
{% if change %}*Changed:* {{ change }}
{% endif %}"""

TEMPLATES = {"title": "{{ headline }}: {{ name }}", "text": TEXT}


def _unmrkdwn(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _within(text: str, limit: int) -> str:
    return escape_within(text, limit, mrkdwn)


def _clean_cut(text: str) -> str:
    """Drop a trailing part of an entity (``&am``) or an unclosed ``<…`` link or mention."""
    amp = text.rfind("&")
    if amp != -1 and ";" not in text[amp:] and len(text) - amp < 5:
        text = text[:amp]
    lt = text.rfind("<")
    if lt != -1 and ">" not in text[lt:]:
        text = text[:lt]
    return text.rstrip()


def _cut_mrkdwn(text: str, limit: int) -> str:
    """Rendered mrkdwn cut to ``limit`` with "…", not inside an entity, link or code block."""
    if len(text) <= limit:
        return text
    cut = _clean_cut(text[: limit - 1])
    if cut.count("```") % 2 == 0:
        return cut + "…"
    return _clean_cut(text[: limit - 5]) + "…\n```"


def _render(action: Acting, name: str, context: Mapping[str, Any]) -> str:
    return render_template(action, name, context, TEMPLATES, finalize=escaping(mrkdwn))


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _context_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _footer(route: str, links: Mapping[str, str]) -> str:
    parts = [f"Route: {mrkdwn(route)}"]
    parts += [f"<{mrkdwn(url)}|{mrkdwn(link_label(name))}>" for name, url in links.items()]
    return _cut_mrkdwn(" · ".join(parts), SECTION)


def _slack(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    title = one_line(_render(action, "title", context))
    if not title:  # Slack refuses an empty header
        title = mrkdwn(f"{context['headline']}: {context['name']}")
    header = _cut_mrkdwn(title, HEADER)
    blocks = [_header(header)]
    text = _render(action, "text", context).strip()
    if text:
        blocks.append(_section(_cut_mrkdwn(text, SECTION)))
    fallback = title
    if context["excerpt"]:
        opening, closing = "*Error*\n```\n", "\n```"
        budget = SECTION - len(opening) - len(closing)
        blocks.append(_section(opening + _within(context["excerpt"], budget) + closing))
        first_line = context["excerpt"].splitlines()[0] if context["excerpt"].strip() else ""
        fallback += " - " + _within(truncate(first_line, 200), 1000)
    blocks.append(_context_block(_footer(context["route"], context["links"])))
    payload = {"text": _cut_mrkdwn(fallback, FALLBACK), "blocks": blocks}
    return Rendered("slack", payload, summary_line(_unmrkdwn(title)))


def _link(url: str | None) -> str:
    return f" <{url}|open>" if url and len(url) <= LINK_MAX else ""


def _slack_digest(action: Acting, digest: Digest) -> Rendered:
    head = _cut_mrkdwn(mrkdwn(digest.head), HEADER)
    lines = [
        "• " + _within(line, SECTION - 2) + _link(url)
        for line, url in zip(digest.lines, digest.links, strict=True)
    ]
    sections = pack(lines, SECTION)[: BLOCKS - 2]
    shown = sum(section.count("\n") + 1 for section in sections)
    footer = [f"Route: {mrkdwn(digest.route)}"]
    if digest.more(shown):
        footer.append(MORE.format(digest.more(shown)))
    blocks = [_header(head), *map(_section, sections), _context_block(" · ".join(footer))]
    payload = {"text": _cut_mrkdwn(mrkdwn(digest.head), FALLBACK), "blocks": blocks}
    return Rendered("slack", payload, summary_line(f"digest: {digest.head}"))


def _with_note(rendered: Rendered, note: str) -> Rendered:
    """The message with ``note`` as one more context block."""
    payload = rendered.payload
    if not isinstance(payload, dict):
        return rendered
    blocks = list(payload.get("blocks") or [])
    if len(blocks) < BLOCKS:
        blocks.append(_context_block(_within(note, SECTION)))
    text = _cut_mrkdwn(f"{payload.get('text', '')}\n{mrkdwn(note)}", FALLBACK)
    return Rendered("slack", {**payload, "text": text, "blocks": blocks}, rendered.summary)


async def send(
    action: SlackAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Post ``payload`` (a Block Kit message: ``text``, ``blocks``) and return the status.

    Raises :class:`~workers.sinks.DeliveryError`. Slack has no idempotency key, so
    ``delivery_id`` is not sent.
    """
    url = action.webhook_url.get_secret_value()
    headers = {"content-type": "application/json"}
    response = await post("slack", client, url, encode_json("slack", payload), headers)
    check_response("slack", response, ok=_ok, detail=_error_code(response, url))
    return response.status_code


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.text.strip() == "ok"


def _error_code(response: httpx.Response, url: str) -> str | None:
    code = response.text.strip()
    if code == "ok" or not _ERROR_CODE.fullmatch(code) or code in url:
        return None
    return code


DESTINATION = Destination(
    name="slack",
    settings=SlackAction,
    render=_slack,
    digest=_slack_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    note=_with_note,
    pace=1.0,
)
