"""What every destination's rendering shares: the template context, the template environment
with per-dialect escaping, plain-text helpers (one line, cut), links and the parts of a digest.
Pure: no I/O and no clock.

A destination renders its templates with :func:`render_template`, naming how values are escaped
on output (``finalize``: a function of each value, :func:`json_value` for JSON string content, or
``None`` for plain text; ``html=True`` for HTML autoescape). Event data only ever fills template
values: it is never parsed as a template.
"""

import hashlib
import json
import re
import traceback
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from jinja2 import Environment, Template, TemplateSyntaxError
from markupsafe import Markup

from config.templates import compile_template, environment

Payload = dict[str, Any] | str
Finalize = Callable[[Any], str]
"""How a value a template outputs is escaped (``Markup`` values are the caller's to pass
through, see :func:`escaping`)."""

SUMMARY = 300
ERROR_EXCERPT = 2000
"""Characters of an event's error a notification shows (``excerpt`` in templates)."""
DIGEST_LINES = 50
"""Events a digest lists one by one at most; the rest are counted as "… and N more"."""
DIGEST_LINE = 200
LINK_MAX = 500
"""The longest link a digest line carries."""
MORE = "… and {} more"


class RenderError(ValueError):
    """A template failed at render time, or rendered something its sink cannot send."""


@dataclass(frozen=True)
class Rendered:
    """What one action sends: the payload its destination's ``send`` takes. ``summary`` is one
    line for logs and timelines."""

    sink: str
    payload: Payload
    summary: str


class Templated(Protocol):
    """What rendering reads of an action: its destination's name and its own templates."""

    @property
    def sink(self) -> str: ...

    @property
    def templates(self) -> Mapping[str, str]: ...


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


# Templates ------------------------------------------------------------------------------------


def escaping(escape: Callable[[str], str]) -> Finalize:
    """A ``finalize`` that escapes each value with ``escape``, except ``|safe`` ones."""
    return _escapers(escape)


@cache
def _escapers(escape: Callable[[str], str]) -> Finalize:
    def finalize(value: Any) -> str:
        return str(value) if isinstance(value, Markup) else escape(str(value))

    return finalize


def json_value(value: Any) -> str:
    """A value as JSON string content (or a whole JSON value, for numbers, lists, …)."""
    if isinstance(value, Markup):
        return str(value)
    if value is None or isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)[1:-1]  # str() raises for Undefined


@cache
def _environment(finalize: Finalize) -> Environment:
    """The shared text environment, escaping each value it outputs (an overlay keeps the
    sandbox and strict undefined)."""
    return environment(False).overlay(finalize=finalize)


@lru_cache(maxsize=512)
def _compile(source: str, finalize: Finalize | None, html: bool) -> Template:
    if finalize is None:
        return compile_template(source, html=html)
    try:
        return _environment(finalize).from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template does not compile: line {exc.lineno}: {exc.message}") from None


def render_template(
    action: Templated,
    name: str,
    context: Mapping[str, Any],
    defaults: Mapping[str, str],
    *,
    finalize: Finalize | None = None,
    html: bool = False,
) -> str:
    """Render the action's template ``name``: its own, else ``defaults[name]``. Raise
    :class:`RenderError` naming the sink and template."""
    if name in action.templates:
        source, label = action.templates[name], f"{action.sink} template {name!r}"
    else:
        source, label = defaults[name], f"{action.sink} default template {name!r}"
    try:
        template = _compile(source, finalize, html)
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


def template_context(
    event: Mapping[str, Any],
    *,
    resolved: bool,
    route: str,
    links: Mapping[str, str] | None,
    digest: "Digest | None" = None,
) -> dict[str, Any]:
    return {
        "event": event,
        "resolved": resolved,
        "route": route,
        "links": safe_links(event, links),
        "headline": headline_of(event, resolved),
        "name": name_of(event),
        "duration": human_duration(event.get("duration_ms")),
        "excerpt": excerpt_of(event.get("error")),
        "change": str(event.get("change") or ""),
        "digest": digest is not None,
        "events": list(digest.events) if digest else [event],
        "count": len(digest.events) if digest else 1,
        "group": dict(digest.group) if digest else {},
    }


