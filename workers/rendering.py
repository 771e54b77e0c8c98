"""What an action sends for an event: a Slack message, a PagerDuty event, a mail, a webhook body
or a log line. Pure: no I/O and no clock; the same call serves the worker and ``routes test``.

Each sink renders the templates :data:`config.schema.TEMPLATES` names for it, taking the
action's own (``templates:``) over :data:`DEFAULT_TEMPLATES`, in the sandboxed, strict
environment of :mod:`config.templates`. Event data only ever fills template values: it is never
parsed as a template, so ``{{ 7*7 }}`` in a flow name stays text. Values are escaped on output
the way the sink's format needs, while the template's own text is the operator's markup:

- slack ``title``/``text``: escaped for mrkdwn (``&``, ``<``, ``>``), so ``<!channel>`` in a flow
  name mentions nobody;
- email ``html``: HTML autoescape; email ``subject``: one line, control characters become
  spaces, so no header can be injected;
- webhook ``body``: escaped as JSON string content, so ``"{{ event.flow_name }}"`` is safe inside
  quotes and ``{{ event|tojson }}`` embeds a whole value; the result must be a JSON object;
- pagerduty ``summary``/``dedup_key``, email ``text``, log ``text``: plain text (the summary and
  the log line are made one line).

``|safe`` marks a value as already escaped, in every sink.

Template context: ``event`` (the stored event, as ``Event.model_dump(mode="json")`` gives it),
``resolved``, ``route``, ``links`` (name to http(s) URL; ``execution`` is the event's
``entity_url`` when it is one), and, precomputed: ``headline`` ("Flow failed", "Recovered", …),
``name`` (the flow's name, else its id, else the event name), ``duration`` ("12m 34s", or ""),
``excerpt`` (the error, cut to :data:`ERROR_EXCERPT` characters), ``change`` (the flow's latest
change before a failure, "changed 2 h before by alice: update", on an instance with ``audit:
true``; else ""), and ``digest``, ``events``,
``count``, ``group`` (false, ``[event]``, 1, ``{}`` for one event; in a digest, ``event`` is the
last of the ``events``), so one template can serve both.

Errors: :class:`RenderError` (a ``ValueError``) when a template fails at render time or gives
something its sink cannot send. Its message names the sink and template and never holds a
secret: no secret is in the context (the action's settings are not).
"""

import hashlib
import html
import json
import traceback
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from jinja2 import Environment, Template, TemplateSyntaxError
from markupsafe import Markup

from config.schema import Action
from config.templates import compile_template, environment

__all__ = [
    "DEFAULT_TEMPLATES",
    "DIGEST_LINES",
    "ERROR_EXCERPT",
    "RenderError",
    "Rendered",
    "human_duration",
    "mrkdwn",
    "render",
    "render_digest",
    "with_note",
]

Payload = dict[str, Any] | str

# Limits ---------------------------------------------------------------------------------------

SLACK_BLOCKS = 50
SLACK_SECTION = 3000
SLACK_HEADER = 150
SLACK_FALLBACK = 3000
PAGERDUTY_SUMMARY = 1024
PAGERDUTY_DEDUP_KEY = 255
SUBJECT = 200
LOG_LINE = 2000
SUMMARY = 300
ERROR_EXCERPT = 2000
"""Characters of an event's error a notification shows (``excerpt`` in templates)."""
DIGEST_LINES = 50
"""Events a digest lists one by one at most; the rest are counted as "… and N more"."""
DIGEST_LINE = 200
LINK_MAX = 500
"""The longest link a digest line of Slack carries."""
MORE = "… and {} more"


class RenderError(ValueError):
    """A template failed at render time, or rendered something its sink cannot send."""


@dataclass(frozen=True)
class Rendered:
    """What one action sends. ``payload`` is a JSON-able dict for slack, pagerduty and webhook
    (PagerDuty's without ``routing_key``: the sink adds it), ``{"subject", "text", "html"}`` for
    email, a str for log. ``summary`` is one line for logs and timelines."""

    sink: str
    payload: Payload
    summary: str


# Default templates ----------------------------------------------------------------------------

_SLACK_TEXT = """\
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

_EMAIL_TEXT = """\
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

