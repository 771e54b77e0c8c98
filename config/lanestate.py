"""What each action's lane holds and the state of its circuit breaker, as the worker's metrics
and the admin overview read them (:mod:`workers.lanes` writes them)."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config import keys

if TYPE_CHECKING:
    from redis import Redis

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""A circuit's states, by the number the ``flowhooks_circuit_state`` metric gives them."""


@dataclass(frozen=True)
class Lane:
    action: str
    backlog: int
    """Deliveries waiting in the lane."""
    oldest_seconds: float
    """How long the oldest of them has waited (0 when none)."""
    circuit: str
    """``closed``, ``half_open`` or ``open``."""
    paused_until: float | None
    """When the lane may send again (epoch seconds), if it pauses: a ``Retry-After``, an open
    circuit's cool-down."""


def read(conn: "Redis", actions: Iterable[str], now: float) -> list[Lane]:
    """The lanes of ``actions``, in one round trip."""
    names = sorted(actions)
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(keys.lane(name))
            pipe.lindex(keys.lane(name), 0)
            pipe.hmget(keys.lane_state(name), "circuit", "paused_until")
        replies = pipe.execute()
    lanes = []
    for i, name in enumerate(names):
        length, head, (circuit, paused) = replies[3 * i : 3 * i + 3]
        waited = now - float(json.loads(head)["at"]) if head is not None else 0.0
        state = keys.text(circuit) if circuit is not None else "closed"
        until = float(keys.text(paused)) if paused is not None else None
        lanes.append(
            Lane(
                action=name,
                backlog=int(length),
                oldest_seconds=max(waited, 0.0),
                circuit=state if state in CIRCUIT_STATES else "closed",
                paused_until=until if until is not None and until > now else None,
            )
        )
    return lanes


def known(conn: "Redis") -> list[str]:
    """The actions that have a lane or a circuit's state in Redis: those a worker has delayed
    or seen fail (an action that never had to wait has neither)."""
    members = conn.zrange(keys.LANES, 0, -1)
    waiting = {keys.text(m) for m in members if isinstance(m, bytes | str)}
    prefix = keys.lane_state("")
    found = conn.scan_iter(match=f"{prefix}*")
    stateful = {keys.text(k)[len(prefix) :] for k in found if isinstance(k, bytes | str)}
    return sorted(waiting | stateful)
