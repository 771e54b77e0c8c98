"""What an action sends for an event: a Slack message, a PagerDuty event, a mail, a webhook
body or a log line, each rendered by its destination (:mod:`workers.sinks.registry`). No I/O
and no clock; the same call serves the worker and ``routes test``.

Each destination renders the templates it declares, taking the action's own (``templates:``)
over its defaults (:data:`DEFAULT_TEMPLATES`), in the sandboxed, strict environment of
:mod:`config.templates`. Event data only ever fills template values: it is never parsed as a
template, so ``{{ 7*7 }}`` in a flow name stays text. Values are escaped on output
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

from collections.abc import Mapping, Sequence
from typing import Any

from config.schema import Action
from workers.sinks.registry import DESTINATIONS
from workers.sinks.text import (
    DIGEST_LINES,
    ERROR_EXCERPT,
    Digest,
    Rendered,
    RenderError,
    human_duration,
    mrkdwn,
    template_context,
)

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

DEFAULT_TEMPLATES: Mapping[str, Mapping[str, str]] = {
    name: {key: source for key, source in destination.templates.items() if source}
    for name, destination in DESTINATIONS.items()
}
"""Each destination's default templates (the webhook's default body is built in code)."""


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
    destination = DESTINATIONS.get(action.sink)
    if destination is None:
        raise RenderError(f"{action.sink} actions send no notification")
    context = template_context(event, resolved=resolved, route=route, links=links)
    return destination.render(action, event, context)


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
    :data:`DIGEST_LINES` and within the destination's limits, then "… and N more". A webhook's
    own ``body`` template is rendered with the digest context; other destinations use their
    built-in digest format. PagerDuty gets the flow's usual dedup key when all the events are
    one flow's, else one per group. Raise :class:`RenderError`."""
    destination = DESTINATIONS.get(action.sink)
    if destination is None:
        raise RenderError(f"{action.sink} actions send no notification")
    if not events:
        raise RenderError("a digest needs at least one event")
    return destination.digest(action, Digest(events, route, group, title))


def with_note(rendered: Rendered, note: str | None) -> Rendered:
    """``rendered`` with one more line of plain text at its end (a Slack context block, a
    paragraph of an email), for the destinations read by people; others unchanged."""
    if not note or rendered.sink not in DESTINATIONS:
        return rendered
    return DESTINATIONS[rendered.sink].note(rendered, note)