_EMAIL_HTML = """\
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

DEFAULT_TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "slack": {"title": "{{ headline }}: {{ name }}", "text": _SLACK_TEXT},
    "pagerduty": {
        "summary": "{{ headline }}: {{ name }} ({{ event.source }})"
        "{% if excerpt %}: {{ excerpt }}{% endif %}",
        "dedup_key": "flowhooks:{{ event.source }}:"
        "{% if event.flow_id %}{{ event.flow_id }}"
        "{% elif event.kind == 'expectation.missed' %}expect:{{ event.entity_id }}"
        "{% elif event.kind == 'webhook.missing' %}webhooks"
        "{% else %}event:{{ event.id }}{% endif %}",
    },
    "email": {
        "subject": "[flowhooks] {{ headline }}: {{ name }}",
        "text": _EMAIL_TEXT,
        "html": _EMAIL_HTML,
    },
    "webhook": {},
    "log": {
        "text": "{% if resolved %}resolved {% endif %}{{ event.kind }}: {{ name }}"
        "{% if event.flow_id %} (flow {{ event.flow_id }}){% endif %}"
        " status={{ event.status or '-' }} route={{ route }}"
        "{% if change %} {{ change }}{% endif %}"
        '{% if excerpt %} error={{ excerpt|truncate(200, end="…") }}{% endif %}',
    },
}
"""Each sink's templates (the webhook's default body is built in code, see :func:`render`)."""

_HEADLINES = {
    "flow.failed": "Flow failed",
    "flow.succeeded": "Flow succeeded",
    "flow.warning": "Flow finished with warnings",
    "flow.canceled": "Flow canceled",
    "flow.running": "Flow running",
    "flow.timeout": "Flow timed out",
    "join.expired": "Join expired",
    "expectation.missed": "Expected success missed",
    "webhook.missing": "Webhooks missing",
    "webhook.resumed": "Webhooks resumed",
    "resource.changed": "Resource changed",
}


# Public functions -----------------------------------------------------------------------------


def render(
    action: Action,
    event: Mapping[str, Any],
    *,
    resolved: bool,
    route: str,
    links: Mapping[str, str] | None = None,
) -> Rendered:
    """Render what ``action`` sends for ``event`` (a stored canonical event) matched by
    ``route``; ``resolved`` when it closes an incident. ``links`` adds named http(s) URLs
    (others are dropped) after the execution's own. Raise :class:`RenderError`."""
    renderer = _RENDERERS.get(action.sink)
    if renderer is None:
        raise RenderError(f"{action.sink} actions send no notification")
    return renderer(action, event, _context(event, resolved=resolved, route=route, links=links))


def render_digest(
    action: Action,
    events: Sequence[Mapping[str, Any]],
    *,
    route: str,
    group: Mapping[str, str],
    title: str | None = None,
) -> Rendered:
    """One message for many events of a ``group`` (label name to value): a header with the
    count and the group's values (or ``title``), then one short line per event, at most
    :data:`DIGEST_LINES` and within the sink's limits, then "… and N more". A webhook's own
    ``body`` template is rendered with the digest context; other sinks use the built-in digest
    format. PagerDuty
    gets the flow's usual dedup key when all the events are one flow's, else one per group.
    Raise :class:`RenderError`."""
    renderer = _DIGESTS.get(action.sink)
    if renderer is None:
        raise RenderError(f"{action.sink} actions send no notification")
    if not events:
        raise RenderError("a digest needs at least one event")
    return renderer(action, _Digest(events, route, group, title))


def with_note(rendered: Rendered, note: str | None) -> Rendered:
    """``rendered`` with one more line of plain text at its end (a Slack context block, a
    paragraph of an email), for the sinks read by people; others unchanged."""
    if not note:
        return rendered
    payload = rendered.payload
    if rendered.sink == "slack" and isinstance(payload, dict):
        blocks = list(payload.get("blocks") or [])
        if len(blocks) < SLACK_BLOCKS:
            blocks.append(_context_block(_escape_within(note, SLACK_SECTION)))
        text = _cut_mrkdwn(f"{payload.get('text', '')}\n{mrkdwn(note)}", SLACK_FALLBACK)
        return Rendered("slack", {**payload, "text": text, "blocks": blocks}, rendered.summary)
    if rendered.sink == "email" and isinstance(payload, dict):
        page = str(payload.get("html", ""))
        paragraph = f"<p>{html.escape(note)}</p>\n"
        page = (
            page.replace("</body>", paragraph + "</body>", 1)
            if "</body>" in page
            else page + paragraph
        )
        text = f"{payload.get('text', '')}\n{note}\n"
        return Rendered("email", {**payload, "text": text, "html": page}, rendered.summary)
    return rendered


