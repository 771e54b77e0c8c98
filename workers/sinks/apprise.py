"""Any service Apprise reaches (Telegram, Matrix, Mattermost, Pushover, SNS, …) by its Apprise
URL, which is a secret: it holds the service's tokens. Apprise is an optional extra
(``pip install 'flowhooks[apprise]'``); the config refuses an ``apprise:`` action without it.

The notification is a title and a body (``title``, ``body``), the body in markdown (event
values escaped with a backslash before each markdown character) or plain text (``format:
text``); Apprise turns markdown into what the service reads. A storm collapses into one digest.

Apprise says only whether the service took the notification, not why it did not: a refusal is
retried under the action's retry policy (a URL Apprise cannot read is permanent). Apprise's own
logs (and urllib3's, which it sends with) may quote the URL, so :class:`QuietApprise` keeps them
to their level and a fixed text.
"""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from config.sinks import APPRISE_HINT, AppriseAction
from workers.sinks import DeliveryError
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    MORE,
    Digest,
    Rendered,
    escaping,
    markdown_escape,
    one_line,
    render_template,
    summary_line,
    truncate,
)

__all__ = ["DESTINATION", "send"]

TITLE = 250
BODY = 32_000
QUIET_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "urllib3.util.retry")
"""A logger's filters see only its own records, not its children's: each is named."""

BODY_TEXT = """\
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
{% endif %}\
**Route:** {{ route }}
{% if excerpt %}
**Error:** {{ excerpt }}
{% endif %}\
{% for label, url in links.items() %}
{{ "Open execution" if label == "execution" else label }}: {{ url }}
{% endfor %}"""

TEMPLATES = {"title": "{{ headline }}: {{ name }}", "body": BODY_TEXT}


class QuietApprise(logging.Filter):
    """Apprise's and urllib3's records as their level and a fixed text: their messages may
    quote a service's URL or token. Below WARNING they are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        record.msg = f"{record.name}: a notification service reported a problem (not quoted)"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True


def _quiet() -> None:
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietApprise) for f in logger.filters):
            logger.addFilter(QuietApprise())


def _format(action: Acting) -> str:
    settings = action.settings
    return settings.format if isinstance(settings, AppriseAction) else "markdown"


def _render(action: Acting, name: str, context: Mapping[str, Any]) -> str:
    markdown = name == "body" and _format(action) == "markdown"
    finalize = escaping(markdown_escape) if markdown else None
    return render_template(action, name, context, TEMPLATES, finalize=finalize)


def _payload(title: str, body: str, form: str) -> dict[str, str]:
    return {"title": truncate(one_line(title), TITLE), "body": truncate(body, BODY), "format": form}


def _apprise(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    title = _render(action, "title", context) or f"{context['headline']}: {context['name']}"
    body = _render(action, "body", context).strip() or title
    payload = _payload(title, body, _format(action))
    return Rendered("apprise", payload, summary_line(payload["title"]))


def _apprise_digest(action: Acting, digest: Digest) -> Rendered:
    form = _format(action)
    escape = markdown_escape if form == "markdown" else str
    lines = [f"- {escape(line)}" for line in digest.lines]
    if digest.more(len(lines)):
        lines.append(MORE.format(digest.more(len(lines))))
    lines.append(f"Route: {escape(digest.route)}")
    payload = _payload(digest.head, "\n".join(lines), form)
    return Rendered("apprise", payload, summary_line(f"digest: {digest.head}"))


def _with_note(rendered: Rendered, note: str) -> Rendered:
    payload = rendered.payload
    if not isinstance(payload, dict):
        return rendered
    escape = markdown_escape if payload.get("format") == "markdown" else str
    body = f"{payload['body']}\n\n{escape(note)}"
    return Rendered("apprise", {**payload, "body": body}, rendered.summary)


def _notify(url: str, payload: Mapping[str, str]) -> DeliveryError | None:
    """Send through Apprise (blocking); the failure, if any, never quoting the URL."""
    try:
        import apprise  # noqa: PLC0415 - an optional extra, imported only when used
    except ImportError:
        return DeliveryError("apprise", APPRISE_HINT, retryable=False)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return DeliveryError("apprise", "Apprise cannot read the URL", retryable=False)
    try:
        sent = notifier.notify(
            body=payload["body"], title=payload["title"], body_format=payload["format"]
        )
    except Exception as exc:  # a plugin may raise anything; its message may quote the URL
        return DeliveryError("apprise", type(exc).__name__, retryable=True)
    if not sent:
        return DeliveryError("apprise", "the service did not take the notification", retryable=True)
    return None


async def send(
    action: AppriseAction,
    payload: Mapping[str, str],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> None:
    """Notify through the action's Apprise URL (in a thread: Apprise blocks). Raises
    :class:`~workers.sinks.DeliveryError`: permanent for a URL Apprise cannot read or Apprise
    missing, retryable for a service that did not take it. ``client`` is unused (Apprise
    sends with its own), and so is ``delivery_id``."""
    _quiet()
    failure = await asyncio.to_thread(_notify, action.url.get_secret_value(), payload)
    if failure is not None:
        raise failure


DESTINATION = Destination(
    name="apprise",
    settings=AppriseAction,
    render=_apprise,
    digest=_apprise_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    note=_with_note,
    pace=1.0,
)
