"""What a destination is: the one record each module under :mod:`workers.sinks` exports as
``DESTINATION``, and :mod:`workers.sinks.registry` lists. Everything the rest of the code knows
about a destination (the config schema, rendering, ``routes test``, lanes, delivery) it reads
from here."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import BaseModel

from config.sinks import Settings
from workers.sinks.text import Digest, Rendered, Templated

__all__ = ["Acting", "Destination", "Renderer", "Sender"]


class Acting(Templated, Protocol):
    """What a destination reads of an action: its name, its templates and its settings."""

    @property
    def settings(self) -> BaseModel: ...


Renderer = Callable[[Acting, Mapping[str, Any], Mapping[str, Any]], Rendered]
"""``(action, event, context) -> Rendered``: the message for one event, or its resolve when
``context["resolved"]``."""
DigestRenderer = Callable[[Acting, Digest], Rendered]
Sender = Callable[..., Awaitable[int | None]]
"""``send(settings, payload, *, client: httpx.AsyncClient, delivery_id: str) -> int | None``:
the HTTP status, ``None`` for a destination that is not HTTP; raises ``DeliveryError``."""


def _keep(rendered: Rendered, note: str) -> Rendered:
    return rendered


@dataclass(frozen=True)
class Destination:
    """One destination. ``templates`` are its defaults, by the names an action may override;
    ``settings`` its config model (:mod:`config.sinks`, which also says which templates it
    has and whether a storm collapses into one digest); ``payload`` the types its ``send``
    takes; ``pace`` the seconds between two of an action's sends (its lane); ``incidents``
    whether its failure notification opens an incident (so one sent after the recovery would
    open it again)."""

    name: str
    settings: type[Settings]
    render: Renderer
    digest: DigestRenderer
    send: Sender
    payload: tuple[type, ...]
    templates: Mapping[str, str] = field(default_factory=dict)
    note: Callable[[Rendered, str], Rendered] = _keep
    """The rendered message with one more line of plain text, for destinations people read."""
    pace: float | None = None
    incidents: bool = False

    @property
    def collapsible(self) -> bool:
        return self.settings.COLLAPSIBLE

    async def deliver(
        self, settings: BaseModel, payload: object, *, client: httpx.AsyncClient, delivery_id: str
    ) -> int | None:
        if not isinstance(payload, self.payload):
            raise TypeError(f"a {type(payload).__name__} is not a {self.name} payload")
        return await self.send(settings, payload, client=client, delivery_id=delivery_id)
