"""The ``log`` sink: the rendered notification as a line of the worker's log (logger
``flowhooks.deliveries``), which is what ``flowhooks dev`` shows a newcomer."""

import logging

import httpx

from config.schema import LogAction

logger = logging.getLogger("flowhooks.deliveries")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


async def send(
    action: LogAction, payload: str, *, client: httpx.AsyncClient, delivery_id: str
) -> None:
    """Log ``payload`` at the action's level with ``delivery_id`` as a field. Never raises
    :class:`~workers.sinks.DeliveryError`; ``client`` is unused."""
    logger.log(
        _LEVELS[action.level], "%s", payload, extra={"sink": "log", "delivery_id": delivery_id}
    )
