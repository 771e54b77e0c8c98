"""Expectations at work (see :mod:`config.expectations`): the successes each one sees, noted by
the route job (:func:`observe`); its deadlines, judged by worker maintenance (:func:`evaluate`),
a missed one stored as an ``expectation.missed`` event and routed like any event, once per
deadline; and what ``flowhooks expect status`` shows (:func:`status`).

State, one hash per expectation (:func:`config.keys.expectation`)::

    since               when flowhooks began watching (epoch seconds): no deadline before it
    last_success        when the latest matching success finished (epoch seconds)
    last_success_event  its ref
    judged              the latest deadline judged (epoch seconds)
    missed              the deadline missed and not yet followed by a success
    missed_event        the ref of its ``expectation.missed`` event

The missed event's incident is kept under ``expect/<name>`` of its source
(:func:`workers.delivery.incident_scope`): the next matching success resolves it as a flow's
success resolves the flow's. The event is stored before the deadline is noted as judged, and
its id names the deadline, so a worker dying in between, or two judging at once, makes one.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config import keys
from config.expectations import MISSED_KIND, SUCCESS_KIND, Expectation, due, next_deadline
from config.joins import window_key
from config.schema import Config
from workers import synthetic
from workers.delivery import Incident, close_incidents, labels_of, open_incidents, received_at

if TYPE_CHECKING:
    from redis import Redis

    from workers.metrics import WorkerMetrics

log = logging.getLogger("flowhooks.worker")

STATE_TTL = 400 * 86400
"""State untouched this long is forgotten (an expectation removed from the config)."""

_OBSERVE = """
redis.call('HSETNX', KEYS[1], 'since', ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[1], 'last_success') or '0')
if tonumber(ARGV[1]) > last then
  redis.call('HSET', KEYS[1], 'last_success', ARGV[1], 'last_success_event', ARGV[2])
end
redis.call('HDEL', KEYS[1], 'missed', 'missed_event')
redis.call('EXPIRE', KEYS[1], ARGV[4])
"""


def source_of(config: Config, expectation: Expectation) -> str:
    """The source a missed event of ``expectation`` is stored under: the one its matchers pin,
    else the config's first."""
    pinned = expectation.label("source")
    return pinned if pinned in config.sources else next(iter(config.sources))


def scope(name: str) -> str:
    return f"expect/{name}"


def succeeded_at(event: Mapping[str, Any]) -> float | None:
    """When a success happened: when the flow finished, else when flowhooks received it."""
    finished = event.get("finished_at")
    if isinstance(finished, str):
        try:
            return datetime.fromisoformat(finished).timestamp()
        except ValueError:
            pass
    return received_at(event)


def met_by(config: Config, event: Mapping[str, Any]) -> list[str]:
    """The expectations a ``flow.succeeded`` event meets (none for any other kind)."""
    if event.get("kind") != SUCCESS_KIND:
        return []
    labels, tags = labels_of(event)
    return [
        name
        for name, expectation in config.expect.items()
        if all(m.matches(labels, tags) for m in expectation.matchers)
    ]


def incidents_met(conn: "Redis", config: Config, event: Mapping[str, Any]) -> list[Incident]:
    """The open incidents of the expectations a success meets, for its route job to resolve."""
    found: list[Incident] = []
    for name in met_by(config, event):
        found.extend(open_incidents(conn, source_of(config, config.expect[name]), scope(name)))
    return found


def observe(conn: "Redis", config: Config, event: Mapping[str, Any]) -> list[str]:
    """Note a success against the expectations it meets and close their incidents; the names."""
    names = met_by(config, event)
    at = succeeded_at(event)
    if not names or at is None:
        return names
    ref = keys.ref(str(event["source"]), str(event["id"]))
    now = datetime.now(UTC).timestamp()
    for name in names:
        conn.eval(_OBSERVE, 1, keys.expectation(name), repr(at), ref, repr(now), STATE_TTL)
        source = source_of(config, config.expect[name])
        close_incidents(conn, source, scope(name), received_at(event) or now)
    return names