# Templates ------------------------------------------------------------------------------------

Dialect = Literal["text", "html", "mrkdwn", "json"]


def _dialect(sink: str, name: str) -> Dialect:
    if sink == "slack":
        return "mrkdwn"
    if sink == "webhook":
        return "json"
    return "html" if name == "html" else "text"


def _mrkdwn_value(value: Any) -> str:
    return str(value) if isinstance(value, Markup) else mrkdwn(str(value))


def _json_value(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    if value is None or isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)[1:-1]  # str() raises for Undefined


@cache
def _escaping(dialect: Literal["mrkdwn", "json"]) -> Environment:
    """The shared text environment, escaping each value it outputs (an overlay keeps the
    sandbox and strict undefined)."""
    finalize = _mrkdwn_value if dialect == "mrkdwn" else _json_value
    return environment(False).overlay(finalize=finalize)


@lru_cache(maxsize=512)
def _compile(source: str, dialect: Dialect) -> Template:
    if dialect in ("text", "html"):
        return compile_template(source, html=dialect == "html")
    try:
        return _escaping(dialect).from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template does not compile: line {exc.lineno}: {exc.message}") from None


def _source(action: Action, name: str) -> tuple[str, str]:
    """The action's template ``name`` and how to call it in errors: its own, else the default."""
    if name in action.templates:
        return action.templates[name], f"{action.sink} template {name!r}"
    return DEFAULT_TEMPLATES[action.sink][name], f"{action.sink} default template {name!r}"


def _render(action: Action, name: str, context: Mapping[str, Any]) -> str:
    """Render the action's template ``name`` (its own, else the default)."""
    source, label = _source(action, name)
    try:
        template = _compile(source, _dialect(action.sink, name))
    except ValueError as exc:
        raise RenderError(f"{label}: {exc}") from None
    try:
        return template.render(context)
    except Exception as exc:  # a template can fail in any way; each is the same error to us
        raise RenderError(f"{label}{_where(exc)}: {type(exc).__name__}: {exc}") from None


def _where(exc: BaseException) -> str:
    lines = [
        f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"
    ]
    return f", line {lines[-1]}" if lines else ""


# Context --------------------------------------------------------------------------------------


def _context(
    event: Mapping[str, Any],
    *,
    resolved: bool,
    route: str,
    links: Mapping[str, str] | None,
    digest: "_Digest | None" = None,
) -> dict[str, Any]:
    return {
        "event": event,
        "resolved": resolved,
        "route": route,
        "links": _links(event, links),
        "headline": _headline(event, resolved),
        "name": _name(event),
        "duration": human_duration(event.get("duration_ms")),
        "excerpt": _excerpt(event.get("error")),
        "change": str(event.get("change") or ""),
        "digest": digest is not None,
        "events": list(digest.events) if digest else [event],
        "count": len(digest.events) if digest else 1,
        "group": dict(digest.group) if digest else {},
    }


def _excerpt(error: object) -> str:
    if not isinstance(error, str):
        return ""
    return _truncate(error.replace("\r\n", "\n").replace("\r", "\n").strip(), ERROR_EXCERPT)


def _headline(event: Mapping[str, Any], resolved: bool) -> str:
    if resolved:
        return "Recovered"
    return _HEADLINES.get(str(event.get("kind")), f"Event {event.get('event') or 'other'}")


def _name(event: Mapping[str, Any]) -> str:
    for key, prefix in (("flow_name", ""), ("flow_id", "flow "), ("event", ""), ("id", "")):
        if event.get(key):
            return f"{prefix}{event[key]}"
    return "unnamed"


