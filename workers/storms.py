"""Storms: more notifications of one action waiting in its lane than its ``collapse.after``,
sent as one digest (:mod:`workers.drain`), and what the message after it says.

A storm digest says how many flows failed and since when; once it is sent, the flows it named
are remembered (:func:`config.keys.lane_storm`), and the next message of the action, whatever
it is, ends with which of them still fail and which recovered since (a success received after
the digest: :func:`config.keys.recovered`).
"""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config import keys

if TYPE_CHECKING:
    from redis import Redis

STORM_TTL = 86400
"""The flows of a storm are forgotten after a day without another message."""
NAMES = 10
"""Flows a note names at most, of those still failing and of those recovered each."""


def clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")


def title(failed: Mapping[str, str], since: float | None, others: int) -> str:
    """The head of a storm digest: ``failed`` maps each failed flow (``source:flow_id``) to
    its name; ``others`` counts the notifications that are not failures (recoveries)."""
    count = len(failed)
    parts = []
    if count:
        noun = "flow" if count == 1 else "flows"
        parts.append(f"{count} {noun} failed" + (f" since {clock(since)}" if since else ""))
    if others:
        parts.append(f"{others} other notification{'s' if others != 1 else ''}")
    return ", ".join(parts) or "no notifications"


def record(conn: "Redis", action: str, failed: Mapping[str, str], at: float) -> None:
    """Remember the flows a storm digest sent ``at`` named, for the message after it."""
    if failed:
        data = json.dumps({"at": at, "flows": dict(failed)})
        conn.set(keys.lane_storm(action), data, ex=STORM_TTL)


def after_note(conn: "Redis", action: str) -> str | None:
    """What became of the last storm's flows: which still fail, which recovered since."""
    raw = conn.get(keys.lane_storm(action))
    if raw is None:
        return None
    storm: dict[str, Any] = json.loads(raw)
    flows: dict[str, str] = storm.get("flows") or {}
    at = float(storm.get("at") or 0)
    order = list(flows)
    found = conn.mget([keys.recovered(*flow.split(":", 1)) for flow in order]) if order else []
    back = {
        flow
        for flow, value in zip(order, found, strict=True)
        if value is not None and float(keys.text(value)) >= at
    }
    recovered = [flows[flow] for flow in order if flow in back]
    failing = [flows[flow] for flow in order if flow not in back]
    return (
        f"Since the storm of {clock(at)} ({len(flows)} flows): "
        f"{len(failing)} still failing{_names(failing)}, {len(recovered)} recovered"
        f"{_names(recovered)}."
    )


def _names(names: Sequence[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:NAMES])
    more = f" and {len(names) - NAMES} more" if len(names) > NAMES else ""
    return f" ({shown}{more})"
