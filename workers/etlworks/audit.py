"""What changed before it broke: a flow failure's event enriched with the flow's latest change
from its Etlworks instance's audit log, on an instance with ``audit: true``.

    GET /v1/audit?resourceType=flow&since=<ISO 8601>

answers the changes of every flow in the last :data:`LOOKBACK`, newest or oldest first, each a
record with the flow's id (``resourceId``), who (``user``), what (``action``) and when
(``timestamp``); other spellings Etlworks may use are read too (see :func:`parse`). The answer
is cached per instance for :data:`CACHE_SECONDS` in Redis, shared by every worker, so a storm
of failures costs one call a minute per instance, whatever the number of flows failing.

The change found is kept with the event (:func:`config.keys.change`, for its retries and
replays), noted on its timeline (``changed``), and shown in its messages as
``changed 2 h before by alice: update`` (the ``change`` of the templates). A call that fails
enriches nothing: a message never waits on, nor fails for, the audit log.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from config import eventlog, keys
from config.events import instant
from config.schema import Config
from workers.etlworks.client import EtlworksClient
from workers.sinks import DeliveryError

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("flowhooks.worker")

LOOKBACK = timedelta(days=7)
"""How far back the audit log is read: a change older than this is not shown."""
CACHE_SECONDS = 60
"""How long one answer of the audit log serves every failure of the instance's flows."""
TIMEOUT = 5.0
"""The most a route job waits for the audit log (the instance's own timeout, when shorter)."""
ENRICHED_KINDS = frozenset({"flow.failed", "flow.timeout"})
_PAGES = ("content", "items", "data", "records", "audit")


@dataclass(frozen=True)
class Change:
    """One change of a flow, as the audit log says it."""

    flow_id: str
    at: datetime
    user: str
    action: str

    def describe(self, before: datetime) -> str:
        """``changed 2 h before by alice: update``, ``before`` being the failure."""
        return f"changed {_ago(before - self.at)} before by {self.user}: {self.action}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def _ago(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return "moments"


def _first(record: Mapping[str, Any], *names: str) -> Any:
    return next((record[n] for n in names if record.get(n) not in (None, "")), None)


def parse(answer: Any) -> list[Change]:
    """The flow changes of an audit log answer (a list, or a page of one); records that are not
    a flow's change, or lack its id or time, are left out."""
    if isinstance(answer, dict):
        answer = next((answer[k] for k in _PAGES if isinstance(answer.get(k), list)), [])
    if not isinstance(answer, list):
        return []
    changes = []
    for record in answer:
        if not isinstance(record, dict):
            continue
        kind = _first(record, "resourceType", "type")
        flow_id = _first(record, "resourceId", "flowId", "entityId")
        at = instant(_first(record, "timestamp", "time", "createdAt", "date"))
        if flow_id is None or at is None or str(kind or "flow").lower() != "flow":
            continue
        user = _first(record, "user", "userName", "username", "changedBy", "author")
        action = _first(record, "action", "operation", "event", "description")
        changes.append(Change(str(flow_id), at, str(user or "someone"), str(action or "change")))
    return changes


def latest(changes: Sequence[Change], flow_id: str, before: datetime) -> Change | None:
    """The flow's latest change at or before ``before`` (a failure)."""
    found = [c for c in changes if c.flow_id == flow_id and c.at <= before]
    return max(found, key=lambda c: c.at, default=None)


async def changes(
    conn: "Redis", name: str, api: EtlworksClient, now: datetime
) -> list[Change] | None:
    """The instance's recent flow changes: from the cache, else from the audit log (then
    cached); ``None`` when the audit log cannot be read."""
    cached = conn.get(keys.audit(name))
    if cached is not None:
        return [
            Change(c["flow_id"], datetime.fromisoformat(c["at"]), c["user"], c["action"])
            for c in json.loads(cached)
        ]
    since = (now - LOOKBACK).astimezone(UTC).isoformat()
    try:
        answer = await api.request(
            "GET", "/v1/audit", params={"resourceType": "flow", "since": since}
        )
    except DeliveryError as exc:
        log.warning("the audit log cannot be read: %s", exc, extra={"etlworks": name})
        return None
    found = parse(answer)
    conn.set(keys.audit(name), json.dumps([c.to_json() for c in found]), ex=CACHE_SECONDS)
    return found


def instance_of(config: Config, event: Mapping[str, Any]) -> str | None:
    """The auditing instance of the event's source, when it is a flow's failure."""
    if event.get("kind") not in ENRICHED_KINDS or not event.get("flow_id"):
        return None
    source = config.sources.get(str(event.get("source")))
    name = source.etlworks if source else None
    instance = config.etlworks.get(name) if name else None
    return name if instance is not None and instance.audit else None


def failed_at(event: Mapping[str, Any]) -> datetime:
    for field in ("finished_at", "received_at"):
        value = event.get(field)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                continue
    return datetime.now(UTC)


async def enrich(
    conn: "Redis",
    config: Config,
    client: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    retention: float,
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    """``event`` with ``change``, the flow's latest change as :meth:`Change.describe` says it,
    when its source's instance audits and the audit log names one; kept with the event for
    ``retention`` seconds, its timeline entry added to ``entries``. An event routed again
    (a replay) keeps the change found the first time."""
    name = instance_of(config, event)
    if name is None:
        return event
    known = attach(conn, event)
    if known is not None and "change" in known:
        return known
    instance = config.etlworks[name]
    api = EtlworksClient(
        instance.url, instance.api_key, client=client, timeout=min(instance.timeout, TIMEOUT)
    )
    when = failed_at(event)
    found = await changes(conn, name, api, datetime.now(UTC))
    change = latest(found or [], str(event["flow_id"]), when)
    if change is None:
        return event
    said = change.describe(when)
    ref = keys.ref(str(event["source"]), str(event["id"]))
    conn.set(keys.change(ref), json.dumps(said), ex=int(retention))
    entries.append(
        eventlog.entry(
            "changed",
            user=change.user,
            action=change.action,
            changed_at=change.at.isoformat(),
            said=said,
        )
    )
    return {**event, "change": said}


def attach(conn: "Redis", event: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored event with the change its routing found, for a retry or a replay to show."""
    if event is None or event.get("kind") not in ENRICHED_KINDS:
        return event
    said = conn.get(keys.change(keys.ref(str(event["source"]), str(event["id"]))))
    return event if said is None else {**event, "change": json.loads(said)}