@dataclass(frozen=True)
class State:
    since: datetime
    last_success: datetime | None
    last_success_event: str | None
    judged: datetime | None
    missed: datetime | None
    missed_event: str | None


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def load(conn: "Redis", name: str, now: datetime) -> State:
    """The expectation's state; watching begins ``now`` for one never seen before."""
    key = keys.expectation(name)
    conn.hsetnx(key, "since", repr(now.timestamp()))
    conn.expire(key, STATE_TTL)
    fields = {keys.text(k): keys.text(v) for k, v in conn.hgetall(key).items()}
    since = _instant(fields.get("since")) or now
    return State(
        since=since,
        last_success=_instant(fields.get("last_success")),
        last_success_event=fields.get("last_success_event"),
        judged=_instant(fields.get("judged")),
        missed=_instant(fields.get("missed")),
        missed_event=fields.get("missed_event"),
    )


def evaluate(
    conn: "Redis",
    config: Config,
    now: datetime,
    *,
    retention: float,
    metrics: "WorkerMetrics | None" = None,
) -> list[str]:
    """Judge every expectation's deadline due by ``now`` not judged before; store and route an
    ``expectation.missed`` event for each one missed (counted in ``metrics``). The refs of the
    events stored."""
    stored: list[str] = []
    for name, expectation in config.expect.items():
        state = load(conn, name, now)
        verdict = due(expectation, now, since=state.since, last_success=state.last_success)
        if verdict is None or (state.judged is not None and verdict.deadline <= state.judged):
            continue
        key = keys.expectation(name)
        if not verdict.met:
            event = missed_event(config, name, expectation, verdict.deadline, state)
            ref = keys.ref(event["source"], event["id"])
            if synthetic.store(conn, event, retention=retention) is not None:
                stored.append(ref)
                if metrics is not None:
                    metrics.expectations_missed.labels(name).inc()
                log.warning(
                    "expectation missed: %s",
                    event["error"],
                    extra={"expectation": name, "source": event["source"], "event_id": event["id"]},
                )
            conn.hset(key, mapping={"missed": verdict.deadline.timestamp(), "missed_event": ref})
        conn.hset(key, "judged", verdict.deadline.timestamp())
    return stored


def missed_event(
    config: Config, name: str, expectation: Expectation, deadline: datetime, state: State
) -> dict[str, Any]:
    """The ``expectation.missed`` event of ``deadline``: ``entity_id`` is the expectation,
    ``flow_id`` and ``flow_name`` those its matchers pin (``flow_name`` else its name),
    ``error`` says what was missed, ``raw`` holds the deadline and the last success."""
    last = state.last_success
    said_last = f"last success {last.isoformat()}" if last else "no success seen yet"
    return {
        "id": f"expect-{name}-{window_key(deadline)}",
        "source": source_of(config, expectation),
        "event": "flowhooks.expectation_missed",
        "kind": MISSED_KIND,
        "status": None,
        "flow_id": expectation.label("flow_id") or None,
        "flow_name": expectation.label("flow_name") or name,
        "audit_id": None,
        "webhook_id": None,
        "entity_id": name,
        "entity_url": None,
        "tags": [],
        "params": {},
        "error": (
            f"expected {name} to succeed {expectation.describe()}: no success by"
            f" {deadline.isoformat()}; {said_last}"
        ),
        "started_at": None,
        "finished_at": deadline.isoformat(),
        "duration_ms": None,
        "sent_at": None,
        "received_at": datetime.now(UTC).isoformat(),
        "triggered_by": None,
        "chain_depth": 0,
        "raw": {
            "expectation": name,
            "deadline": deadline.isoformat(),
            "last_success": last.isoformat() if last else None,
            "last_success_event": state.last_success_event,
            "matchers": [str(m) for m in expectation.matchers],
        },
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def status(conn: "Redis", config: Config, now: datetime) -> list[dict[str, Any]]:
    """Each expectation: its rule, last success, next deadline, and the deadline it missed
    (``None`` when it is not missing one), times in ISO 8601, as ``flowhooks expect status``
    shows them."""
    rows = []
    for name, expectation in config.expect.items():
        state = load(conn, name, now)
        upcoming = next_deadline(
            expectation, now, since=state.since, last_success=state.last_success
        )
        rows.append(
            {
                "name": name,
                "expects": expectation.describe(),
                "matchers": [str(m) for m in expectation.matchers],
                "last_success": _iso(state.last_success),
                "last_success_event": state.last_success_event,
                "next_deadline": _iso(upcoming),
                "missed": _iso(state.missed),
                "missed_event": state.missed_event,
                "watching_since": _iso(state.since),
            }
        )
    return rows
