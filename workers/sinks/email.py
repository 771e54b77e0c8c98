"""Email over SMTP: ``smtplib`` in a thread, plain, STARTTLS or implicit TLS, optional login.
Read by people, so a storm collapses into one digest mail.

The message is ``multipart/alternative``, text part first and HTML part last (clients show the
last part they understand), with ``From``, ``To``, ``Date``, ``Auto-Submitted`` and a
``Message-ID`` derived from the delivery id, so a retried delivery is the same message. The
subject is flattened to one line before it is set, and ``email.policy.SMTP`` refuses a header
with a line break anyway: no event data can add a header.

Errors: SMTP 4xx replies, connection errors, timeouts and TLS failures are retryable; 5xx
replies, a refused login and a server lacking STARTTLS or AUTH are permanent. The server's
reply text is never quoted (it may echo what we sent); the reply code is ``status``.
"""

import asyncio
import email.policy
import email.utils
import hashlib
import html
import logging
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx

from config.sinks import EmailAction, SmtpServer
from workers.sinks import DeliveryError
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    Digest,
    Rendered,
    one_line,
    render_template,
    summary_line,
    truncate,
)

__all__ = ["DESTINATION", "send"]

log = logging.getLogger("flowhooks.sinks.email")

MAX_SUBJECT = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")

SUBJECT = 200
"""Characters of a rendered subject at most."""
MORE = "… and {} more"


