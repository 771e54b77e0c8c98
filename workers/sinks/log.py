"""The ``log`` sink: the rendered notification as a line of the worker's log (logger
``flowhooks.deliveries``), which is what ``flowhooks dev`` shows a newcomer. One line, plain
text, at most :data:`LINE` characters."""

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from config.sinks import LogAction
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    Digest,
    Rendered,
    fit,
    one_line,
    render_template,
    summary_line,
    truncate,
)

__all__ = ["DESTINATION", "send"]

LINE = 2000
MORE = "… and {} more"

logger = logging.getLogger("flowhooks.deliveries")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


TEMPLATES = {
    "text": "{% if resolved %}resolved {% endif %}{{ event.kind }}: {{ name }}"
    "{% if event.flow_id %} (flow {{ event.flow_id }}){% endif %}"
    " status={{ event.status or '-' }} route={{ route }}"
    "{% if change %} {{ change }}{% endif %}"
    '{% if excerpt %} error={{ excerpt|truncate(200, end="…") }}{% endif %}',
}


def _log(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    line = truncate(one_line(render_template(action, "text", context, TEMPLATES)), LINE)
    return Rendered("log", line, summary_line(line))


def _log_digest(action: Acting, digest: Digest) -> Rendered:
    start = f"digest route={digest.route} {digest.head}: "
    lines = fit([one_line(line) for line in digest.lines], LINE - len(start), "; ")
    line = start + "; ".join(lines)
    if digest.more(len(lines)):
        line += "; " + MORE.format(digest.more(len(lines)))
    line = truncate(one_line(line), LINE)
    return Rendered("log", line, summary_line(line))


async def send(
    action: LogAction, payload: str, *, client: httpx.AsyncClient, delivery_id: str
) -> None:
    """Log ``payload`` at the action's level with ``delivery_id`` as a field. Never raises
    :class:`~workers.sinks.DeliveryError`; ``client`` is unused."""
    logger.log(
        _LEVELS[action.level], "%s", payload, extra={"sink": "log", "delivery_id": delivery_id}
    )


DESTINATION = Destination(
    name="log",
    settings=LogAction,
    render=_log,
    digest=_log_digest,
    send=send,
    payload=(str,),
    templates=TEMPLATES,
)
