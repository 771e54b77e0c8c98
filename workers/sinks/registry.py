"""The destinations, by name: the one table the config schema, rendering, ``routes test``, the
lanes and delivery read. Adding a destination is one module under :mod:`workers.sinks` that
exports ``DESTINATION``, listed here."""

from collections.abc import Mapping

import httpx

from workers.sinks import (
    apprise,
    email,
    google_chat,
    log,
    opsgenie,
    pagerduty,
    slack,
    teams,
    webhook,
)
from workers.sinks.destination import Acting, Destination

__all__ = ["DESTINATIONS", "send"]

DESTINATIONS: Mapping[str, Destination] = {
    destination.name: destination
    for destination in (
        slack.DESTINATION,
        pagerduty.DESTINATION,
        email.DESTINATION,
        webhook.DESTINATION,
        log.DESTINATION,
        teams.DESTINATION,
        opsgenie.DESTINATION,
        google_chat.DESTINATION,
        apprise.DESTINATION,
    )
}


async def send(
    action: Acting, payload: object, *, client: httpx.AsyncClient, delivery_id: str
) -> int | None:
    """Deliver ``payload`` through the destination ``action`` names (see each one's ``send``):
    the HTTP status, ``None`` for one that is not HTTP.

    Payload shapes: a JSON object for slack, pagerduty and webhook (a JSON array too for
    webhook), ``{"subject", "text", "html"}`` strings for email, a string for log. Raises
    :class:`~workers.sinks.DeliveryError`, ``TypeError`` for a payload of the wrong shape, or
    ``KeyError`` for an action no destination serves.
    """
    destination = DESTINATIONS[action.sink]
    return await destination.deliver(
        action.settings, payload, client=client, delivery_id=delivery_id
    )
