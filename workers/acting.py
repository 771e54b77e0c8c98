"""How delivery reaches the modules that act (rather than notify): an interface and a registry,
so that :mod:`workers.delivery` imports none of them and none of them is imported back.

An acting module registers a factory for its kind of action at import (the Etlworks actions
as ``"etlworks"``); the worker imports it at start. :meth:`Deliverer.act
<workers.delivery.Deliverer.act>` builds the actor for a job with :func:`actor_for` and reads
its outcome as :class:`Acted`, :class:`Deferred` or :class:`Unconfirmed`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from config.schema import Config
from workers.routing import Match

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["Acted", "Actor", "ActorFactory", "Deferred", "Unconfirmed", "actor_for", "register"]


class Deferred(Exception):
    """Not now: come back in ``delay`` seconds."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay


class Unconfirmed(Exception):
    """The executions API does not agree with the event: nothing is done."""


@dataclass
class Acted:
    """What an action did: fields for the timeline, and notifications it asks for (an
    escalation), as ``(action name, delivery id)`` pairs."""

    fields: dict[str, Any]
    notify: list[tuple[str, str]]


class Actor(Protocol):
    async def act(
        self,
        delivery_id: str,
        route: str,
        action_name: str,
        event: Mapping[str, Any],
        *,
        match: Match | None,
        waited: bool,
    ) -> Acted:
        """Act once for ``delivery_id``; raise ``DeliveryError``, :class:`Deferred` or
        :class:`Unconfirmed`."""
        ...


class ActorFactory(Protocol):
    def __call__(
        self,
        conn: "Redis",
        config: Config,
        client: httpx.AsyncClient,
        *,
        retention: float,
        job_timeout: float,
    ) -> Actor: ...


_FACTORIES: dict[str, ActorFactory] = {}


def register(kind: str, factory: ActorFactory) -> None:
    """Make ``factory`` the one that builds actors for ``kind``."""
    _FACTORIES[kind] = factory


def actor_for(
    kind: str,
    conn: "Redis",
    config: Config,
    client: httpx.AsyncClient,
    *,
    retention: float,
    job_timeout: float,
) -> Actor:
    """The actor for ``kind``; ``LookupError`` when no module registered one."""
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise LookupError(f"no actor for {kind} actions is registered: import its module")
    return factory(conn, config, client, retention=retention, job_timeout=job_timeout)