def human_duration(ms: object) -> str:
    """``754000`` as ``"12m 34s"``; under a second in ms; ``""`` when unknown."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        return ""
    if ms < 1000:
        return f"{ms}ms"
    seconds, parts = ms // 1000, list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if parts or seconds >= size or unit == "s":
            value, seconds = divmod(seconds, size)
            parts.append(f"{value}{unit}")
    return " ".join(parts)


_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
"""Kept as they are in a URL; anything else (``|``, ``<``, ``>``, quotes, spaces, controls,
non-ASCII) is percent-encoded, so a URL cannot end a Slack link or an HTML attribute early."""


def _safe_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(url, safe=_URL_SAFE)


def _links(event: Mapping[str, Any], extra: Mapping[str, str] | None) -> dict[str, str]:
    given = {"execution": event.get("entity_url"), **(extra or {})}
    return {name: url for name, value in given.items() if (url := _safe_url(value))}


def _link_label(name: str) -> str:
    return "Open execution" if name == "execution" else name.replace("_", " ").capitalize()


def _time(event: Mapping[str, Any]) -> str | None:
    value = event.get("finished_at") or event.get("received_at")
    return value if isinstance(value, str) else None


def _without_raw(event: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "raw"}


# Text -----------------------------------------------------------------------------------------


def mrkdwn(text: str) -> str:
    """Escape ``text`` for Slack mrkdwn: ``&``, ``<`` and ``>``, the characters that start
    mentions and links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unmrkdwn(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_BREAKS = frozenset(("Cc", "Zl", "Zp"))


def _one_line(text: str) -> str:
    """Control characters and line breaks become spaces; runs of spaces one."""
    cleaned = "".join(" " if unicodedata.category(c) in _BREAKS else c for c in text)
    return " ".join(cleaned.split())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _escape_within(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn, cut so the escaped form keeps within ``limit``."""
    escaped = mrkdwn(text)
    if len(escaped) <= limit:
        return escaped
    pieces, size = [], 0
    for char in text:
        piece = mrkdwn(char)
        if size + len(piece) > limit - 1:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces).rstrip() + "…"


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


# Slack ----------------------------------------------------------------------------------------


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _context_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _footer(route: str, links: Mapping[str, str]) -> str:
    parts = [f"Route: {mrkdwn(route)}"]
    parts += [f"<{mrkdwn(url)}|{mrkdwn(_link_label(name))}>" for name, url in links.items()]
    return _cut_mrkdwn(" · ".join(parts), SLACK_SECTION)


def _slack(action: Action, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    title = _one_line(_render(action, "title", context))
    if not title:  # Slack refuses an empty header
        title = mrkdwn(f"{context['headline']}: {context['name']}")
    header = _cut_mrkdwn(title, SLACK_HEADER)
    blocks = [_header(header)]
    text = _render(action, "text", context).strip()
    if text:
        blocks.append(_section(_cut_mrkdwn(text, SLACK_SECTION)))
    fallback = title
    if context["excerpt"]:
        opening, closing = "*Error*\n```\n", "\n```"
        budget = SLACK_SECTION - len(opening) - len(closing)
        blocks.append(_section(opening + _escape_within(context["excerpt"], budget) + closing))
        first_line = context["excerpt"].splitlines()[0] if context["excerpt"].strip() else ""
        fallback += " - " + _escape_within(_truncate(first_line, 200), 1000)
    blocks.append(_context_block(_footer(context["route"], context["links"])))
    payload = {"text": _cut_mrkdwn(fallback, SLACK_FALLBACK), "blocks": blocks}
    return Rendered("slack", payload, _summary(_unmrkdwn(title)))


# PagerDuty ------------------------------------------------------------------------------------


def _dedup_key(text: str) -> str:
    """One line; an over-long key is shortened with a hash, so distinct keys stay distinct."""
    key = _one_line(text)
    if not key:
        raise RenderError("pagerduty template 'dedup_key' rendered an empty key")
    if len(key) <= PAGERDUTY_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: PAGERDUTY_DEDUP_KEY - len(digest) - 1]}:{digest}"


def _severity(action: Action) -> str:
    return action.pagerduty.severity if action.pagerduty is not None else "error"


def _pd_links(links: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"href": url, "text": _link_label(name)} for name, url in links.items()]


def _pagerduty(action: Action, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    key = _dedup_key(_render(action, "dedup_key", context))
    if context["resolved"]:
        return Rendered(
            "pagerduty", {"event_action": "resolve", "dedup_key": key}, f"resolve {key}"
        )
    summary = _one_line(_render(action, "summary", context))
    summary = _truncate(summary or f"{context['headline']}: {context['name']}", PAGERDUTY_SUMMARY)
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
        "timestamp": _time(event),
        "component": event.get("flow_name"),
        "group": event.get("source"),
        "class": event.get("kind"),
        "custom_details": _present(details),
    }
    body: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": _present(payload),
        "client": "flowhooks",
    }
    if context["links"]:
        body["links"] = _pd_links(context["links"])
    return Rendered("pagerduty", body, _summary(f"trigger {key}: {summary}"))


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [], {})}


# Email, webhook, log --------------------------------------------------------------------------


def _subject(text: str, fallback: str) -> str:
    return _truncate(_one_line(text) or _one_line(fallback), SUBJECT)


def _email(action: Action, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    fallback = f"[flowhooks] {context['headline']}: {context['name']}"
    subject = _subject(_render(action, "subject", context), fallback)
    payload = {
        "subject": subject,
        "text": _render(action, "text", context),
        "html": _render(action, "html", context),
    }
    return Rendered("email", payload, _summary(subject))


def _json_body(action: Action, context: Mapping[str, Any]) -> dict[str, Any]:
    text = _render(action, "body", context)
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RenderError(
            f"webhook template 'body' did not render JSON: {exc.msg} ({where})"
        ) from None
    except ValueError as exc:  # NaN or Infinity
        raise RenderError(f"webhook template 'body' did not render JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RenderError(
            f"webhook template 'body' must render a JSON object, not {type(body).__name__}"
        )
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _webhook(action: Action, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    if "body" in action.templates:
        body = _json_body(action, context)
    else:
        body = {
            "type": "flowhooks.notification",
            "resolved": context["resolved"],
            "route": context["route"],
            "event": _without_raw(event),
        }
    summary = f"{'resolved ' if context['resolved'] else ''}{event.get('kind')}: {context['name']}"
    return Rendered("webhook", body, _summary(summary))


def _log(action: Action, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    line = _truncate(_one_line(_render(action, "text", context)), LOG_LINE)
    return Rendered("log", line, _summary(line))


def _summary(text: str) -> str:
    return _truncate(_one_line(text), SUMMARY)


_RENDERERS: dict[str, Callable[[Action, Mapping[str, Any], Mapping[str, Any]], Rendered]] = {
    "slack": _slack,
    "pagerduty": _pagerduty,
    "email": _email,
    "webhook": _webhook,
    "log": _log,
}


# Digests --------------------------------------------------------------------------------------


class _Digest:
    """The parts every sink's digest is made of, in plain text."""

    def __init__(
        self,
        events: Sequence[Mapping[str, Any]],
        route: str,
        group: Mapping[str, str],
        title: str | None = None,
    ) -> None:
        self.events = events
        self.route = route
        self.group = group
        count = len(events)
        values = ", ".join(f"{key}={value}" for key, value in group.items())
        noun = "event" if count == 1 else "events"
        self.head = _one_line(title or f"{count} {noun}" + (f": {values}" if values else ""))
        self.lines = [_digest_line(event) for event in events[:DIGEST_LINES]]
        self.links = [_links(event, None).get("execution") for event in events[:DIGEST_LINES]]

    @property
    def last(self) -> Mapping[str, Any]:
        return self.events[-1]

    def more(self, shown: int) -> int:
        return len(self.events) - shown

    def common(self, key: str) -> Any:
        """The value of ``key`` all the events share, else ``None``."""
        values = {json.dumps(event.get(key), sort_keys=True) for event in self.events}
        return self.events[0].get(key) if len(values) == 1 else None


def _digest_line(event: Mapping[str, Any]) -> str:
    when = _clock(_time(event))
    line = f"{when} {_headline(event, False)}: {_name(event)}".strip()
    error = event.get("error")
    if isinstance(error, str) and error.strip():
        line += f" - {error.strip().splitlines()[0]}"
    return _truncate(_one_line(line), DIGEST_LINE)


def _clock(value: str | None) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%H:%M:%S") if value else ""
    except ValueError:
        return ""


def _fit(lines: Sequence[str], budget: int, separator: str) -> list[str]:
    """The leading ``lines`` whose join fits ``budget`` with room for a "more" marker."""
    kept: list[str] = []
    size = 0
    reserve = len(separator) + len(MORE.format(10**9))
    for line in lines:
        extra = len(line) + (len(separator) if kept else 0)
        if size + extra + reserve > budget:
            break
        kept.append(line)
        size += extra
    return kept


def _pack(lines: Sequence[str], limit: int) -> list[str]:
    """Lines joined by newlines into as few chunks of at most ``limit`` characters as fit."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def _slack_link(url: str | None) -> str:
    return f" <{url}|open>" if url and len(url) <= LINK_MAX else ""


def _slack_digest(action: Action, digest: _Digest) -> Rendered:
    head = _cut_mrkdwn(mrkdwn(digest.head), SLACK_HEADER)
    lines = [
        "• " + _escape_within(line, SLACK_SECTION - 2) + _slack_link(url)
        for line, url in zip(digest.lines, digest.links, strict=True)
    ]
    sections = _pack(lines, SLACK_SECTION)[: SLACK_BLOCKS - 2]
    shown = sum(section.count("\n") + 1 for section in sections)
    footer = [f"Route: {mrkdwn(digest.route)}"]
    if digest.more(shown):
        footer.append(MORE.format(digest.more(shown)))
    blocks = [_header(head), *map(_section, sections), _context_block(" · ".join(footer))]
    payload = {"text": _cut_mrkdwn(mrkdwn(digest.head), SLACK_FALLBACK), "blocks": blocks}
    return Rendered("slack", payload, _summary(f"digest: {digest.head}"))


def _pagerduty_digest(action: Action, digest: _Digest) -> Rendered:
    if digest.common("source") is not None and digest.common("flow_id"):
        context = _context(
            digest.last, resolved=False, route=digest.route, links=None, digest=digest
        )
        key = _dedup_key(_render(action, "dedup_key", context))
    else:
        values = ",".join(f"{key}={value}" for key, value in digest.group.items())
        key = _dedup_key(f"flowhooks:digest:{digest.route}:{values}")
    lines = _fit(digest.lines, PAGERDUTY_SUMMARY - len(digest.head) - 2, "; ")
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
        "summary": _truncate(summary, PAGERDUTY_SUMMARY),
        "source": f"flowhooks/{source}" if source else "flowhooks",
        "severity": _severity(action),
        "timestamp": _time(digest.last),
        "component": digest.common("flow_name"),
        "group": source,
        "class": digest.common("kind"),
        "custom_details": _present(details),
    }
    body = {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": _present(payload),
        "client": "flowhooks",
    }
    return Rendered("pagerduty", body, _summary(f"trigger {key}: digest: {digest.head}"))


def _email_digest(action: Action, digest: _Digest) -> Rendered:
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
    return Rendered("email", {"subject": subject, "text": text, "html": page}, _summary(subject))


def _webhook_digest(action: Action, digest: _Digest) -> Rendered:
    if "body" in action.templates:
        context = _context(
            digest.last, resolved=False, route=digest.route, links=None, digest=digest
        )
        body = _json_body(action, context)
    else:
        body = {
            "type": "flowhooks.digest",
            "route": digest.route,
            "group": dict(digest.group),
            "count": len(digest.events),
            "events": [_without_raw(event) for event in digest.events],
        }
    return Rendered("webhook", body, _summary(f"digest: {digest.head}"))


def _log_digest(action: Action, digest: _Digest) -> Rendered:
    start = f"digest route={digest.route} {digest.head}: "
    lines = _fit([_one_line(line) for line in digest.lines], LOG_LINE - len(start), "; ")
    line = start + "; ".join(lines)
    if digest.more(len(lines)):
        line += "; " + MORE.format(digest.more(len(lines)))
    line = _truncate(_one_line(line), LOG_LINE)
    return Rendered("log", line, _summary(line))


_DIGESTS: dict[str, Callable[[Action, _Digest], Rendered]] = {
    "slack": _slack_digest,
    "pagerduty": _pagerduty_digest,
    "email": _email_digest,
    "webhook": _webhook_digest,
    "log": _log_digest,
}