TEXT = """\
{{ headline }}: {{ name }}

Flow:      {{ event.flow_name or "-" }}{% if event.flow_id %} (id {{ event.flow_id }}){% endif %}
Status:    {{ event.status or event.kind }}
Source:    {{ event.source }}
Audit id:  {{ event.audit_id or "-" }}
Duration:  {{ duration or "-" }}
Time:      {{ event.finished_at or event.received_at }}
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

HTML = """\
<!doctype html>
<html><body style="font-family: sans-serif">
<h2>{{ headline }}: {{ name }}</h2>
<table cellpadding="4">
<tr><th align="left">Flow</th><td>{{ event.flow_name or "-" }}\
{% if event.flow_id %} (id {{ event.flow_id }}){% endif %}</td></tr>
<tr><th align="left">Status</th><td>{{ event.status or event.kind }}</td></tr>
<tr><th align="left">Source</th><td>{{ event.source }}</td></tr>
<tr><th align="left">Audit id</th><td>{{ event.audit_id or "-" }}</td></tr>
<tr><th align="left">Duration</th><td>{{ duration or "-" }}</td></tr>
<tr><th align="left">Time</th><td>{{ event.finished_at or event.received_at }}</td></tr>
<tr><th align="left">Route</th><td>{{ route }}</td></tr>
{% if change %}<tr><th align="left">Changed</th><td>{{ change }}</td></tr>
{% endif %}\
</table>
{% if excerpt %}<h3>Error</h3>
<pre style="white-space: pre-wrap">{{ excerpt }}</pre>
{% endif %}\
{% for label, url in links.items() %}\
<p><a href="{{ url }}">{{ "Open execution" if label == "execution" else label }}</a></p>
{% endfor %}\
</body></html>
"""

TEMPLATES = {"subject": "[flowhooks] {{ headline }}: {{ name }}", "text": TEXT, "html": HTML}


def _render(action: Acting, name: str, context: Mapping[str, Any]) -> str:
    return render_template(action, name, context, TEMPLATES, html=name == "html")


def _subject(text: str, fallback: str) -> str:
    return truncate(one_line(text) or one_line(fallback), SUBJECT)


def _email(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    fallback = f"[flowhooks] {context['headline']}: {context['name']}"
    subject = _subject(_render(action, "subject", context), fallback)
    payload = {
        "subject": subject,
        "text": _render(action, "text", context),
        "html": _render(action, "html", context),
    }
    return Rendered("email", payload, summary_line(subject))


def _email_digest(action: Acting, digest: Digest) -> Rendered:
    more = digest.more(len(digest.lines))
    tail = [MORE.format(more)] if more else []
    text_lines = [f"- {line}" for line in digest.lines] + tail
    text = f"{digest.head}\n\n" + "\n".join(text_lines) + f"\n\nRoute: {digest.route}\n"
    items = "".join(f"<li>{html.escape(line)}</li>\n" for line in digest.lines)
    more_html = f"<p>{html.escape(MORE.format(more))}</p>\n" if more else ""
    page = (
        '<!doctype html>\n<html><body style="font-family: sans-serif">\n'
        f"<h2>{html.escape(digest.head)}</h2>\n<ul>\n{items}</ul>\n{more_html}"
        f"<p>Route: {html.escape(digest.route)}</p>\n</body></html>\n"
    )
    subject = _subject(f"[flowhooks] {digest.head}", "[flowhooks] digest")
    payload = {"subject": subject, "text": text, "html": page}
    return Rendered("email", payload, summary_line(subject))


def _with_note(rendered: Rendered, note: str) -> Rendered:
    """The mail with ``note`` as one more paragraph."""
    payload = rendered.payload
    if not isinstance(payload, dict):
        return rendered
    page = str(payload.get("html", ""))
    paragraph = f"<p>{html.escape(note)}</p>\n"
    page = (
        page.replace("</body>", paragraph + "</body>", 1) if "</body>" in page else page + paragraph
    )
    text = f"{payload.get('text', '')}\n{note}\n"
    return Rendered("email", {**payload, "text": text, "html": page}, rendered.summary)


async def send(
    action: EmailAction,
    payload: Mapping[str, str],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> None:
    """Mail ``payload`` (``subject``, ``text``, ``html``; ``html`` may be empty) to the
    action's recipients. Raises :class:`~workers.sinks.DeliveryError`; ``client`` is unused.

    If the server accepts some recipients and refuses others, the delivery counts as done (a
    retry would mail the accepted ones twice) and the refused addresses are logged.
    """
    message = _message(action, payload, delivery_id, datetime.now(UTC))
    failure = await asyncio.to_thread(_deliver, action, message)
    if failure is not None:
        raise failure


def _message(
    action: EmailAction, payload: Mapping[str, str], delivery_id: str, now: datetime
) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = _one_line(payload["subject"])
    message["From"] = action.sender
    message["To"] = ", ".join(action.to)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = _message_id(delivery_id, action.sender)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    return message


def _one_line(text: str) -> str:
    flat = " ".join(_CONTROL.sub(" ", text).split())  # split() also takes U+2028, U+0085…
    return flat if len(flat) <= MAX_SUBJECT else flat[: MAX_SUBJECT - 1] + "…"


def _message_id(delivery_id: str, sender: str) -> str:
    local = delivery_id if _ID.fullmatch(delivery_id) else None
    local = local or hashlib.sha256(delivery_id.encode()).hexdigest()[:40]
    domain = sender.rpartition("@")[2]
    return f"<{local}@{domain if _DOMAIN.fullmatch(domain) else 'flowhooks'}>"


def _deliver(action: EmailAction, message: EmailMessage) -> DeliveryError | None:
    """Runs in a worker thread; returns the failure rather than raising it, so that nothing
    chained to it (smtplib quotes the server's replies) travels with it."""
    try:
        refused = _transmit(action.smtp, message, action.sender, action.to)
    except smtplib.SMTPAuthenticationError as exc:
        return _failure("login refused", exc.smtp_code, retryable=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        retryable = all(400 <= code < 500 for code in codes)
        return _failure("recipients refused", codes[0] if codes else None, retryable=retryable)
    except smtplib.SMTPResponseException as exc:
        retryable = not 500 <= exc.smtp_code < 600
        return _failure(type(exc).__name__, exc.smtp_code, retryable=retryable)
    except smtplib.SMTPServerDisconnected:
        return _failure("SMTPServerDisconnected", None, retryable=True)
    except smtplib.SMTPNotSupportedError:
        return _failure("server lacks STARTTLS, AUTH or SMTPUTF8", None, retryable=False)
    except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism in common
        return _failure(type(exc).__name__, None, retryable=False)
    except OSError as exc:  # refused, unreachable, timed out, TLS handshake or certificate
        return _failure(type(exc).__name__, None, retryable=True)
    if refused:
        listed = ", ".join(f"{address} ({code})" for address, (code, _) in refused.items())
        log.warning("recipients refused: %s", listed, extra={"sink": "email"})
    return None


def _failure(reason: str, code: int | None, *, retryable: bool) -> DeliveryError:
    text = f"SMTP {code} {reason}" if code is not None else reason
    return DeliveryError("email", text, retryable=retryable, status=code)


def _transmit(
    server: SmtpServer, message: EmailMessage, sender: str, recipients: Sequence[str]
) -> dict[str, tuple[int, bytes]]:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if server.tls:
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout, context=context)
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    with smtp:
        smtp.ehlo()
        if server.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if server.username is not None and server.password is not None:
            smtp.login(server.username, server.password.get_secret_value())
        return smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))


DESTINATION = Destination(
    name="email",
    settings=EmailAction,
    render=_email,
    digest=_email_digest,
    send=send,
    payload=(Mapping,),
    templates=TEMPLATES,
    note=_with_note,
)