def excerpt_of(error: object) -> str:
    if not isinstance(error, str):
        return ""
    return truncate(error.replace("\r\n", "\n").replace("\r", "\n").strip(), ERROR_EXCERPT)


def headline_of(event: Mapping[str, Any], resolved: bool) -> str:
    if resolved:
        return "Recovered"
    return _HEADLINES.get(str(event.get("kind")), f"Event {event.get('event') or 'other'}")


def name_of(event: Mapping[str, Any]) -> str:
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


def safe_links(event: Mapping[str, Any], extra: Mapping[str, str] | None) -> dict[str, str]:
    given = {"execution": event.get("entity_url"), **(extra or {})}
    return {name: url for name, value in given.items() if (url := _safe_url(value))}


def link_label(name: str) -> str:
    return "Open execution" if name == "execution" else name.replace("_", " ").capitalize()


def event_time(event: Mapping[str, Any]) -> str | None:
    value = event.get("finished_at") or event.get("received_at")
    return value if isinstance(value, str) else None


def without_raw(event: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "raw"}


# Text -----------------------------------------------------------------------------------------

_BREAKS = frozenset(("Cc", "Zl", "Zp"))


def one_line(text: str) -> str:
    """Control characters and line breaks become spaces; runs of spaces one."""
    cleaned = "".join(" " if unicodedata.category(c) in _BREAKS else c for c in text)
    return " ".join(cleaned.split())


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def summary_line(text: str) -> str:
    return truncate(one_line(text), SUMMARY)


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [], {})}


def short_key(text: str, limit: int, what: str) -> str:
    """One line; an over-long key is shortened with a hash, so distinct keys stay distinct."""
    key = one_line(text)
    if not key:
        raise RenderError(f"{what} rendered an empty key")
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: limit - len(digest) - 1]}:{digest}"


def mrkdwn(text: str) -> str:
    """Escape ``text`` for Slack mrkdwn: ``&``, ``<`` and ``>``, the characters that start
    mentions and links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>])")


def markdown_escape(text: str) -> str:
    """``text`` with every character markdown reads (and ``<``, ``>``, which start HTML and
    mentions) escaped by a backslash."""
    return _MARKDOWN.sub(r"\\\1", text)


def escape_within(text: str, limit: int, escape: Callable[[str], str]) -> str:
    """``text`` escaped with ``escape``, cut so the escaped form keeps within ``limit``."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    pieces, size = [], 0
    for char in text:
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces).rstrip() + "…"


# Digests --------------------------------------------------------------------------------------


class Digest:
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
        self.head = one_line(title or f"{count} {noun}" + (f": {values}" if values else ""))
        self.lines = [digest_line(event) for event in events[:DIGEST_LINES]]
        self.links = [safe_links(event, None).get("execution") for event in events[:DIGEST_LINES]]

    @property
    def last(self) -> Mapping[str, Any]:
        return self.events[-1]

    def more(self, shown: int) -> int:
        return len(self.events) - shown

    def common(self, key: str) -> Any:
        """The value of ``key`` all the events share, else ``None``."""
        values = {json.dumps(event.get(key), sort_keys=True) for event in self.events}
        return self.events[0].get(key) if len(values) == 1 else None


def digest_line(event: Mapping[str, Any]) -> str:
    when = clock(event_time(event))
    line = f"{when} {headline_of(event, False)}: {name_of(event)}".strip()
    error = event.get("error")
    if isinstance(error, str) and error.strip():
        line += f" - {error.strip().splitlines()[0]}"
    return truncate(one_line(line), DIGEST_LINE)


def clock(value: str | None) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%H:%M:%S") if value else ""
    except ValueError:
        return ""


def fit(lines: Sequence[str], budget: int, separator: str) -> list[str]:
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


def pack(lines: Sequence[str], limit: int) -> list[str]:
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
